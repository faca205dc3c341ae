"""The bare CloudEvent function: accepts the event, optionally after imports."""

from __future__ import annotations

import functions_framework.aio
from cloudevents.http import CloudEvent
from preload import preload

preload()


@functions_framework.aio.cloud_event
async def handle(event: CloudEvent) -> None:
    return None
