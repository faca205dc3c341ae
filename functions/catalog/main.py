"""Steps 3.1 to 3.3 and how runs end: the catalog function.

Fed by the JetStream source with the `commands` stream's
`catalog.plugin.register` and `catalog.plugin.check` subjects, and, with the
kubernetes job backend, by an ApiServerSource with the Job events of its
registration Jobs. Each event goes to the handler its type names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import functions_framework.aio
from cloudevents.http import CloudEvent
from starlette.requests import Request
from starlette.responses import Response

from functions.catalog import jobevents
from functions.catalog.checks import check
from functions.catalog.register import register
from noetl import function
from noetl.errors import UnknownMessageType
from noetl.models import CheckRegistration, RegisterPluginImage

ROUTES: dict[str, Callable[[CloudEvent], Awaitable[str]]] = {
    RegisterPluginImage.ce_type(): register,
    CheckRegistration.ce_type(): check,
    jobevents.ADD: jobevents.changed,
    jobevents.UPDATE: jobevents.changed,
    jobevents.DELETE: jobevents.deleted,
}


@function.cloud_event("catalog")
async def on_event(event: CloudEvent) -> str:
    route = ROUTES.get(event["type"])
    if route is None:
        raise UnknownMessageType(event["type"], list(ROUTES))
    return await route(event)


@functions_framework.aio.http
async def handle(request: Request) -> Response:
    return await function.serve(request, on_event)
