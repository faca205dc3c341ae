"""The source hop's function: publish the event's data onward, then return.

As trivial as a function can be while still doing what ours do: one
JetStream publish, awaited, per CloudEvent. The data names the subject to
publish to (``out``), so one process serves every run of the benchmark.
"""

from __future__ import annotations

import asyncio
import json
import os

import functions_framework.aio
import nats
from cloudevents.http import CloudEvent
from nats.js import JetStreamContext

_js: JetStreamContext | None = None
_lock = asyncio.Lock()


async def _jetstream() -> JetStreamContext:
    # Connected on the first event, as ours are: never before gunicorn forks.
    global _js
    async with _lock:
        if _js is None:
            client = await nats.connect(os.environ["NATS_URL"])
            _js = client.jetstream()
    return _js


@functions_framework.aio.cloud_event
async def handle(event: CloudEvent) -> None:
    data = event.get_data()
    assert isinstance(data, dict)
    js = _js or await _jetstream()
    await js.publish(data["out"], json.dumps(data).encode())
