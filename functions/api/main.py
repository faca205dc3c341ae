"""Steps 1.1 and 1.2: the api function, GraphQL at ``/gql`` (alias ``/graphql``).

Served by the functions-framework CLI in its ``--asgi`` mode, which hands
every path to :func:`handle`. ``/healthz`` answers without touching NATS, so
that a readiness probe says whether the process serves, not whether NATS is up.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.api import transport
from functions.api.resolvers import Context
from noetl import logs, settings

log = logging.getLogger("functions.api")

Endpoint = Callable[[Request, Context], Awaitable[Response]]


@functions_framework.aio.http
async def handle(request: Request) -> Response:
    _setup_logging()
    started = time.perf_counter()
    context = Context()
    endpoint = ENDPOINTS.get(request.url.path, not_found)
    response = await endpoint(request, context)

    # A probe every few seconds would drown the lines that matter.
    level = logging.DEBUG if endpoint is healthz else logging.INFO
    extra: dict[str, object] = {"ms": round((time.perf_counter() - started) * 1000, 1)}
    if context.operation:
        extra["operation"] = context.operation
    with logs.bound(refId=context.ref_id):
        log.log(
            level,
            "%s %s %d",
            request.method,
            request.url.path,
            response.status_code,
            extra=extra,
        )
    return response


async def healthz(request: Request, context: Context) -> Response:
    return JSONResponse({"status": "ok"})


async def not_found(request: Request, context: Context) -> Response:
    message = f"no such path {request.url.path!r}; GraphQL is served at /gql"
    return JSONResponse({"errors": [{"message": message}]}, 404)


ENDPOINTS: dict[str, Endpoint] = {
    "/gql": transport.endpoint,
    "/graphql": transport.endpoint,
    "/healthz": healthz,
}


@functools.cache
def _setup_logging() -> None:
    logs.setup("api", settings.load().log_level)
