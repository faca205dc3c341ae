"""The supervisor on a small stack of real processes: ready, restart, stop."""

from __future__ import annotations

import importlib.util
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from noetl import localrun
from noetl.dev.logview import LogView
from noetl.dev.probes import Printed
from noetl.dev.process import group_members
from noetl.dev.stack import SOURCE, Part, Stack, StackError
from noetl.dev.supervisor import NotReady, Supervisor

SAMPLES = Path(__file__).parent / "samples"
_spec = importlib.util.spec_from_file_location(
    "small_stack", SAMPLES / "small_stack.py"
)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
small_stack: Callable[[Path, int, int], Stack] = _module.small_stack


def eventually(check: Callable[[], bool], within: float = 60, what: str = "") -> None:
    """Poll ``check`` until it holds; fail with ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within:g} s: {what}")
        time.sleep(0.1)


def gone(pid: int) -> bool:
    """The process and every process of its group have ended."""
    return not group_members(pid) and not os.path.exists(f"/proc/{pid}/status")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).is_success
    except httpx.HTTPError:
        return False


def new_stack(tmp_path: Path) -> Stack:
    nats_port = localrun.free_port()
    echo_port = localrun.free_port()
    return small_stack(tmp_path, nats_port, echo_port)


def test_ready_then_a_killed_part_comes_back_on_its_port(tmp_path: Path) -> None:
    stack = new_stack(tmp_path)
    out = io.StringIO()
    echo = stack.part("echo")
    with Supervisor(stack, LogView(out)) as supervisor:
        assert answers(echo.url + "healthz")
        first = supervisor.pids()
        assert set(first) == {"nats", "echo", "echo-source"}
        # gunicorn forks a worker: the group is more than the leader.
        assert len(group_members(first["echo"])) >= 2

        os.kill(first["echo"], signal.SIGKILL)
        eventually(lambda: supervisor.starts("echo") == 2, what="echo started again")
        eventually(lambda: supervisor.is_ready("echo"), what="echo ready again")
        assert answers(echo.url + "healthz")
        assert supervisor.pid("echo") != first["echo"]
        eventually(lambda: gone(first["echo"]), what="the old echo group ended")
        assert supervisor.pid("nats") == first["nats"]
        everything = {**first, "echo-again": supervisor.pid("echo") or 0}

    for name, pid in everything.items():
        assert gone(pid), f"{name} ({pid}) is still running"
    log = out.getvalue()
    assert f"echo pid={first['echo']}" in log
    assert "echo was killed by SIGKILL" in log
    assert "starting it again in 0.5 s on the same port and data" in log
    assert "stopped every part" in log
    assert '"part": "echo"' in log and '"part": "nats"' in log


def test_a_part_that_keeps_dying_is_named_with_its_last_lines(tmp_path: Path) -> None:
    stack = new_stack(tmp_path)
    dying = Part(
        name="broken",
        kind=SOURCE,
        command=(sys.executable, "-c", "print('missing K_SINK'); raise SystemExit(3)"),
        probe=Printed("consuming"),
        url="-",
    )
    stack = Stack((stack.part("nats"), dying), stack.nats_url, "", 0, tmp_path)
    supervisor = Supervisor(stack, LogView(io.StringIO()))
    supervisor.start()
    try:
        with pytest.raises(NotReady) as raised:
            supervisor.wait_ready(timeout=5)
    finally:
        supervisor.stop()
    report = str(raised.value)
    assert report.startswith("not ready after 5 s:")
    assert "broken: started" in report and "exited 3" in report
    assert "| missing K_SINK" in report
    assert "nats:" not in report


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    stack = new_stack(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", stack.ports()["echo"]))
        taken.listen()
        with pytest.raises(StackError, match=r"port \d+ for echo is in use"):
            Supervisor(stack).start()


def test_parts_die_with_a_supervisor_that_is_killed(tmp_path: Path) -> None:
    nats_port, echo_port = localrun.free_port(), localrun.free_port()
    keeper = subprocess.Popen(
        [
            sys.executable,
            str(SAMPLES / "keeper.py"),
            str(tmp_path),
            str(nats_port),
            str(echo_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=localrun.ROOT,
    )
    pids: dict[str, int] = {}
    try:
        assert keeper.stdout is not None
        for line in keeper.stdout:
            name, _, pid = line.strip().partition(" pid=")
            if pid.isdigit():
                pids[name] = int(pid)
            if line.strip() == "ready":
                break
        assert set(pids) == {"nats", "echo", "echo-source"}, pids
    finally:
        keeper.kill()
        keeper.wait()
    for name, pid in pids.items():
        eventually(lambda pid=pid: gone(pid), what=f"{name} ({pid}) ended")
