"""``noetl dev`` as a user runs it: every part, a restart, a clean stop."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from noetl import localrun
from noetl.dev.process import group_members
from noetl.dev.stack import FUNCTION_PORTS, free_port_base

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


class Output:
    """The lines a process prints, read on a thread so none is lost."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.ended = False
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _pump(self, within: float) -> None:
        """Take the lines printed within ``within`` seconds."""
        try:
            line = self._queue.get(timeout=within)
            while True:
                if line is None:
                    self.ended = True
                    return
                self.lines.append(line)
                line = self._queue.get_nowait()
        except queue.Empty:
            return

    def wait_for(self, check: Callable[[], bool], within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while not check():
            if self.ended or time.monotonic() > deadline:
                tail = "\n".join(self.lines[-30:])
                pytest.fail(f"{what}: not within {within:g} s\n{tail}")
            self._pump(0.2)

    def saw(self, line: str) -> bool:
        return line in self.lines

    def drain(self) -> None:
        self._reader.join(timeout=30)
        while not self.ended and not self._queue.empty():
            self._pump(0)

    def pids(self) -> dict[str, list[int]]:
        """Every ``<part> pid=<pid>`` line so far, in order, by part."""
        found: dict[str, list[int]] = {}
        for line in self.lines:
            name, sep, pid = line.partition(" pid=")
            if sep and pid.isdigit() and " " not in name:
                found.setdefault(name, []).append(int(pid))
        return found


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def answers(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


def gone(pid: int) -> bool:
    return not group_members(pid) and not os.path.exists(f"/proc/{pid}")


def test_dev_runs_restarts_and_stops_cleanly(tmp_path: Path) -> None:
    base = free_port_base()
    nats_port = localrun.free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "noetl.cli",
            "dev",
            "--port-base",
            str(base),
            "--nats-port",
            str(nats_port),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    out = Output(proc)
    try:
        out.wait_for(lambda: out.saw("ready"), 180, "a ready line")
        lines = out.lines
        assert f"api               http://127.0.0.1:{base}/gql" in lines
        assert any(
            line.startswith("nats ") and str(nats_port) in line for line in lines
        )
        assert (tmp_path / "data" / "jetstream").is_dir()

        # Every part answers: HTTP on each function, NATS on its port.
        assert answers(f"http://127.0.0.1:{base}/healthz") == 200
        for name, offset in FUNCTION_PORTS.items():
            assert answers(f"http://127.0.0.1:{base + offset}/") is not None, name
        assert listening(nats_port)
        pids = out.pids()
        sources = {"dispatcher-source", "catalog-source", "notifier-source"}
        assert set(pids) == {"nats", *FUNCTION_PORTS, *sources}

        # A function that dies comes back on the same port.
        catalog = pids["catalog"][0]
        os.kill(catalog, signal.SIGKILL)
        out.wait_for(
            lambda: (
                len(out.pids().get("catalog", [])) == 2
                and answers(f"http://127.0.0.1:{base + 2}/") is not None
            ),
            120,
            "catalog back on its port",
        )
        assert out.pids()["catalog"][1] != catalog
        assert any("catalog was killed by SIGKILL" in line for line in out.lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        out.drain()

    assert code == 0, "\n".join(out.lines[-30:])
    for name, started in out.pids().items():
        for pid in started:
            assert gone(pid), f"{name} ({pid}) outlived noetl dev"
    assert any("stopped every part" in line for line in out.lines)
