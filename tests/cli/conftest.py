"""What the command-line tests share: running ``noetl`` as users do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from noetl import localrun

Noetl = Callable[..., subprocess.CompletedProcess[str]]


def run_noetl(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``noetl ARGS`` in a process of its own; its output and exit status.

    The caller's NOETL_API_URL and NATS_URL are not passed on, so that only
    the arguments and ``env`` say where the stack is.
    """
    inherited = {
        k: v for k, v in os.environ.items() if k not in ("NOETL_API_URL", "NATS_URL")
    }
    return subprocess.run(
        [sys.executable, "-m", "noetl.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=localrun.ROOT,
        env={**inherited, **(env or {})},
    )


@pytest.fixture
def noetl() -> Noetl:
    return run_noetl
