"""``python -m noetl.cli``: the same as the ``noetl`` console script."""

import sys

from noetl.cli import main

sys.exit(main())
