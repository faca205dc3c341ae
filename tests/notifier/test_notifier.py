"""The notifier: one callback per outcome, retried through redelivery.

The handler runs in this process against a real nats-server; respx stands in
for the requester's endpoint, the edge of the system.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from cloudevents.http import CloudEvent
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from starlette.exceptions import HTTPException

from functions.notifier import callback, main
from noetl import records, topology
from noetl.messages import event_for
from noetl.models import ReportPluginRegistration

CALLBACK = "http://requester.example/callback"


@pytest.fixture
async def kv(js: JetStreamContext, core: None) -> AsyncIterator[KeyValue]:
    yield await js.key_value(topology.REGISTRATIONS)
    await callback.close()


async def _registration(
    kv: KeyValue, callback_api: str | None = CALLBACK
) -> records.Registration:
    record = records.Registration(
        ref_id=str(uuid.uuid4()),
        plugin_name="example-plugin-1.0",
        image_url="localhost/noetl/example-plugin:1.0",
        callback_api=callback_api,
        state=records.SUCCESS,
    )
    return await records.create(kv, record)


def _report(record: records.Registration, state: str = "success") -> CloudEvent:
    report = ReportPluginRegistration(
        ref_id=record.ref_id, plugin_name=record.plugin_name, state=state
    )
    return event_for(report, "dispatcher", topology.SUBJECT_NOTIFY)


async def test_posts_the_report_with_an_idempotency_key(kv: KeyValue) -> None:
    record = await _registration(kv)
    with respx.mock:
        route = respx.post(CALLBACK).mock(return_value=httpx.Response(204))
        await main.on_event(_report(record))
        await main.on_event(_report(record))  # a redelivery

    assert route.call_count == 1
    sent = route.calls.last.request
    assert sent.headers["Idempotency-Key"] == f"{record.ref_id}:success"
    assert sent.headers["Content-Type"] == "application/json"
    assert httpx.Response(200, content=sent.content).json() == {
        "commandType": "ReportPluginRegistration",
        "refId": record.ref_id,
        "pluginName": "example-plugin-1.0",
        "state": "success",
    }
    stored = await records.get(kv, record.ref_id)
    assert stored is not None and stored.callback is not None
    assert stored.callback["status"] == 204 and stored.callback["done"]


@pytest.mark.parametrize("scheme", ["http", "https", "HTTPS"])
async def test_each_scheme_has_one_client_for_the_process(
    kv: KeyValue, scheme: str
) -> None:
    url = f"{scheme}://requester.example/callback"
    first, second = await _registration(kv, url), await _registration(kv, url)
    with respx.mock:
        route = respx.post(url.lower()).mock(return_value=httpx.Response(200))
        await main.on_event(_report(first))
        await main.on_event(_report(second))

    assert route.call_count == 2
    assert callback.client(url) is callback.client(url)
    other = "http" if scheme.lower() == "https" else "https"
    assert callback.client(f"{other}://x") is not callback.client(url)


async def test_a_failing_endpoint_answers_503_with_retry_after(kv: KeyValue) -> None:
    record = await _registration(kv)
    with respx.mock:
        route = respx.post(CALLBACK).mock(
            side_effect=[
                httpx.Response(503, headers={"Retry-After": "7"}),
                httpx.ConnectError("refused"),
                httpx.Response(200),
            ]
        )
        with pytest.raises(HTTPException) as first:
            await main.on_event(_report(record))
        assert first.value.status_code == 503
        assert first.value.headers == {"Retry-After": "7"}
        with pytest.raises(HTTPException) as second:
            await main.on_event(_report(record))
        assert second.value.status_code == 503
        await main.on_event(_report(record))
    assert route.call_count == 3


async def test_a_slow_endpoint_is_bounded_by_the_timeout(kv: KeyValue) -> None:
    record = await _registration(kv)
    with respx.mock:
        respx.post(CALLBACK).mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(HTTPException) as caught:
            await main.on_event(_report(record))
    assert caught.value.status_code == 503
    assert "could not be reached" in caught.value.detail


async def test_a_refusing_endpoint_is_final(kv: KeyValue) -> None:
    record = await _registration(kv)
    with respx.mock:
        respx.post(CALLBACK).mock(return_value=httpx.Response(400))
        with pytest.raises(HTTPException) as caught:
            await main.on_event(_report(record))
    assert caught.value.status_code == 422
    assert "answered 400" in caught.value.detail


async def test_without_a_callback_nobody_is_called(kv: KeyValue) -> None:
    record = await _registration(kv, callback_api=None)
    with respx.mock:
        await main.on_event(_report(record))
        assert not respx.calls
    stored = await records.get(kv, record.ref_id)
    assert stored is not None and stored.callback is not None
    assert stored.callback["note"] == "none"


async def test_an_unknown_registration_is_retried(kv: KeyValue) -> None:
    record = records.Registration(
        ref_id=str(uuid.uuid4()), plugin_name="p", image_url="i"
    )
    with pytest.raises(HTTPException) as caught:
        await main.on_event(_report(record))
    assert caught.value.status_code == 404


async def test_a_bad_report_is_refused(kv: KeyValue) -> None:
    event = CloudEvent(
        {"id": "x", "source": "/t", "type": ReportPluginRegistration.ce_type()},
        {"refId": "x"},
    )
    with pytest.raises(HTTPException) as caught:
        await main.on_event(event)
    assert caught.value.status_code == 400
