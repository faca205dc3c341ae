"""One child process of the local stack, in its own process group.

Each child leads a new session, so that a signal to its group reaches the
workers it forks as well (gunicorn's, for a function) and so that Ctrl-C in
the terminal reaches only the supervisor, which stops the children in order.
On Linux each child also asks the kernel for SIGTERM when its parent goes
away, so a supervisor that is SIGKILLed leaves no part running.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
TAIL = 40


def _death_signal() -> Callable[[], None] | None:
    """A preexec hook that ties the child's life to this process, on Linux.

    The kernel sends the signal when the *thread* that forked the child ends,
    so the supervisor spawns every child from the one thread that outlives
    them all.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        # The parent may have died between fork and prctl.
        if os.getppid() != parent:
            os._exit(1)

    return arm


def marker_in(line: str, marker: str) -> bool:
    """Whether a log line says ``marker``: a JSON line by its message."""
    if line.startswith("{"):
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                return str(record.get("message", "")).startswith(marker)
    return marker in line


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``, read from /proc (Linux)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


class Child:
    """A running part: its process, the lines it printed, the markers seen."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        on_line: Callable[[str], None],
        cwd: Path | None = None,
        markers: Sequence[str] = (),
    ) -> None:
        self.command = list(command)
        self.tail: deque[str] = deque(maxlen=TAIL)
        self.started = time.monotonic()
        self._markers = tuple(markers)
        self._seen: set[str] = set()
        self._on_line = on_line
        self.popen = subprocess.Popen(
            self.command,
            env={**os.environ, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_death_signal(),
        )
        self._reader = threading.Thread(
            target=self._read, name=f"read-{self.pid}", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        """The exit code once the process ended, else None."""
        return self.popen.poll()

    def saw(self, marker: str) -> bool:
        return marker in self._seen

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def signal_group(self, sig: int) -> None:
        """Signal every process of the child's group, leader gone or not."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def wait(self, timeout: float) -> bool:
        """Whether the process ended within ``timeout`` seconds."""
        try:
            self.popen.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def reap(self) -> None:
        """Kill what is left of the group and collect the output reader."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait()
        self._reader.join(timeout=2)

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self.tail.append(line)
            for marker in self._markers:
                if marker not in self._seen and marker_in(line, marker):
                    self._seen.add(marker)
            self._on_line(line)
        self.popen.stdout.close()
