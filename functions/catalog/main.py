"""Steps 3.1 to 3.3: the catalog function.

Fed by the JetStream source with the `commands` stream's
`catalog.plugin.register` subject.
"""

from __future__ import annotations

import functions_framework.aio
from cloudevents.http import CloudEvent

from functions.catalog.register import register
from noetl import function


@functions_framework.aio.cloud_event
@function.cloud_event("catalog")
async def handle(event: CloudEvent) -> str:
    return await register(event)
