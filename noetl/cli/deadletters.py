"""Reading the `deadletters` stream and replaying what it holds.

A dead letter keeps the original data and headers and adds ``Noetl-Dead-*``
headers saying where it came from and why it died. Replaying publishes the
original again, on its original subject, without those headers and without
``Nats-Msg-Id`` (the duplicate window would drop it as a repeat otherwise),
waits for JetStream's ack and only then deletes the dead letter: a crash in
between replays it twice, never zero times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NotFoundError

from noetl import topology
from noetl.cli.errors import CliError, NotFound

DEAD = "Noetl-Dead-"
REASON = "Noetl-Dead-Reason"
STATUS = "Noetl-Dead-Status"
ATTEMPTS = "Noetl-Dead-Attempts"
SUBJECT = "Noetl-Dead-Subject"
STREAM = "Noetl-Dead-Stream"
AT = "Noetl-Dead-At"
MSG_ID = "Nats-Msg-Id"


@dataclass(frozen=True)
class DeadLetter:
    sequence: int
    #: Where it is stored: ``deadletter.<original subject>``.
    stored_subject: str
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    time: datetime | None = None

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    @property
    def subject(self) -> str:
        """The subject it was first published on."""
        original = self.header(SUBJECT)
        if original:
            return original
        return self.stored_subject.removeprefix(topology.DEADLETTER_PREFIX)

    @property
    def ref_id(self) -> str | None:
        try:
            data = json.loads(self.data)
        except ValueError:
            return None
        value = data.get("refId") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "subject": self.subject,
            "stream": self.header(STREAM),
            "reason": self.header(REASON),
            "status": self.header(STATUS),
            "attempts": self.header(ATTEMPTS),
            "deadAt": self.header(AT),
            "refId": self.ref_id,
            "headers": self.headers,
            "data": self.data.decode("utf-8", errors="replace"),
        }


def replay_headers(headers: dict[str, str]) -> dict[str, str]:
    """The original headers: without ``Noetl-Dead-*`` and ``Nats-Msg-Id``."""
    return {
        key: value
        for key, value in headers.items()
        if not key.lower().startswith(DEAD.lower()) and key.lower() != MSG_ID.lower()
    }


async def _stream_exists(js: JetStreamContext) -> None:
    try:
        await js.stream_info(topology.DEADLETTERS)
    except NotFoundError:
        raise CliError(
            f"stream {topology.DEADLETTERS} does not exist; "
            "is the stack running (noetl dev)?"
        ) from None


async def get(js: JetStreamContext, sequence: int) -> DeadLetter:
    try:
        raw = await js.get_msg(topology.DEADLETTERS, seq=sequence)
    except NotFoundError:
        raise NotFound(f"no dead letter with sequence {sequence}") from None
    return _letter(raw.seq or sequence, raw.subject, raw.headers, raw.data, raw.time)


async def list_all(js: JetStreamContext) -> list[DeadLetter]:
    """Every dead letter, oldest first."""
    await _stream_exists(js)
    letters: list[DeadLetter] = []
    sequence = 1
    while True:
        try:
            # The next stored message from ``sequence``: skips deleted ones.
            raw = await js.get_msg(
                topology.DEADLETTERS,
                seq=sequence,
                subject=topology.DEADLETTER_PREFIX + ">",
                next=True,
            )
        except NotFoundError:
            return letters
        assert raw.seq is not None
        letters.append(_letter(raw.seq, raw.subject, raw.headers, raw.data, raw.time))
        sequence = raw.seq + 1


async def replay(js: JetStreamContext, letter: DeadLetter) -> PubAck:
    """Publish ``letter`` on its original subject, then delete it."""
    try:
        ack = await js.publish(
            letter.subject, letter.data, headers=replay_headers(letter.headers) or None
        )
    except Exception as exc:
        raise CliError(
            f"could not replay dead letter {letter.sequence} to {letter.subject}: "
            f"{exc or type(exc).__name__}"
        ) from None
    await js.delete_msg(topology.DEADLETTERS, letter.sequence)
    return ack


def _letter(
    sequence: int,
    subject: str | None,
    headers: dict[str, str] | None,
    data: bytes | None,
    time: datetime | None,
) -> DeadLetter:
    return DeadLetter(
        sequence=sequence,
        stored_subject=subject or "",
        headers=dict(headers or {}),
        data=data or b"",
        time=time,
    )
