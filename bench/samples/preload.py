"""Importing, before anything else, the modules a listing file names.

The bare-with-imports baselines set ``BENCH_IMPORTS_FILE`` to the third-party
modules one of our functions has loaded once it has handled its first event,
so that the baseline pays for the same libraries and for nothing of ours.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path


def preload() -> int:
    """Import every module the listing names; how many it named."""
    listing = os.environ.get("BENCH_IMPORTS_FILE")
    if not listing:
        return 0
    names = Path(listing).read_text().split()
    for name in names:
        importlib.import_module(name)
    return len(names)
