"""Steps 2.1, 2.2 and 5.1: the dispatcher function.

Fed by the JetStream source with every message of the `events` stream.
"""

from __future__ import annotations

import functions_framework.aio
from cloudevents.http import CloudEvent

from functions.dispatcher.routes import dispatch
from noetl import function


@functions_framework.aio.cloud_event
@function.cloud_event("dispatcher")
async def handle(event: CloudEvent) -> str:
    return await dispatch(event)
