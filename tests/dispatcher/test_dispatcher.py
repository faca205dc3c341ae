"""The dispatcher over real HTTP: events in, commands out, outcomes decided."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from cloudevents.http import CloudEvent
from nats.js import JetStreamContext
from support import messages, post_event

from functions.dispatcher.routes import ROUTES
from noetl import records, topology
from noetl.messages import event_for
from noetl.models import (
    RegistrationRequested,
    SchemaRegistrationCompleted,
    SchemaRegistrationFailed,
)

IMAGE = "localhost/noetl/example-plugin:1.0"
SCHEMA = {"type": "object", "properties": {"url": {"type": "string"}}}


@pytest.fixture
def dispatcher(serve: object) -> str:
    return serve("dispatcher")  # type: ignore[operator]


def _requested(ref_id: str, **extra: object) -> CloudEvent:
    event = RegistrationRequested(
        ref_id=ref_id,
        plugin_name="example-plugin-1.0",
        image_url=IMAGE,
        request_source={"gateway": "API"},
        **extra,  # type: ignore[arg-type]
    )
    return event_for(event, "api", topology.SUBJECT_API)


def _completed(ref_id: str) -> CloudEvent:
    event = SchemaRegistrationCompleted(
        ref_id=ref_id, plugin_name="example-plugin-1.0", schema=SCHEMA
    )
    return event_for(event, "plugin", topology.SUBJECT_SCHEMA)


def _failed(ref_id: str, error: str = "exit 3") -> CloudEvent:
    event = SchemaRegistrationFailed(
        ref_id=ref_id, plugin_name="example-plugin-1.0", image_url=IMAGE, error=error
    )
    return event_for(event, "catalog", topology.SUBJECT_SCHEMA)


def test_the_routing_table_covers_every_event() -> None:
    assert set(ROUTES) == {
        RegistrationRequested.ce_type(),
        SchemaRegistrationCompleted.ce_type(),
        SchemaRegistrationFailed.ce_type(),
    }


async def test_a_request_becomes_a_register_command(
    dispatcher: str, js: JetStreamContext
) -> None:
    ref_id = str(uuid.uuid4())
    assert (await post_event(dispatcher, _requested(ref_id))).status_code == 200
    assert (await post_event(dispatcher, _requested(ref_id))).status_code == 200

    stored = await messages(js, topology.COMMANDS)
    [command] = [m for m in stored if m.subject == topology.SUBJECT_REGISTER]
    # The registration's deadline waits as a message schedule.
    [timer] = [m for m in stored if m.subject.startswith(topology.TIMER_PREFIX)]
    assert timer.subject == f"{topology.TIMER_PREFIX}{ref_id}.deadline"
    assert timer.headers is not None
    assert timer.headers["Nats-Schedule"].startswith("@at ")
    assert timer.headers["Nats-Schedule-Target"] == topology.SUBJECT_CHECK
    assert command.headers is not None
    assert command.headers["Nats-Msg-Id"] == f"{ref_id}:2.2"
    assert command.headers["ce-type"] == "io.noetl.command.RegisterPluginImage"
    assert command.headers["ce-source"] == "/noetl/dispatcher"
    assert json.loads(command.data) == {
        "commandType": "RegisterPluginImage",
        "refId": ref_id,
        "pluginName": "example-plugin-1.0",
        "imageUrl": IMAGE,
        "requestSource": {"gateway": "API"},
    }


async def test_a_request_from_elsewhere_creates_the_record(
    dispatcher: str, js: JetStreamContext
) -> None:
    ref_id = str(uuid.uuid4())
    event = _requested(ref_id, callback_api="http://cb.example/x")
    assert (await post_event(dispatcher, event)).status_code == 200

    kv = await js.key_value(topology.REGISTRATIONS)
    record = await records.get(kv, ref_id)
    assert record is not None and record.state == records.RECEIVED
    assert record.callback_api == "http://cb.example/x"


async def test_the_first_outcome_wins_and_is_reported_once(
    dispatcher: str, js: JetStreamContext
) -> None:
    ref_id = str(uuid.uuid4())
    await post_event(dispatcher, _requested(ref_id))
    for event in (_completed(ref_id), _failed(ref_id), _completed(ref_id)):
        assert (await post_event(dispatcher, event)).status_code == 200

    kv = await js.key_value(topology.REGISTRATIONS)
    record = await records.get(kv, ref_id)
    assert record is not None
    assert record.state == records.SUCCESS and record.schema == SCHEMA
    assert record.reported_at is not None
    reports = [
        m
        for m in await messages(js, topology.COMMANDS)
        if m.subject == topology.SUBJECT_NOTIFY
    ]
    assert len(reports) == 1
    assert json.loads(reports[0].data) == {
        "commandType": "ReportPluginRegistration",
        "refId": ref_id,
        "pluginName": "example-plugin-1.0",
        "state": "success",
    }


async def test_a_failure_is_recorded_with_its_reason(
    dispatcher: str, js: JetStreamContext
) -> None:
    ref_id = str(uuid.uuid4())
    await post_event(dispatcher, _requested(ref_id))
    await post_event(dispatcher, _failed(ref_id, "plugin exited with 3"))

    kv = await js.key_value(topology.REGISTRATIONS)
    record = await records.get(kv, ref_id)
    assert record is not None and record.state == records.FAILED
    assert record.error == "plugin exited with 3"
    [report] = [
        m
        for m in await messages(js, topology.COMMANDS)
        if m.subject == topology.SUBJECT_NOTIFY
    ]
    assert json.loads(report.data)["state"] == "failed"
    assert json.loads(report.data)["error"] == "plugin exited with 3"


async def test_an_outcome_without_a_record_is_adopted(
    dispatcher: str, js: JetStreamContext
) -> None:
    ref_id = str(uuid.uuid4())
    assert (await post_event(dispatcher, _failed(ref_id))).status_code == 200
    kv = await js.key_value(topology.REGISTRATIONS)
    record = await records.get(kv, ref_id)
    assert record is not None and record.state == records.FAILED
    assert record.image_url == IMAGE


@pytest.mark.parametrize(
    ("ce_type", "data", "reason"),
    [
        ("io.noetl.event.Unknown", {"refId": "x"}, "no route"),
        (RegistrationRequested.ce_type(), {"refId": str(uuid.uuid4())}, "missing"),
        (SchemaRegistrationCompleted.ce_type(), ["not", "an", "object"], "object"),
    ],
)
async def test_bad_events_are_refused_with_400(
    dispatcher: str, js: JetStreamContext, ce_type: str, data: object, reason: str
) -> None:
    event = CloudEvent({"id": "x", "source": "/t", "type": ce_type}, data)
    response = await post_event(dispatcher, event)
    assert response.status_code == 400
    assert reason in response.text
    assert await messages(js, topology.COMMANDS) == []


async def test_health_and_what_is_not_a_cloud_event(dispatcher: str) -> None:
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{dispatcher}/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert (await client.get(dispatcher)).status_code == 405
        garbage = await client.post(dispatcher, content=b"{}")
        assert garbage.status_code == 400
        assert "not a CloudEvent" in garbage.json()["error"]
