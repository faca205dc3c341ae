"""The CloudEvents protocol binding for NATS messages, with no I/O.

Four conversions, as every CloudEvents binding has them: an event to and
from a binary-mode message (attributes in ``ce-`` headers, the data as the
payload) and to and from a structured-mode message (the JSON event format as
the payload). :func:`from_message` reads whatever a publisher sent, plain JSON
without any CloudEvents header included.

References: NATS Protocol Binding for CloudEvents 1.0.3, section 3 (content
modes); the HTTP binding 1.0.2, section 3.1.3.2 (header value encoding), whose
rule NATS headers share because they carry the same printable-ASCII text.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import quote, unquote

from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent

from noetl.errors import InvalidCloudEvent

PREFIX = "ce-"
CONTENT_TYPE = "Content-Type"
JSON = "application/json"
STRUCTURED = "application/cloudevents+json"
MSG_ID = "Nats-Msg-Id"
REQUIRED = ("id", "source", "type")

# HTTP binding 3.1.3.2: space, double quote, percent and anything outside
# printable ASCII are percent-encoded; every other printable byte stays.
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


# A value of only these characters is the same encoded: most are.
_PLAIN = re.compile(r"[!#$&-~]*")


def encode_value(value: str) -> str:
    """Percent-encode a header value as the binding requires."""
    if _PLAIN.fullmatch(value):
        return value
    return quote(value, safe=_SAFE)


def decode_value(value: str) -> str:
    """Undo :func:`encode_value`; invalid UTF-8 is an error, not a guess."""
    if "%" not in value:
        return value
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise InvalidCloudEvent(
            f"header value {value!r} is not percent-encoded UTF-8"
        ) from None


def to_binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Headers and payload of a binary-mode message for ``event``."""
    headers: dict[str, str] = {}
    for name, value in event.get_attributes().items():
        if name == "datacontenttype":
            continue
        headers[PREFIX + name] = encode_value(str(value))
    headers[CONTENT_TYPE] = event.get("datacontenttype") or JSON
    headers[MSG_ID] = event["id"]
    return headers, _encode_data(event.get_data(), headers[CONTENT_TYPE])


def from_binary(headers: dict[str, str], payload: bytes) -> CloudEvent:
    """The event a binary-mode message carries."""
    attributes: dict[str, Any] = {}
    for name, value in headers.items():
        if name.lower().startswith(PREFIX):
            attributes[name[len(PREFIX) :].lower()] = decode_value(value)
    content_type = header(headers, CONTENT_TYPE)
    if content_type:
        attributes["datacontenttype"] = content_type
    require(attributes)
    return _event(attributes, decode_data(payload, content_type))


def to_structured(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Headers and payload of a structured-mode message for ``event``."""
    body: dict[str, Any] = dict(event.get_attributes())
    data = event.get_data()
    if isinstance(data, bytes | bytearray):
        body["data_base64"] = base64.b64encode(data).decode()
    elif data is not None:
        body["data"] = data
    headers = {CONTENT_TYPE: STRUCTURED, MSG_ID: event["id"]}
    return headers, json.dumps(body, separators=(",", ":")).encode()


def from_structured(headers: dict[str, str], payload: bytes) -> CloudEvent:
    """The event a structured-mode message carries."""
    body = json_object(payload, "structured CloudEvent")
    data: Any = body.pop("data", None)
    if "data_base64" in body:
        try:
            data = base64.b64decode(body.pop("data_base64"), validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise InvalidCloudEvent("data_base64 is not valid base64") from None
    require(body)
    return _event(body, data)


def is_structured(headers: dict[str, str]) -> bool:
    content_type = header(headers, CONTENT_TYPE) or ""
    return content_type.split(";")[0].strip().startswith("application/cloudevents")


def is_binary(headers: dict[str, str]) -> bool:
    return any(name.lower() == PREFIX + "specversion" for name in headers)


def from_message(
    headers: dict[str, str] | None,
    payload: bytes,
    *,
    stream: str,
    subject: str,
    sequence: int,
) -> CloudEvent:
    """Read any message a publisher may send: binary, structured or plain JSON.

    A plain JSON object (a plugin written without a CloudEvents SDK) gets its
    attributes derived: ``id`` from ``Nats-Msg-Id`` or ``<stream>:<sequence>``,
    ``type`` from its ``eventType`` or ``commandType``, and ``source`` from
    where it was stored.
    """
    headers = headers or {}
    if is_structured(headers):
        return from_structured(headers, payload)
    if is_binary(headers):
        return from_binary(headers, payload)

    data = json_object(payload, "message")
    attributes = derived(
        headers, data, stream=stream, subject=subject, sequence=sequence
    )
    return _event({**attributes, "datacontenttype": JSON}, data)


def derived(
    headers: dict[str, str],
    data: dict[str, Any],
    *,
    stream: str,
    subject: str,
    sequence: int,
) -> dict[str, str]:
    """The attributes of a plain JSON message, from where it was stored."""
    return {
        "specversion": "1.0",
        "id": header(headers, MSG_ID) or f"{stream}:{sequence}",
        "source": f"nats://{stream}/{subject}",
        "type": type_of(data) or f"io.noetl.message.{subject}",
        "subject": subject,
    }


def type_of(data: dict[str, Any]) -> str | None:
    """The CloudEvent type our payloads imply, from their type field."""
    if isinstance(data.get("eventType"), str):
        return f"io.noetl.event.{data['eventType']}"
    if isinstance(data.get("commandType"), str):
        return f"io.noetl.command.{data['commandType']}"
    return None


def _event(attributes: dict[str, Any], data: Any) -> CloudEvent:
    """A CloudEvent, or InvalidCloudEvent when the SDK refuses the attributes."""
    try:
        return CloudEvent(attributes, data)
    except GenericException as exc:
        raise InvalidCloudEvent(f"not a CloudEvent: {exc}") from None


def header(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def require(attributes: dict[str, Any]) -> None:
    """Refuse attributes without an id, a source or a type."""
    missing = [name for name in REQUIRED if not attributes.get(name)]
    if missing:
        raise InvalidCloudEvent(
            f"CloudEvent lacks required attribute(s): {', '.join(missing)}"
        )
    attributes.setdefault("specversion", "1.0")


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    media = content_type.split(";")[0].strip().lower()
    return media == JSON or media.endswith("+json")


def _encode_data(data: Any, content_type: str) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, str) and not is_json(content_type):
        return data.encode()
    return json.dumps(data, separators=(",", ":")).encode()


def decode_data(payload: bytes, content_type: str | None) -> Any:
    if not payload:
        return None
    if not is_json(content_type):
        return payload
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCloudEvent(f"data is not JSON: {exc}") from None


def json_object(payload: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCloudEvent(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidCloudEvent(f"{what} is JSON but not an object")
    return value
