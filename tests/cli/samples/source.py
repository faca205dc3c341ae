"""A stand-in source: says it is consuming, then waits to be stopped."""

import json
import signal
import sys
import time

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(json.dumps({"level": "info", "message": "consuming"}), flush=True)
while True:
    time.sleep(1)
