"""A stored message as its HTTP request: the direct paths agree with the SDK's."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from cloudevents.http import CloudEvent

from noetl import binding
from noetl.errors import InvalidCloudEvent
from sources.jetstream.convert import Converter, for_event
from sources.jetstream.deadletter import Original

STREAM, SUBJECT, SEQUENCE = "noetl", "noetl.events.x", 7


def _stored(headers: dict[str, str], data: bytes) -> Original:
    return Original(STREAM, SUBJECT, SEQUENCE, headers, data)


def _event(**extra: str) -> CloudEvent:
    return CloudEvent(
        {
            "id": "r1:1.2",
            "source": "/noetl/api",
            "type": "io.noetl.event.Thing",
            "datacontenttype": "application/json",
            **extra,
        },
        {"refId": "r1", "name": "naïve"},
    )


def _through_sdk(original: Original, **extensions: str) -> CloudEvent:
    """What the request would say had the message gone through the SDK."""
    event = binding.from_message(
        original.headers,
        original.data,
        stream=STREAM,
        subject=SUBJECT,
        sequence=SEQUENCE,
    )
    for name, value in extensions.items():
        event[name] = value
    request = for_event(event)
    return binding.from_binary(request.headers, request.body)


def _read(converter: Converter, original: Original) -> CloudEvent:
    request = converter(original)
    assert binding.MSG_ID not in request.headers
    # The HTTP binding's binary mode has the NATS binding's shape.
    return binding.from_binary(request.headers, request.body)


def _same(one: CloudEvent, other: CloudEvent) -> None:
    attributes = dict(one.get_attributes())
    others = dict(other.get_attributes())
    # The SDK stamps an event that has no time with the time it reads it.
    assert datetime.fromisoformat(attributes.pop("time"))
    assert datetime.fromisoformat(others.pop("time"))
    assert attributes == others
    assert one.get_data() == other.get_data()


def test_a_binary_message_is_its_request_header_for_header() -> None:
    event = _event(comment='100% "sure" ünïcode')
    headers, payload = binding.to_binary(event)
    request = Converter({})(_stored(headers, payload))

    assert request.headers["ce-comment"] == "100%25%20%22sure%22%20%C3%BCn%C3%AFcode"
    assert request.headers["ce-time"] == headers["ce-time"]
    assert request.headers["Content-Type"] == "application/json"
    assert request.body is payload  # sent as stored, not encoded again
    assert (request.id, request.ref_id) == ("r1:1.2", "r1")
    _same(_read(Converter({}), _stored(headers, payload)), event)


@pytest.mark.parametrize(
    "headers",
    [
        # Capitalised names, an unencoded space and letter, no Content-Type.
        {
            "Ce-Specversion": "1.0",
            "Ce-Id": "a b",
            "Ce-Source": "/s",
            "Ce-Type": "t",
            "Ce-Note": "ü",
        },
        # datacontenttype as an attribute header, Content-Type after it.
        {
            "ce-specversion": "1.0",
            "ce-id": "1",
            "ce-source": "/s",
            "ce-type": "t",
            "ce-datacontenttype": "text/plain",
            "Content-Type": "application/json",
        },
        {"ce-specversion": "0.3", "ce-id": "1", "ce-source": "/s", "ce-type": "t"},
    ],
)
def test_odd_binary_messages_read_as_the_sdk_reads_them(
    headers: dict[str, str],
) -> None:
    original = _stored(headers, b'{"refId": "r"}')
    _same(_read(Converter({}), original), _through_sdk(original))


def test_a_binary_message_with_other_data_is_sent_as_it_is() -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "/s",
        "ce-type": "t",
        "Content-Type": "text/plain",
    }
    request = Converter({})(_stored(headers, b"plain words"))
    assert request.headers["Content-Type"] == "text/plain"
    assert request.body == b"plain words" and request.ref_id is None


def test_plain_json_gets_the_derived_attributes() -> None:
    data = json.dumps({"eventType": "pluginSchemaRegistrationCompleted", "refId": "r2"})
    original = _stored({"Nats-Msg-Id": "r2:4.1:completed"}, data.encode())
    request = Converter({})(original)
    assert (request.id, request.ref_id) == ("r2:4.1:completed", "r2")
    assert "ce-time" not in request.headers
    read = _read(Converter({}), original)
    assert read["type"] == "io.noetl.event.pluginSchemaRegistrationCompleted"
    assert read["source"] == "nats://noetl/noetl.events.x"
    _same(read, _through_sdk(original))


def test_a_structured_message_goes_through_the_sdk() -> None:
    headers, payload = binding.to_structured(_event())
    request = Converter({})(_stored(headers, payload))
    assert request.headers["ce-id"] == "r1:1.2"
    assert request.headers["Content-Type"] == "application/json"
    assert request.ref_id == "r1"


def test_extensions_are_added_encoded_to_every_kind() -> None:
    extensions = {"cluster": "local one", "team": "plugins"}
    convert = Converter(extensions)
    binary = _stored(*binding.to_binary(_event()))
    structured = _stored(*binding.to_structured(_event()))
    plain = _stored({}, b'{"hello": "world"}')
    for original in (binary, structured, plain):
        request = convert(original)
        assert request.headers["ce-cluster"] == "local%20one"
        _same(_read(convert, original), _through_sdk(original, **extensions))


@pytest.mark.parametrize(
    ("headers", "data", "reason"),
    [
        ({}, b"not json", "message is not JSON"),
        ({}, b"[1, 2]", "not an object"),
        (
            {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s"},
            b"{}",
            "required attribute(s): type",
        ),
        (
            {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"},
            b"{not json",
            "data is not JSON",
        ),
        (
            {
                "ce-specversion": "1.0",
                "ce-id": "%FF",
                "ce-source": "/s",
                "ce-type": "t",
            },
            b"{}",
            "not percent-encoded UTF-8",
        ),
        (
            {"ce-specversion": "2.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"},
            b"{}",
            "not a CloudEvent",
        ),
    ],
)
def test_a_malformed_message_is_refused_with_the_reason(
    headers: dict[str, str], data: bytes, reason: str
) -> None:
    with pytest.raises(InvalidCloudEvent, match=re.escape(reason)):
        Converter({})(_stored(headers, data))
