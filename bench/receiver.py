"""The requester's callback endpoint: answers 200 and notes when each came."""

from __future__ import annotations

import json
import time

from aiohttp import web

from bench.harness import HOST, Arrivals


class Receiver:
    """An aiohttp server on a free port that keeps each refId's arrival time."""

    def __init__(self) -> None:
        self.arrivals = Arrivals()
        self.calls = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/callback"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/callback", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        now = time.time()
        body = json.loads(await request.read())
        self.calls += 1
        self.arrivals.add(str(body.get("refId")), now)
        return web.json_response({"received": True})
