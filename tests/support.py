"""Helpers for tests: posting CloudEvents, polling, reading streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
from aiohttp import web
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

T = TypeVar("T")


async def post_event(base_url: str, event: CloudEvent) -> httpx.Response:
    """POST ``event`` to a function as a binary-mode HTTP CloudEvent."""
    headers, body = to_binary(event)
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(base_url, headers=headers, content=body)


async def until(check: Callable[[], Any], what: str, within: float = 30.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy.

    Fails naming ``what`` after ``within`` seconds: generous, for a slow machine.
    """
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up waiting for {what} within {within:g} s")
        await asyncio.sleep(0.05)


async def eventually(
    check: Callable[[], Awaitable[T | None]], within: float = 30.0
) -> T:
    """Poll the coroutine function ``check``, named after it in a failure."""
    result: T = await until(check, f"{check.__name__} to hold", within)
    return result


async def messages(js: JetStreamContext, stream: str) -> list[Msg]:
    """Every message stored in ``stream``, in order."""
    info = await js.stream_info(stream)
    found: list[Msg] = []
    if info.state.messages == 0:
        return found
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            found.append(await js.get_msg(stream, seq))
        except NotFoundError:
            continue
    return found


class Requester:
    """A requester's callback endpoint whose answers a test can script.

    Each refId's answers are taken in order from its script (a status, or a
    number of seconds to stall before answering 200); once the script runs
    out, every call gets 200. Every call is kept.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.calls: list[tuple[str, str, int]] = []  # refId, key, status answered
        self.scripts: dict[str, list[int | float]] = {}
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/callback"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/callback", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def delivered(self, ref_id: str) -> list[str]:
        """The Idempotency-Keys of the calls for ``ref_id`` answered 2xx."""
        return [
            key for ref, key, status in self.calls if ref == ref_id and status < 300
        ]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        ref_id = str(body.get("refId"))
        script = self.scripts.get(ref_id) or []
        answer: int | float = script.pop(0) if script else 200
        status = 200
        if isinstance(answer, float):
            await asyncio.sleep(answer)
        else:
            status = answer
        self.calls.append((ref_id, request.headers.get("Idempotency-Key", ""), status))
        return web.json_response({"status": status}, status=status)


REGISTER = """
mutation ($input: PluginRegistrationRequest!) {
  registerPlugin(input: $input) { refId }
}
"""


async def gql(api_url: str, query: str, **variables: Any) -> dict[str, Any]:
    """Run a GraphQL operation against the API; the response body."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            api_url, json={"query": query, "variables": variables}
        )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def register(api_url: str, image: str, **fields: str) -> str:
    """Register ``image``; the refId the API answered with."""
    body = await gql(api_url, REGISTER, input={"imageUrl": image, **fields})
    assert "errors" not in body, body
    ref_id: str = body["data"]["registerPlugin"]["refId"]
    return ref_id


@contextlib.asynccontextmanager
async def serving(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    path: str = "/",
) -> AsyncIterator[str]:
    """Serve ``handler`` for POSTs on ``path`` on a free port; yields its URL."""
    app = web.Application()
    app.router.add_post(path, handler)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}{path}"
    finally:
        await runner.cleanup()
