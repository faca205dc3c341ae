"""Steps 2.1, 2.2 and 5.1: the dispatcher function.

Fed by the JetStream source with every message of the `events` stream.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from functions.dispatcher.routes import dispatch
from noetl import function

on_event = function.cloud_event("dispatcher")(dispatch)


@functions_framework.aio.http
async def handle(request: Request) -> Response:
    return await function.serve(request, on_event)
