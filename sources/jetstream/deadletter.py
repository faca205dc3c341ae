"""Dead letters: a message that will never be delivered, kept with the reason.

A dead letter goes to stream ``deadletters`` on ``deadletter.<subject>``
with the original data and headers, so that ``noetl replay`` can publish it
again as it was, plus ``Noetl-Dead-*`` headers that say what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.api import PubAck

from noetl import binding, topology

HEADER = "Noetl-Dead-"
#: Longest reason kept; a sink's error page must not bloat the stream.
REASON_LIMIT = 512


@dataclass(frozen=True)
class Original:
    """Where a message was stored, and what it carried."""

    stream: str
    subject: str
    sequence: int
    headers: dict[str, str]
    data: bytes


def subject_for(subject: str) -> str:
    return topology.DEADLETTER_PREFIX + subject


def message_id(original: Original) -> str:
    """One id per stored message, so that only a repeat of it is dropped.

    The original Nats-Msg-Id would make JetStream drop a second, distinct
    dead letter of the same id (a replayed message that failed again).
    """
    return f"{original.stream}:{original.sequence}:dead"


def headers_for(
    original: Original,
    reason: str,
    attempts: int,
    status: int | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """The dead letter's headers: the original ones, then ours."""
    headers: dict[str, str] = {}
    msg_id = None
    for name, value in original.headers.items():
        if name.lower() == binding.MSG_ID.lower():
            msg_id = value
        elif name.lower().startswith("nats-"):
            # JetStream reads Nats-* headers as orders to this publish
            # (expected sequence, rollup, TTL): carried over, they would
            # refuse or purge the dead letter.
            continue
        elif not name.lower().startswith(HEADER.lower()):
            headers[name] = value

    when = now or datetime.now(UTC)
    headers.update(
        {
            HEADER + "Reason": _one_line(reason),
            HEADER + "Attempts": str(attempts),
            HEADER + "Stream": original.stream,
            HEADER + "Subject": original.subject,
            HEADER + "Sequence": str(original.sequence),
            HEADER + "At": _iso(when),
            binding.MSG_ID: message_id(original),
        }
    )
    if status is not None:
        headers[HEADER + "Status"] = str(status)
    if msg_id is not None:
        headers[HEADER + "Msg-Id"] = msg_id
    return headers


async def publish(
    js: JetStreamContext,
    original: Original,
    reason: str,
    attempts: int,
    status: int | None = None,
) -> PubAck:
    """Store the dead letter and wait for JetStream's ack; raises if not stored."""
    return await js.publish(
        subject_for(original.subject),
        original.data,
        stream=topology.DEADLETTERS,
        headers=headers_for(original, reason, attempts, status),
    )


def _iso(when: datetime) -> str:
    text = when.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _one_line(text: str) -> str:
    """A header value: one line of printable text, not too long."""
    flat = " ".join(text.split())
    if len(flat) > REASON_LIMIT:
        flat = flat[: REASON_LIMIT - 3] + "..."
    return flat
