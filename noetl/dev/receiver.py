"""A requester's callback endpoint, as small as it can be: it keeps what it gets.

``noetl demo`` runs one on the stack's first spare port (N+4) and registers
its plugin with this URL as the callbackApi, so the whole round trip, the
report included, happens on this machine.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Callback:
    """One request the receiver got."""

    method: str
    path: str
    idempotency_key: str | None
    body: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "idempotencyKey": self.idempotency_key,
            "body": self.body,
        }


class Receiver:
    """An aiohttp server that answers 200 to anything and queues it."""

    def __init__(self, host: str, port: int, path: str = "/callback") -> None:
        self.host = host
        self.port = port
        self.path = path
        self.received: list[Callback] = []
        self._queue: asyncio.Queue[Callback] = asyncio.Queue()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def next(self, within: float) -> Callback:
        """The next request received; TimeoutError if none comes in time."""
        return await asyncio.wait_for(self._queue.get(), within)

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        callback = Callback(
            method=request.method,
            path=request.path,
            idempotency_key=request.headers.get("Idempotency-Key"),
            body=body,
        )
        self.received.append(callback)
        self._queue.put_nowait(callback)
        return web.json_response({"received": True})
