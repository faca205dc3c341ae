"""Many registrations at once: every one gets exactly one outcome.

``make test`` runs it with a few tens of registrations; ``make soak`` sets
NOETL_SOAK_REGISTRATIONS=500. It counts, it does not time.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter

import nats
import pytest
from nats.js import JetStreamContext
from support import Requester, eventually, messages, register

from noetl import records, topology
from noetl.dev.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

COUNT = int(os.environ.get("NOETL_SOAK_REGISTRATIONS", "30"))
EXAMPLE = "localhost/noetl/example-plugin:1.0"
FAILING = "localhost/noetl/failing-plugin:1.0"
STACK_ENV = {"NOETL_JOB_CONCURRENCY": "8"}


async def test_concurrent_registrations_none_lost_none_doubled(
    stack: Stack, requester: Requester
) -> None:
    images = [FAILING if i % 5 == 4 else EXAMPLE for i in range(COUNT)]
    limit = asyncio.Semaphore(50)

    async def submit(image: str) -> tuple[str, str]:
        async with limit:
            return await register(
                stack.api_url, image, callbackApi=requester.url
            ), image

    submitted = dict(await asyncio.gather(*(submit(image) for image in images)))
    assert len(submitted) == COUNT

    client = await nats.connect(stack.nats_url)
    try:
        js = client.jetstream()
        await eventually(lambda: _all_final(js, list(submitted)), within=COUNT * 3)
        await eventually(
            lambda: _all_called(requester, list(submitted)), within=COUNT * 2
        )
        outcomes = await _outcomes(js, list(submitted))
        reports = Counter(
            json.loads(m.data)["refId"]
            for m in await messages(js, topology.COMMANDS)
            if m.subject == topology.SUBJECT_NOTIFY
        )
    finally:
        await client.close()

    repeats = 0
    for ref_id, image in submitted.items():
        expected = "failed" if image == FAILING else "success"
        assert outcomes[ref_id] == expected, ref_id
        assert reports[ref_id] == 1, ref_id
        # One outcome per refId. A callback may arrive twice with the same
        # Idempotency-Key when its answer was slower than the notifier's
        # timeout: that is at-least-once, and the key lets the requester drop it.
        delivered = requester.delivered(ref_id)
        assert set(delivered) == {f"{ref_id}:{expected}"}, ref_id
        repeats += len(delivered) - 1
    print(f"{COUNT} registrations, {repeats} repeated callbacks")


async def _outcomes(js: JetStreamContext, ref_ids: list[str]) -> dict[str, str]:
    kv = await js.key_value(topology.REGISTRATIONS)
    found = {}
    for ref_id in ref_ids:
        record = await records.get(kv, ref_id)
        if record is not None and record.final:
            found[ref_id] = record.state
    return found


async def _all_final(js: JetStreamContext, ref_ids: list[str]) -> bool:
    return len(await _outcomes(js, ref_ids)) == len(ref_ids)


async def _all_called(requester: Requester, ref_ids: list[str]) -> bool:
    return all(requester.delivered(ref_id) for ref_id in ref_ids)
