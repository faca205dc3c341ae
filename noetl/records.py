"""The registration record: one entry per refId in the `registrations` bucket.

States move one way, ``received`` → ``registering`` → ``success`` or
``failed`` (``received`` may go straight to ``failed``). Every write is a
compare-and-set on the entry's last revision, so when two writers race the
first outcome wins and the later one sees a final record and stops.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

RECEIVED = "received"
REGISTERING = "registering"
SUCCESS = "success"
FAILED = "failed"
STATES = (RECEIVED, REGISTERING, SUCCESS, FAILED)
FINAL = (SUCCESS, FAILED)
_RANK = {RECEIVED: 0, REGISTERING: 1, SUCCESS: 2, FAILED: 2}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Registration:
    """What is known of one registration; the wire names are camelCase."""

    ref_id: str
    plugin_name: str
    image_url: str
    callback_api: str | None = None
    request_source: dict[str, Any] = field(default_factory=dict)
    state: str = RECEIVED
    error: str | None = None
    schema: dict[str, Any] | None = None
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
    #: One entry per change: ``{"state": ..., "at": ...}``.
    history: list[dict[str, str]] = field(default_factory=list)
    #: When the dispatcher published the outcome's report (5.1).
    reported_at: str | None = None
    #: What the notifier did: ``{"state", "status", "at"}`` once delivered.
    callback: dict[str, Any] | None = None
    revision: int = 0

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def to_json(self) -> bytes:
        data = dataclasses.asdict(self)
        data.pop("revision")
        wire = {_camel(k): v for k, v in data.items()}
        return json.dumps(wire, separators=(",", ":")).encode()

    @classmethod
    def from_entry(cls, value: bytes, revision: int) -> Registration:
        data = json.loads(value)
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {_snake(k): v for k, v in data.items() if _snake(k) in names}
        return cls(**kwargs, revision=revision)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


async def get(kv: KeyValue, ref_id: str) -> Registration | None:
    try:
        entry = await kv.get(ref_id)
    except KeyNotFoundError:
        return None
    if entry.value is None:
        return None
    return Registration.from_entry(entry.value, entry.revision or 0)


async def create(kv: KeyValue, record: Registration) -> Registration:
    """Store a new record; if the refId has one already, return that one."""
    record.history = [{"state": record.state, "at": record.updated_at}]
    try:
        record.revision = await kv.create(record.ref_id, record.to_json())
        return record
    except KeyWrongLastSequenceError:
        existing = await get(kv, record.ref_id)
        assert existing is not None
        return existing


async def update(
    kv: KeyValue,
    ref_id: str,
    change: Callable[[Registration], bool],
) -> tuple[Registration | None, bool]:
    """Apply ``change`` with compare-and-set, retrying when a writer raced us.

    ``change`` edits the record in place and says whether it changed
    anything. Returns the record as stored and whether this call wrote it.
    """
    while True:
        record = await get(kv, ref_id)
        if record is None:
            return None, False
        if not change(record):
            return record, False
        record.updated_at = now()
        try:
            record.revision = await kv.update(
                ref_id, record.to_json(), last=record.revision
            )
            return record, True
        except KeyWrongLastSequenceError:
            log.debug("registration %s changed under us; reading it again", ref_id)


async def advance(
    kv: KeyValue,
    ref_id: str,
    state: str,
    *,
    error: str | None = None,
    schema: dict[str, Any] | None = None,
) -> tuple[Registration | None, bool]:
    """Move a registration forward to ``state``; never back, never twice."""

    def change(record: Registration) -> bool:
        if record.final or _RANK[state] <= _RANK[record.state]:
            return False
        record.state = state
        if error is not None:
            record.error = error
        if schema is not None:
            record.schema = schema
        record.history.append({"state": state, "at": now()})
        return True

    return await update(kv, ref_id, change)


@dataclass
class Plugin:
    """A plugin in the `plugins` bucket, keyed by its name.

    Registering a name again replaces its image: a new revision of the key,
    written by the registration (``refId``) that asked for it.
    """

    name: str
    image_url: str
    ref_id: str
    updated_at: str = field(default_factory=now)
    revision: int = 0

    def to_json(self) -> bytes:
        wire = {
            "name": self.name,
            "imageUrl": self.image_url,
            "refId": self.ref_id,
            "updatedAt": self.updated_at,
        }
        return json.dumps(wire, separators=(",", ":")).encode()

    @classmethod
    def from_entry(cls, name: str, value: bytes, revision: int) -> Plugin:
        data = json.loads(value)
        return cls(
            name=name,
            image_url=data["imageUrl"],
            ref_id=data["refId"],
            updated_at=data.get("updatedAt", ""),
            revision=revision,
        )


async def get_plugin(kv: KeyValue, name: str) -> Plugin | None:
    try:
        entry = await kv.get(name)
    except KeyNotFoundError:
        return None
    if not entry.value:
        return None
    return Plugin.from_entry(name, entry.value, entry.revision or 0)


async def put_plugin(kv: KeyValue, plugin: Plugin) -> tuple[Plugin, bool]:
    """Store ``plugin`` unless its registration stored it already.

    Returns the entry as stored and whether this call wrote it, so that a
    redelivered command leaves one revision, not two.
    """
    while True:
        current = await get_plugin(kv, plugin.name)
        if current is not None and current.ref_id == plugin.ref_id:
            return current, False
        try:
            plugin.revision = await kv.update(
                plugin.name,
                plugin.to_json(),
                last=current.revision if current else 0,
            )
            return plugin, True
        except KeyWrongLastSequenceError:
            continue
