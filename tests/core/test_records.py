"""The registration record: compare-and-set, one-way states."""

from __future__ import annotations

import asyncio
import uuid

from nats.js import JetStreamContext

from noetl import records, topology


def _record() -> records.Registration:
    return records.Registration(
        ref_id=str(uuid.uuid4()), plugin_name="p", image_url="localhost/p:1"
    )


async def test_create_is_idempotent(js: JetStreamContext) -> None:
    kv = await js.key_value(topology.REGISTRATIONS)
    first = await records.create(kv, _record())
    again = await records.create(kv, records.Registration(**{**vars(first)}))
    assert again.revision == first.revision
    assert again.history == [{"state": "received", "at": first.updated_at}]


async def test_states_move_one_way(js: JetStreamContext) -> None:
    kv = await js.key_value(topology.REGISTRATIONS)
    record = await records.create(kv, _record())

    stored, wrote = await records.advance(kv, record.ref_id, records.REGISTERING)
    assert wrote and stored is not None and stored.state == "registering"
    _, wrote = await records.advance(kv, record.ref_id, records.RECEIVED)
    assert not wrote

    stored, wrote = await records.advance(
        kv, record.ref_id, records.SUCCESS, schema={"type": "object"}
    )
    assert wrote and stored is not None and stored.schema == {"type": "object"}
    stored, wrote = await records.advance(kv, record.ref_id, records.FAILED, error="x")
    assert not wrote and stored is not None and stored.state == "success"
    assert [h["state"] for h in stored.history] == [
        "received",
        "registering",
        "success",
    ]


async def test_racing_outcomes_first_wins(js: JetStreamContext) -> None:
    kv = await js.key_value(topology.REGISTRATIONS)
    record = await records.create(kv, _record())
    results = await asyncio.gather(
        *(
            records.advance(kv, record.ref_id, state, error=state)
            for state in [records.SUCCESS, records.FAILED] * 5
        )
    )
    assert sum(wrote for _, wrote in results) == 1


async def test_missing_record(js: JetStreamContext) -> None:
    kv = await js.key_value(topology.REGISTRATIONS)
    assert await records.advance(kv, str(uuid.uuid4()), records.FAILED) == (None, False)
