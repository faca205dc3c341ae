"""The POST to the sink: every outcome as an Attempt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from noetl import localrun
from sources.jetstream.convert import Request
from sources.jetstream.sink import Sink

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _request() -> Request:
    return Request(
        {"ce-id": "r1:1.2", "Content-Type": "application/json"}, b"{}", "r1:1.2", "r1"
    )


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        port = localrun.free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}/"

    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_answer_with_retry_after_and_detail(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def busy(request: web.Request) -> web.Response:
        assert request.headers["ce-id"] == "r1:1.2"
        return web.Response(
            status=503, text="warming\nup", headers={"Retry-After": "3"}
        )

    async with Sink(await serve(busy), timeout=5, connections=2) as sink:
        attempt = await sink.post(_request())
    assert (attempt.status, attempt.error, attempt.retry_after) == (
        503,
        "warming up",
        3,
    )


async def test_success_has_no_detail(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(status=202, text="queued")

    async with Sink(await serve(ok), timeout=5, connections=2) as sink:
        attempt = await sink.post(_request())
    assert attempt.ok and attempt.error is None


async def test_a_body_written_after_the_headers_keeps_the_connection(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    peers: set[object] = set()

    async def late_body(request: web.Request) -> web.StreamResponse:
        peers.add(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        response = web.StreamResponse(status=200)
        response.content_length = 17
        await response.prepare(request)
        await asyncio.sleep(0.01)  # as uvicorn does: headers, then body
        await response.write(b'{"status":"done"}')
        return response

    async with Sink(await serve(late_body), timeout=5, connections=1) as sink:
        for _ in range(5):
            assert (await sink.post(_request())).ok
    assert len(peers) == 1


async def test_timeout_is_an_attempt_without_status(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    async with Sink(await serve(slow), timeout=0.2, connections=2) as sink:
        attempt = await sink.post(_request())
    release.set()
    assert attempt.status is None
    assert attempt.error == "no answer from the sink within 0.2s"


async def test_refused_connection_is_an_attempt_without_status() -> None:
    url = f"http://127.0.0.1:{localrun.free_port()}/"
    async with Sink(url, timeout=5, connections=2) as sink:
        attempt = await sink.post(_request())
    assert attempt.status is None
    assert attempt.error is not None and "failed" in attempt.error
