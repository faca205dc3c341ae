"""Processes, ports and /proc readings that every measurement shares.

A benchmark's children write to log files rather than pipes: a reader thread
in this process would compete for the GIL with the loop that takes the
timings. Each child leads its own session, so that stopping its group stops
the workers it forked (gunicorn's), and dies with this process on Linux.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from noetl import localrun
from noetl.dev.process import group_members
from noetl.errors import NoetlError

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SAMPLES = BENCH / "samples"
PYTHON = sys.executable
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


class BenchError(NoetlError):
    """A benchmark could not be set up or run as planned."""


def _tied_to_parent() -> Callable[[], None] | None:
    """A preexec hook: the kernel sends SIGTERM to the child when we die."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def tie() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return tie


class Proc:
    """A child process in its own session, its output kept in a log file."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log = log_dir / f"{name}.log"
        self._out = self.log.open("wb")
        self.started = time.perf_counter()
        self.popen = subprocess.Popen(
            self.command,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_tied_to_parent(),
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for_text(self, text: str, timeout: float) -> None:
        """Block until the log holds ``text``; BenchError if it dies or is late."""
        deadline = time.monotonic() + timeout
        while text not in self.text():
            if not self.alive():
                raise BenchError(f"{self.name} exited early:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} printed no {text!r}:\n{self.tail()}")
            time.sleep(0.02)

    def wait_for_port(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not port_open(port):
            if not self.alive():
                raise BenchError(f"{self.name} exited early:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} did not listen on {port}")
            time.sleep(0.02)

    def members(self) -> list[int]:
        """Every live process of the child's group, the leader first."""
        others = [pid for pid in group_members(self.pid) if pid != self.pid]
        return [self.pid, *sorted(others)] if self.alive() else sorted(others)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after ``grace``."""
        if self.alive():
            self._signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        self._signal(signal.SIGKILL)
        self.popen.wait()
        self._out.close()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


class Processes:
    """Every child a benchmark started, all stopped on the way out."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._running: list[Proc] = []

    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> Proc:
        proc = Proc(name, command, self.log_dir, env=env, cwd=cwd)
        self._running.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self._running:
            self._running.remove(proc)

    def __enter__(self) -> Processes:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for proc in reversed(self._running):
            proc.stop()
        self._running.clear()

    def nats(self, name: str, store: Path) -> tuple[Proc, str]:
        """A nats-server with JetStream on a free port, and its URL."""
        port = localrun.free_port()
        proc = self.start(name, localrun.nats_command(port, store))
        proc.wait_for_text("Server is ready", timeout=15)
        return proc, f"nats://{HOST}:{port}"

    def function(
        self,
        name: str,
        source: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> tuple[Proc, str]:
        """A function served by the functions-framework CLI, and its base URL."""
        port = localrun.free_port()
        command = localrun.function_command("x", port)
        # The project's own command line, with only the source file swapped.
        command[command.index("--source") + 1] = str(source)
        proc = self.start(name, command, env=env, cwd=cwd)
        proc.wait_for_port(port, timeout=30)
        return proc, f"http://{HOST}:{port}/"


class Arrivals:
    """When each key (a refId) first arrived, and a way to wait for a set of them."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._changed = asyncio.Event()

    def add(self, key: str, when: float | None = None) -> None:
        self.at.setdefault(key, time.time() if when is None else when)
        self._changed.set()

    async def wait_for(self, keys: set[str], within: float) -> bool:
        """Whether every one of ``keys`` arrived within ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                while not keys <= self.at.keys():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True


def port_open(port: int, host: str = HOST) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.2).close()
    except OSError:
        return False
    return True


# Readings from /proc (Linux): memory in KiB, CPU in seconds.


def _status_kib(pid: int, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    """Resident memory, shared pages included."""
    return _status_kib(pid, "VmRSS")


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages split between their sharers."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU used by the process itself, and by the children it waited for."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0
    fields = stat.rsplit(")", 1)[-1].split()
    own = int(fields[11]) + int(fields[12])
    children = int(fields[13]) + int(fields[14])
    return own / CLOCK_TICKS, children / CLOCK_TICKS


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (part.decode(errors="replace").partition("=") for part in raw.split(b"\0"))
    return {name: value for name, _, value in pairs if name}


def descendants(root: int) -> list[int]:
    """Every live process below ``root``, found by parent links in /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found: list[int] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Print a section's start and how long it took, for the person waiting."""
    started = time.perf_counter()
    print(f"bench: {name} ...", flush=True)
    try:
        yield
    finally:
        print(f"bench: {name} took {time.perf_counter() - started:.0f} s", flush=True)
