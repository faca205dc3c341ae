"""A stack of three small parts for the supervisor's tests: a real NATS, a
function served by the functions-framework CLI, and a stand-in source."""

from __future__ import annotations

import sys
from pathlib import Path

from noetl import localrun
from noetl.dev.probes import Answers, JetStreamReady, Printed
from noetl.dev.stack import FUNCTION, SERVER, SOURCE, Part, Stack

HERE = Path(__file__).resolve().parent


def small_stack(data_dir: Path, nats_port: int, echo_port: int) -> Stack:
    nats_url = f"nats://127.0.0.1:{nats_port}"
    echo_url = f"http://127.0.0.1:{echo_port}/"
    serve = [
        localrun.executable("functions-framework"),
        "--target",
        "handle",
        "--source",
        str(HERE / "echo" / "main.py"),
        "--asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(echo_port),
    ]
    parts = (
        Part(
            name="nats",
            kind=SERVER,
            command=tuple(localrun.nats_command(nats_port, data_dir / "jetstream")),
            probe=JetStreamReady(nats_url),
            url=nats_url,
            port=nats_port,
        ),
        Part(
            name="echo",
            kind=FUNCTION,
            command=tuple(serve),
            probe=Answers(echo_url + "healthz", ok=True),
            url=echo_url,
            port=echo_port,
            env={"NATS_URL": nats_url, "PYTHONUNBUFFERED": "1"},
            after=("nats",),
        ),
        Part(
            name="echo-source",
            kind=SOURCE,
            command=(sys.executable, str(HERE / "source.py")),
            probe=Printed("consuming"),
            url=f"-> {echo_url}",
            after=("echo",),
        ),
    )
    return Stack(parts, nats_url, echo_url, echo_port, data_dir)
