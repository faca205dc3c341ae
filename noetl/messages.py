"""Publishing payloads as CloudEvents, and reading them back.

A message we publish is a binary-mode CloudEvent whose id is also its
``Nats-Msg-Id``: ``<refId>:<step>``. JetStream's duplicate window drops a
second publish of the same step; after the window the handlers stay
idempotent through the registration record.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from cloudevents.http import CloudEvent
from nats.js import JetStreamContext
from nats.js.api import PubAck

from noetl import binding, topology
from noetl.errors import UnknownMessageType
from noetl.models import BY_CE_TYPE, Payload

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Payload)


def event_for(payload: Payload, function: str, subject: str) -> CloudEvent:
    """The CloudEvent that carries ``payload`` from ``function``."""
    return CloudEvent(
        {
            "id": payload.message_id(),
            "source": f"/noetl/{function}",
            "type": payload.ce_type(),
            "subject": subject,
            "datacontenttype": binding.JSON,
        },
        payload.to_data(),
    )


async def publish(
    js: JetStreamContext, subject: str, payload: Payload, function: str
) -> PubAck:
    """Publish ``payload`` on ``subject`` and wait for JetStream's ack."""
    headers, body = binding.to_binary(event_for(payload, function, subject))
    ack = await js.publish(
        subject, body, headers=headers, stream=topology.stream_of(subject)
    )
    log.info(
        "published %s on %s",
        payload.TYPE,
        subject,
        extra={"seq": ack.seq, "duplicate": bool(ack.duplicate)},
    )
    return ack


def payload_of(event: CloudEvent) -> Payload:
    """The typed payload a CloudEvent carries, chosen by its type."""
    cls = BY_CE_TYPE.get(event["type"])
    if cls is None:
        raise UnknownMessageType(event["type"], list(BY_CE_TYPE))
    return cls.from_data(event.get_data())


def expect(event: CloudEvent, cls: type[P]) -> P:
    """The payload of ``event``, which must be of type ``cls``."""
    if event["type"] != cls.ce_type():
        raise UnknownMessageType(event["type"], [cls.ce_type()])
    return cls.from_data(event.get_data())
