"""The whole flow, 0.1 to 5.1, on a real stack: every function over HTTP,
every source, a real nats-server, and a requester that is called back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
import support
from nats.js import JetStreamContext
from support import eventually, messages

from noetl import buckets, records, topology
from noetl.dev.receiver import Callback, Receiver
from noetl.dev.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

EXAMPLE = "localhost/noetl/example-plugin:1.0"
FAILING = "localhost/noetl/failing-plugin:1.0"
STATUS = """
query ($refId: ID!) {
  registration(refId: $refId) { state error schema pluginName imageUrl }
}
"""


@pytest.fixture
async def requester(stack: Stack) -> AsyncIterator[Receiver]:
    receiver = Receiver(stack.host, stack.extra_port(0))
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@pytest.fixture
async def stack_js(stack: Stack) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(stack.nats_url)
    try:
        yield client.jetstream()
    finally:
        await client.close()


async def gql(stack: Stack, query: str, **variables: Any) -> dict[str, Any]:
    return await support.gql(stack.api_url, query, **variables)


async def register(stack: Stack, image: str, **fields: str) -> str:
    return await support.register(stack.api_url, image, **fields)


async def callback_for(receiver: Receiver, ref_id: str) -> Callback:
    async def arrived() -> Callback | None:
        for callback in receiver.received:
            if callback.body.get("refId") == ref_id:
                return callback
        return None

    return await eventually(arrived, within=90)


async def test_a_plugin_registers_and_the_requester_is_called_back(
    stack: Stack, requester: Receiver
) -> None:
    ref_id = await register(stack, EXAMPLE, callbackApi=requester.url)

    callback = await callback_for(requester, ref_id)
    assert callback.idempotency_key == f"{ref_id}:success"
    assert callback.body == {
        "commandType": "ReportPluginRegistration",
        "refId": ref_id,
        "pluginName": "example-plugin-1.0",
        "state": "success",
    }
    status = (await gql(stack, STATUS, refId=ref_id))["data"]["registration"]
    assert status["state"] == "SUCCESS" and status["error"] is None
    assert status["schema"]["required"] == ["url"]

    query = "query ($n: String!) { plugin(name: $n) { imageUrl refId state schema } }"
    plugin = (await gql(stack, query, n="example-plugin-1.0"))["data"]["plugin"]
    assert plugin["refId"] == ref_id and plugin["state"] == "SUCCESS"
    assert plugin["imageUrl"] == EXAMPLE


async def test_a_failing_plugin_is_reported_failed(
    stack: Stack, requester: Receiver
) -> None:
    ref_id = await register(stack, FAILING, callbackApi=requester.url)

    callback = await callback_for(requester, ref_id)
    assert callback.idempotency_key == f"{ref_id}:failed"
    assert callback.body["state"] == "failed"
    assert "exited with code" in callback.body["error"]
    status = (await gql(stack, STATUS, refId=ref_id))["data"]["registration"]
    assert status["state"] == "FAILED" and "exited with code" in status["error"]


async def test_an_image_without_a_stand_in_fails_at_once(
    stack: Stack, requester: Receiver
) -> None:
    image = "registry.example/team/unknown:2.0"
    ref_id = await register(stack, image, callbackApi=requester.url)

    callback = await callback_for(requester, ref_id)
    assert callback.body["state"] == "failed"
    assert image in callback.body["error"]


async def test_registering_a_name_again_replaces_its_image(
    stack: Stack, stack_js: JetStreamContext
) -> None:
    name = f"again-{uuid.uuid4().hex[:8]}"
    first = await register(stack, EXAMPLE, pluginName=name)
    second = await register(stack, FAILING, pluginName=name)
    kv = await stack_js.key_value(topology.REGISTRATIONS)

    async def both_final() -> bool:
        got = [await records.get(kv, ref) for ref in (first, second)]
        return all(r is not None and r.final for r in got)

    await eventually(both_final, within=90)
    history = await buckets.history(stack_js, topology.PLUGINS, name)
    assert len(history) == 2
    query = "query ($n: String!) { plugin(name: $n) { imageUrl refId state } }"
    plugin = (await gql(stack, query, n=name))["data"]["plugin"]
    assert plugin == {"imageUrl": FAILING, "refId": second, "state": "FAILED"}


POISON: list[tuple[str, bytes, dict[str, str] | None, str]] = [
    (topology.SUBJECT_API, b"not json", None, "not JSON"),
    (topology.SUBJECT_SCHEMA, b'{"eventType": "somethingElse"}', None, "no route"),
    (
        topology.SUBJECT_REGISTER,
        b'{"commandType": "RegisterPluginImage"}',
        None,
        "missing",
    ),
    (
        topology.SUBJECT_NOTIFY,
        b"[1, 2]",
        {"ce-specversion": "1.0", "ce-id": "p", "ce-source": "/t", "ce-type": "x"},
        "'x'",
    ),
]


@pytest.mark.parametrize(("subject", "data", "headers", "reason"), POISON)
async def test_a_poison_message_is_dead_lettered_and_the_flow_goes_on(
    stack: Stack,
    stack_js: JetStreamContext,
    requester: Receiver,
    subject: str,
    data: bytes,
    headers: dict[str, str] | None,
    reason: str,
) -> None:
    ack = await stack_js.publish(subject, data, headers=headers)
    stream = topology.stream_of(subject)

    async def dead() -> Any:
        for letter in await messages(stack_js, topology.DEADLETTERS):
            got = letter.headers or {}
            if got.get("Noetl-Dead-Stream") == stream and got.get(
                "Noetl-Dead-Sequence"
            ) == str(ack.seq):
                return letter
        return None

    letter = await eventually(dead, within=60)
    assert letter.subject == topology.DEADLETTER_PREFIX + subject
    assert letter.data == data
    assert reason in letter.headers["Noetl-Dead-Reason"]

    ref_id = await register(stack, EXAMPLE, callbackApi=requester.url)
    assert (await callback_for(requester, ref_id)).body["state"] == "success"
