"""Helpers for tests: posting CloudEvents, polling, reading streams."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
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


async def eventually(
    check: Callable[[], Awaitable[T | None]], within: float = 30.0
) -> T:
    """Poll ``check`` until it returns something, or fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{check.__name__} did not hold within {within} s")
        await asyncio.sleep(0.05)


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
