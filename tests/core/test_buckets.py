"""Reading a bucket whole: live keys and a key's revisions, never a false empty."""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext

from noetl import buckets, topology


async def test_an_empty_bucket_has_no_keys(js: JetStreamContext) -> None:
    assert await buckets.keys(js, topology.PLUGINS) == []
    assert await buckets.history(js, topology.PLUGINS, "none") == []


async def test_keys_are_the_live_ones_past_one_pull(js: JetStreamContext) -> None:
    kv = await js.key_value(topology.PLUGINS)
    count = buckets.BATCH * 2 + 7
    await asyncio.gather(*(kv.put(f"p{i}", b"{}") for i in range(count)))
    await kv.put("p1", b'{"again": true}')
    await kv.delete("p2")
    await kv.purge("p3")

    found = await buckets.keys(js, topology.PLUGINS)

    assert len(found) == len(set(found))
    assert set(found) == {f"p{i}" for i in range(count)} - {"p2", "p3"}


async def test_a_key_written_just_now_is_listed(js: JetStreamContext) -> None:
    # The case nats-py's own keys() can get wrong (nats-io/nats.py#842): a
    # replay made while the newest message may still be in flight.
    kv = await js.key_value(topology.REGISTRATIONS)
    for i in range(30):
        await kv.put(f"r{i}", b"{}")
        assert len(await buckets.keys(js, topology.REGISTRATIONS)) == i + 1


async def test_history_is_oldest_first_with_deletes(js: JetStreamContext) -> None:
    kv = await js.key_value(topology.PLUGINS)
    await kv.put("p", b"one")
    await kv.put("other", b"x")
    await kv.put("p", b"two")
    await kv.delete("p")

    history = await buckets.history(js, topology.PLUGINS, "p")

    assert [(e.key, e.value, e.operation) for e in history] == [
        ("p", b"one", None),
        ("p", b"two", None),
        ("p", b"", "DEL"),
    ]
    assert [e.revision for e in history] == sorted(e.revision for e in history)


async def test_a_replay_leaves_no_consumer_behind(js: JetStreamContext) -> None:
    kv = await js.key_value(topology.PLUGINS)
    await kv.put("p", b"{}")
    await buckets.keys(js, topology.PLUGINS)
    await buckets.history(js, topology.PLUGINS, "p")
    info = await js.stream_info(f"KV_{topology.PLUGINS}")
    assert info.state.consumer_count == 0


async def test_keys_end_while_writes_go_on(js: JetStreamContext) -> None:
    kv = await js.key_value(topology.PLUGINS)
    await asyncio.gather(*(kv.put(f"p{i}", b"{}") for i in range(100)))
    stop = asyncio.Event()

    async def write() -> None:
        i = 0
        while not stop.is_set():
            await kv.put(f"new{i % 50}", b"{}")
            i += 1

    writer = asyncio.create_task(write())
    try:
        found = await asyncio.wait_for(buckets.keys(js, topology.PLUGINS), 30)
    finally:
        stop.set()
        await writer
    assert {f"p{i}" for i in range(100)} <= set(found)
