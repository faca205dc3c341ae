"""Timers as JetStream message schedules, fired by the server itself."""

from __future__ import annotations

import asyncio
import json
import uuid

from nats.js import JetStreamContext
from support import eventually, messages

from noetl import binding, timers, topology
from noetl.models import CheckRegistration


def _check(ref_id: str) -> CheckRegistration:
    return CheckRegistration(
        ref_id=ref_id,
        plugin_name="p",
        image_url="localhost/p:1",
        reason="grace",
        error="no report",
    )


async def test_a_timer_fires_once_on_the_check_subject(js: JetStreamContext) -> None:
    ref_id = str(uuid.uuid4())
    await timers.schedule(js, _check(ref_id), after=0, function="catalog")
    await timers.schedule(js, _check(ref_id), after=0, function="catalog")

    async def fired() -> list[object]:
        return [
            m
            for m in await messages(js, topology.COMMANDS)
            if m.subject == topology.SUBJECT_CHECK
        ]

    [message] = await eventually(fired, within=15)
    assert message.headers is not None
    event = binding.from_binary(message.headers, message.data)
    assert event["type"] == "io.noetl.command.CheckRegistration"
    assert event["id"] == f"{ref_id}:check:grace"
    assert json.loads(message.data)["error"] == "no report"
    # The schedule itself is gone once it fired, and the second one replaced
    # the first rather than firing again.
    await eventually(lambda: _no_pending(js, ref_id), within=15)
    await asyncio.sleep(2)
    assert len(await fired()) == 1


async def _no_pending(js: JetStreamContext, ref_id: str) -> bool:
    pending = [
        m
        for m in await messages(js, topology.COMMANDS)
        if m.subject.startswith(topology.TIMER_PREFIX + ref_id)
    ]
    return not pending
