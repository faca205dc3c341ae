"""Starting the stack's processes on this machine: nats-server and functions.

Used by ``noetl dev`` and by the tests, so both run the parts exactly as they
are deployed: a real ``nats-server`` with JetStream and each function served
by the functions-framework CLI in its ``--asgi`` mode.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from noetl.errors import NoetlError

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("api", "dispatcher", "catalog", "notifier")
BIN = Path(sys.executable).parent


class StartFailed(NoetlError):
    """A local process did not become ready in time."""


def executable(name: str) -> str:
    """A program installed beside this Python, else found on PATH."""
    beside = BIN / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise StartFailed(f"{name} is not installed; run 'make' to set up .venv")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def nats_command(port: int, store_dir: Path, host: str = "127.0.0.1") -> list[str]:
    return [
        executable("nats-server"),
        "--jetstream",
        "--store_dir",
        str(store_dir),
        "--addr",
        host,
        "--port",
        str(port),
    ]


def function_command(name: str, port: int, host: str = "127.0.0.1") -> list[str]:
    source = ROOT / "functions" / name / "main.py"
    return [
        executable("functions-framework"),
        "--target",
        "handle",
        "--source",
        str(source),
        "--asgi",
        "--host",
        host,
        "--port",
        str(port),
    ]


class Process:
    """A child process whose output lines go to ``on_line``."""

    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.command = list(command)
        self.lines: list[str] = []
        self._on_line = on_line
        self._seen = threading.Condition()
        self.popen = subprocess.Popen(
            self.command,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            line = raw.rstrip("\n")
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()
            if self._on_line is not None:
                self._on_line(line)

    def wait_for_line(self, text: str, timeout: float) -> None:
        """Block until a line containing ``text`` was printed."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while not any(text in line for line in self.lines):
                if self.popen.poll() is not None:
                    raise StartFailed(self._died())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StartFailed(f"no {text!r} from {self.command[0]} in time")
                self._seen.wait(min(left, 0.1))

    def wait_for_port(self, port: int, timeout: float, host: str = "127.0.0.1") -> None:
        """Block until something accepts connections on ``port``."""
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise StartFailed(self._died())
            try:
                socket.create_connection((host, port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise StartFailed(
                        f"{self.command[0]} did not listen on {port} in time"
                    ) from None
                time.sleep(0.05)

    def _died(self) -> str:
        tail = "\n".join(self.lines[-20:])
        return f"{self.command[0]} exited with {self.popen.returncode}:\n{tail}"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left."""
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, 15)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        _signal_group(self.popen.pid, 9)
        self.popen.wait()
        self._reader.join(timeout=2)

    def kill(self) -> None:
        """SIGKILL the process group at once, as a crash would."""
        _signal_group(self.popen.pid, 9)
        self.popen.wait()


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def start_nats(
    port: int, store_dir: Path, on_line: Callable[[str], None] | None = None
) -> Process:
    """A nats-server with JetStream, waited for by its readiness line."""
    store_dir.mkdir(parents=True, exist_ok=True)
    proc = Process(nats_command(port, store_dir), on_line=on_line)
    proc.wait_for_line("Server is ready", timeout=15)
    return proc


def start_function(
    name: str,
    port: int,
    env: dict[str, str],
    on_line: Callable[[str], None] | None = None,
) -> Process:
    """A function served by the functions-framework CLI, waited for by its port."""
    proc = Process(function_command(name, port), env=env, cwd=ROOT, on_line=on_line)
    proc.wait_for_port(port, timeout=30)
    return proc
