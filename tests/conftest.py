"""Fixtures shared by every test: a real nats-server and real function processes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from support import Requester

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
def supervisor(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervisor]:
    """The whole local stack, as ``noetl dev`` runs it, on free ports.

    A test module may set ``STACK_ENV``, a dict of settings for every part.
    """
    base = free_port_base()
    nats_port = localrun.free_port()
    while base <= nats_port < base + SPAN:
        nats_port = localrun.free_port()
    running = local_stack(
        port_base=base, nats_port=nats_port, data_dir=tmp_path_factory.mktemp("stack")
    )
    env = getattr(request.module, "STACK_ENV", {})
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        with Supervisor(running, LogView(quiet=True)) as supervised:
            yield supervised
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def stack(supervisor: Supervisor) -> Stack:
    return supervisor.stack


@pytest.fixture
async def requester() -> AsyncIterator[Requester]:
    """A callback endpoint on a free port whose answers a test can script."""
    endpoint = Requester()
    await endpoint.start()
    try:
        yield endpoint
    finally:
        await endpoint.stop()
