"""Fixtures shared by every test: a real nats-server and real function processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from noetl import connection, localrun, topology
from noetl.dev.logview import LogView
from noetl.dev.stack import SPAN, Stack, free_port_base, local_stack
from noetl.dev.supervisor import Supervisor


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A nats-server with JetStream on a random port and a temporary store."""
    port = localrun.free_port()
    server = localrun.start_nats(port, tmp_path / "jetstream")
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def js(nc: Client) -> JetStreamContext:
    """A JetStream context with every stream and bucket provisioned."""
    context = nc.jetstream()
    await topology.provision(context)
    return context


@pytest.fixture
async def core(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Point this process's shared connection at the test server."""
    monkeypatch.setenv("NATS_URL", nats_url)
    try:
        yield
    finally:
        await connection.close()


Serve = Callable[..., str]


@pytest.fixture
def serve(nats_url: str) -> Iterator[Serve]:
    """Start a function over real HTTP; returns its base URL.

    ``serve("dispatcher", NOETL_REPORT_GRACE_SECONDS="1")`` serves
    ``functions/dispatcher`` with NATS_URL set to the test server.
    """
    started: list[localrun.Process] = []

    def start(name: str, **env: str) -> str:
        port = localrun.free_port()
        proc = localrun.start_function(
            name, port, {"NATS_URL": nats_url, "NOETL_LOG_LEVEL": "DEBUG", **env}
        )
        started.append(proc)
        return f"http://127.0.0.1:{port}"

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole local stack, as ``noetl dev`` runs it, on free ports."""
    base = free_port_base()
    nats_port = localrun.free_port()
    while base <= nats_port < base + SPAN:
        nats_port = localrun.free_port()
    running = local_stack(
        port_base=base, nats_port=nats_port, data_dir=tmp_path_factory.mktemp("stack")
    )
    with Supervisor(running, LogView(quiet=True)):
        yield running
