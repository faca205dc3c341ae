"""The bare HTTP function: answers 200, optionally after the api's imports."""

from __future__ import annotations

import functions_framework.aio
from preload import preload
from starlette.requests import Request
from starlette.responses import Response

preload()


@functions_framework.aio.http
async def handle(request: Request) -> Response:
    await request.body()
    return Response('{"data": {}}', media_type="application/json")
