"""Nothing lost, nothing doubled: the whole stack under faults.

Real processes throughout: the supervised stack of ``noetl dev`` with a
nats-server on file storage, and a requester whose answers the test scripts.
Parts are killed with SIGKILL, as a crash would end them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext
from support import Requester, eventually, messages, register

from noetl import records, topology
from noetl.dev.supervisor import Supervisor

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

EXAMPLE = "localhost/noetl/example-plugin:1.0"
STACK_ENV = {
    "NOETL_SOURCE_BACKOFF_SECONDS": "0.2",
    "NOETL_SOURCE_BACKOFF_MAX_SECONDS": "2",
    "NOETL_SOURCE_MAX_DELIVER": "30",
    "NOETL_SOURCE_ACK_WAIT_SECONDS": "5",
    "NOETL_CALLBACK_TIMEOUT_SECONDS": "1",
}


@pytest.fixture
async def stack_js(supervisor: Supervisor) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(supervisor.stack.nats_url, max_reconnect_attempts=-1)
    try:
        yield client.jetstream()
    finally:
        await client.close()


async def final_states(js: JetStreamContext, ref_ids: list[str]) -> dict[str, str]:
    kv = await js.key_value(topology.REGISTRATIONS)
    states = {}
    for ref_id in ref_ids:
        record = await records.get(kv, ref_id)
        if record is not None and record.final:
            states[ref_id] = record.state
    return states


async def wait_final(
    js: JetStreamContext, ref_ids: list[str], within: float = 180
) -> dict[str, str]:
    async def all_final() -> dict[str, str] | None:
        states = await final_states(js, ref_ids)
        return states if len(states) == len(ref_ids) else None

    return await eventually(all_final, within=within)


async def reports(js: JetStreamContext) -> dict[str, int]:
    """How many 5.1 reports the commands stream holds, by refId."""
    counts: dict[str, int] = {}
    for message in await messages(js, topology.COMMANDS):
        if message.subject == topology.SUBJECT_NOTIFY:
            ref_id = json.loads(message.data)["refId"]
            counts[ref_id] = counts.get(ref_id, 0) + 1
    return counts


def kill(supervisor: Supervisor, part: str) -> None:
    """SIGKILL a part's whole process group and wait for its restart."""
    pid = supervisor.pid(part)
    assert pid is not None
    starts = supervisor.starts(part)
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not (supervisor.starts(part) > starts and supervisor.is_ready(part)):
        assert time.monotonic() < deadline, f"{part} did not come back"
        time.sleep(0.1)


async def test_a_nats_server_killed_mid_flow_loses_no_registration(
    supervisor: Supervisor, stack_js: JetStreamContext, requester: Requester
) -> None:
    api = supervisor.stack.api_url
    given = [await register(api, EXAMPLE, callbackApi=requester.url) for _ in range(5)]

    await asyncio.to_thread(kill, supervisor, "nats")
    for _ in range(5):
        # While NATS comes back some requests are refused; those got no refId.
        try:
            given.append(await register(api, EXAMPLE, callbackApi=requester.url))
        except AssertionError:
            await asyncio.sleep(0.5)

    states = await wait_final(stack_js, given)
    assert set(states.values()) == {"success"}
    await eventually(lambda: _all_called(requester, given), within=120)


async def _all_called(requester: Requester, ref_ids: list[str]) -> bool:
    return all(requester.delivered(ref_id) for ref_id in ref_ids)


@pytest.mark.parametrize("part", ["dispatcher", "catalog", "notifier"])
async def test_a_function_killed_mid_flow_completes_each_registration_once(
    supervisor: Supervisor,
    stack_js: JetStreamContext,
    requester: Requester,
    part: str,
) -> None:
    api = supervisor.stack.api_url
    given = []
    for i in range(6):
        ref_id = await register(api, EXAMPLE, callbackApi=requester.url)
        requester.scripts[ref_id] = [0.5]  # a slow answer keeps POSTs in flight
        given.append(ref_id)
        if i == 2:
            await asyncio.to_thread(kill, supervisor, part)

    states = await wait_final(stack_js, given)
    assert set(states.values()) == {"success"}
    await eventually(lambda: _all_called(requester, given), within=120)
    counted = await reports(stack_js)
    assert all(counted.get(ref_id) == 1 for ref_id in given), counted
    for ref_id in given:
        assert set(requester.delivered(ref_id)) == {f"{ref_id}:success"}


async def test_a_callback_that_fails_for_a_while_is_delivered_once_it_answers(
    supervisor: Supervisor, stack_js: JetStreamContext, requester: Requester
) -> None:
    api = supervisor.stack.api_url
    flaky = await register(api, EXAMPLE, callbackApi=requester.url)
    requester.scripts[flaky] = [503, 500, 503, 200]
    slow = await register(api, EXAMPLE, callbackApi=requester.url)
    requester.scripts[slow] = [3.0, 3.0]  # beyond the 1 s callback timeout

    await eventually(lambda: _all_called(requester, [flaky, slow]), within=120)
    assert requester.delivered(flaky) == [f"{flaky}:success"]
    statuses = [status for ref, _, status in requester.calls if ref == flaky]
    assert statuses == [503, 500, 503, 200]


async def test_a_callback_endpoint_that_is_down_is_called_when_it_is_back(
    supervisor: Supervisor, stack_js: JetStreamContext
) -> None:
    requester = Requester()
    await requester.start()
    url, port = requester.url, requester.port
    await requester.stop()  # down: connections are refused

    ref_id = await register(supervisor.stack.api_url, EXAMPLE, callbackApi=url)
    await wait_final(stack_js, [ref_id])
    await asyncio.sleep(2)
    await requester.start(port)
    try:
        await eventually(lambda: _all_called(requester, [ref_id]), within=120)
    finally:
        await requester.stop()


async def test_a_callback_refused_with_400_is_dead_lettered_at_once(
    supervisor: Supervisor, stack_js: JetStreamContext, requester: Requester
) -> None:
    ref_id = await register(
        supervisor.stack.api_url, EXAMPLE, callbackApi=requester.url
    )
    requester.scripts[ref_id] = [400]

    async def dead_letter() -> object:
        for letter in await messages(stack_js, topology.DEADLETTERS):
            if json.loads(letter.data).get("refId") == ref_id:
                return letter
        return None

    letter = await eventually(dead_letter, within=120)
    assert letter.headers["Noetl-Dead-Subject"] == topology.SUBJECT_NOTIFY
    assert letter.headers["Noetl-Dead-Status"] == "422"
    assert letter.headers["Noetl-Dead-Attempts"] == "1"
    assert "answered 400" in letter.headers["Noetl-Dead-Reason"]
    assert len([c for c in requester.calls if c[0] == ref_id]) == 1


async def test_a_replayed_command_has_one_outcome_and_no_second_callback(
    supervisor: Supervisor, stack_js: JetStreamContext, requester: Requester
) -> None:
    ref_id = await register(
        supervisor.stack.api_url, EXAMPLE, callbackApi=requester.url
    )
    await wait_final(stack_js, [ref_id])
    await eventually(lambda: _all_called(requester, [ref_id]), within=60)

    # Publish every stored message of this registration again, past the
    # duplicate window (no Nats-Msg-Id): each handler must see it is done.
    for stream in (topology.EVENTS, topology.COMMANDS):
        for message in await messages(stack_js, stream):
            if message.subject.startswith(topology.TIMER_PREFIX):
                continue
            data = json.loads(message.data)
            if data.get("refId") != ref_id:
                continue
            headers = dict(message.headers or {})
            headers.pop("Nats-Msg-Id", None)
            await stack_js.publish(message.subject, message.data, headers=headers)

    await asyncio.sleep(8)
    kv = await stack_js.key_value(topology.REGISTRATIONS)
    record = await records.get(kv, ref_id)
    assert record is not None and record.state == "success"
    assert [h["state"] for h in record.history] == [
        "received",
        "registering",
        "success",
    ]
    assert len(requester.delivered(ref_id)) == 1
