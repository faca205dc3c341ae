"""Starting the stack's processes on this machine: nats-server and functions.

Used by ``noetl dev`` and by the tests, so both run the parts exactly as they
are deployed: a real ``nats-server`` with JetStream and each function served
by the functions-framework CLI in its ``--asgi`` mode.
"""

from __future__ import annotations

import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from noetl.dev.process import Child
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


class Process(Child):
    """A child process whose every output line is kept and can be waited for."""

    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.lines: list[str] = []
        self._seen_line = threading.Condition()
        self._forward = on_line
        super().__init__(command, env=env or {}, on_line=self._keep, cwd=cwd)

    def _keep(self, line: str) -> None:
        with self._seen_line:
            self.lines.append(line)
            self._seen_line.notify_all()
        if self._forward is not None:
            self._forward(line)

    def wait_for_line(self, text: str, timeout: float) -> None:
        """Block until a line containing ``text`` was printed."""
        deadline = time.monotonic() + timeout
        with self._seen_line:
            while not any(text in line for line in self.lines):
                if self.poll() is not None:
                    raise StartFailed(self._died())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StartFailed(f"no {text!r} from {self.command[0]} in time")
                self._seen_line.wait(min(left, 0.1))

    def wait_for_port(self, port: int, timeout: float, host: str = "127.0.0.1") -> None:
        """Block until something accepts connections on ``port``."""
        deadline = time.monotonic() + timeout
        while True:
            if self.poll() is not None:
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
        if self.poll() is None:
            self.signal_group(signal.SIGTERM)
            self.wait(timeout)
        self.reap()

    def kill(self) -> None:
        """SIGKILL the process group at once, as a crash would."""
        self.reap()


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
