"""Runs the small stack under a supervisor until this process is killed.

Usage: keeper.py DATA_DIR NATS_PORT ECHO_PORT
"""

import sys
import threading
from pathlib import Path

from small_stack import small_stack

from noetl.dev.logview import LogView
from noetl.dev.supervisor import Supervisor

data_dir, nats_port, echo_port = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
supervisor = Supervisor(
    small_stack(data_dir, nats_port, echo_port), LogView(sys.stdout)
)
supervisor.start()
supervisor.wait_ready(60)
print("ready", flush=True)
threading.Event().wait()
