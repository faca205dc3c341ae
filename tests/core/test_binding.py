"""The CloudEvents NATS binding: four conversions and the plain-JSON reading."""

from __future__ import annotations

import json

import pytest
from cloudevents.http import CloudEvent

from noetl import binding
from noetl.errors import InvalidCloudEvent


def _event(**extra: str) -> CloudEvent:
    return CloudEvent(
        {
            "id": "r:1.2",
            "source": "/noetl/api",
            "type": "io.noetl.event.X",
            "datacontenttype": "application/json",
            **extra,
        },
        {"refId": "r", "n": 1},
    )


def test_binary_round_trip() -> None:
    headers, payload = binding.to_binary(_event(subject='a b%c"é'))
    assert headers["ce-id"] == "r:1.2"
    assert headers["Nats-Msg-Id"] == "r:1.2"
    assert headers["Content-Type"] == "application/json"
    assert headers["ce-subject"] == "a%20b%25c%22%C3%A9"
    assert json.loads(payload) == {"refId": "r", "n": 1}

    back = binding.from_binary(headers, payload)
    assert back["subject"] == 'a b%c"é'
    assert back.get_data() == {"refId": "r", "n": 1}
    assert back["specversion"] == "1.0"


def test_structured_round_trip() -> None:
    headers, payload = binding.to_structured(_event())
    assert headers["Content-Type"] == binding.STRUCTURED
    body = json.loads(payload)
    assert body["data"] == {"refId": "r", "n": 1} and body["id"] == "r:1.2"

    back = binding.from_structured(headers, payload)
    assert back["type"] == "io.noetl.event.X" and back.get_data()["n"] == 1


def test_structured_binary_data_is_base64() -> None:
    event = CloudEvent(
        {"id": "1", "source": "/s", "type": "t", "datacontenttype": "image/png"},
        b"\x00\x01",
    )
    back = binding.from_structured({}, binding.to_structured(event)[1])
    assert back.get_data() == b"\x00\x01"


def test_from_message_detects_each_mode() -> None:
    where = {"stream": "events", "subject": "dispatcher.api", "sequence": 7}
    headers, payload = binding.to_binary(_event())
    assert binding.from_message(headers, payload, **where)["id"] == "r:1.2"
    headers, payload = binding.to_structured(_event())
    assert binding.from_message(headers, payload, **where)["id"] == "r:1.2"


def test_plain_json_gets_derived_attributes() -> None:
    where = {
        "stream": "events",
        "subject": "catalog.schema.registration",
        "sequence": 7,
    }
    plain = json.dumps({"eventType": "pluginSchemaRegistrationCompleted"}).encode()
    event = binding.from_message(None, plain, **where)
    assert event["id"] == "events:7"
    assert event["type"] == "io.noetl.event.pluginSchemaRegistrationCompleted"
    assert event["source"] == "nats://events/catalog.schema.registration"

    event = binding.from_message({"Nats-Msg-Id": "m-1"}, b'{"a": 1}', **where)
    assert event["id"] == "m-1"
    assert event["type"] == "io.noetl.message.catalog.schema.registration"


@pytest.mark.parametrize(
    ("headers", "payload"),
    [
        ({}, b"not json"),
        ({}, b"[1, 2]"),
        ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s"}, b"{}"),
        ({"Content-Type": binding.STRUCTURED}, b'{"id": "1"}'),
        (
            {"Content-Type": binding.STRUCTURED},
            b'{"specversion": "2.0", "id": "1", "source": "/", "type": "t"}',
        ),
        (
            {"Content-Type": binding.STRUCTURED},
            b'{"id": "1", "source": "/", "type": "t", "data_base64": "!!!"}',
        ),
        (
            {"ce-specversion": "1.0", "ce-id": "%FF", "ce-source": "/", "ce-type": "t"},
            b"{}",
        ),
        (
            {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/", "ce-type": "t"},
            b"{broken",
        ),
    ],
)
def test_unreadable_messages_are_refused(
    headers: dict[str, str], payload: bytes
) -> None:
    with pytest.raises(InvalidCloudEvent):
        binding.from_message(headers, payload, stream="s", subject="x", sequence=1)
