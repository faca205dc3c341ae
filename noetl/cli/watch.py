"""Following one registration through the flow, step by step, on NATS.

:class:`Follower` opens ordered consumers on the flow's subjects and on the
two buckets *before* the registration is submitted, delivering only what is
stored from then on; :class:`Tracker` turns each stored message that carries
the registration's refId into a :class:`Step`. A registration is followed to
its end: the record final and the report (5.1) published, and, when it has
a callbackApi, the notifier's delivery written into the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from noetl import binding, records, topology
from noetl.cli import broker
from noetl.cli.client import Api
from noetl.cli.errors import CliError, NatsUnreachable, WaitTimedOut
from noetl.models import SchemaRegistrationCompleted, SchemaRegistrationFailed

REGISTRATIONS_STREAM = topology.bucket_stream(topology.REGISTRATIONS)
PLUGINS_STREAM = topology.bucket_stream(topology.PLUGINS)
WATCHED = (
    (topology.EVENTS, topology.SUBJECT_API),
    (topology.COMMANDS, topology.SUBJECT_REGISTER),
    (topology.EVENTS, topology.SUBJECT_SCHEMA),
    (topology.COMMANDS, topology.SUBJECT_NOTIFY),
    (REGISTRATIONS_STREAM, topology.bucket_subject(topology.REGISTRATIONS)),
    (PLUGINS_STREAM, topology.bucket_subject(topology.PLUGINS)),
)
#: How long to wait, once the outcome is reported, for the notifier to note
#: the callback in the record: a delivery takes a round trip, "nobody to
#: call" only a write.
CALLBACK_WAIT = 15.0
NOBODY_WAIT = 3.0


@dataclass(frozen=True)
class Seen:
    """A message as a stream stored it."""

    stream: str
    subject: str
    sequence: int
    headers: dict[str, str]
    data: bytes
    time: datetime | None = None


@dataclass(frozen=True)
class Step:
    """One thing that happened to a registration."""

    step: str
    title: str
    detail: str = ""
    at: datetime | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "title": self.title,
            "detail": self.detail,
            "at": self.at.isoformat() if self.at else None,
            **self.fields,
        }


class Tracker:
    """What is known of one registration, fed with every message seen."""

    def __init__(self, ref_id: str) -> None:
        self.ref_id = ref_id
        self.state: str | None = None
        self.error: str | None = None
        self.plugin_name: str | None = None
        self.callback_api: str | None = None
        self.callback: dict[str, Any] | None = None
        self.reported = False
        self._states_shown = 0
        self._seen: set[str] = set()

    @property
    def final(self) -> bool:
        return self.state in records.FINAL

    @property
    def settled(self) -> bool:
        """The outcome is recorded and its report published."""
        return self.final and self.reported

    @property
    def callback_pending(self) -> bool:
        return self.callback is None

    def feed(self, seen: Seen) -> list[Step]:
        if seen.stream == REGISTRATIONS_STREAM:
            return self._record(seen)
        if seen.stream == PLUGINS_STREAM:
            return self._plugin(seen)
        return self._message(seen)

    def _message(self, seen: Seen) -> list[Step]:
        try:
            event = binding.from_message(
                seen.headers,
                seen.data,
                stream=seen.stream,
                subject=seen.subject,
                sequence=seen.sequence,
            )
        except Exception:
            return []  # not ours to judge; the source dead-letters it
        data = event.get_data()
        if not isinstance(data, dict) or data.get("refId") != self.ref_id:
            return []
        if event["id"] in self._seen:
            return []
        self._seen.add(event["id"])
        where = f"{seen.stream} {seen.subject}"
        fields = {"stream": seen.stream, "subject": seen.subject, "data": data}

        if seen.subject == topology.SUBJECT_API:
            gateway = (data.get("requestSource") or {}).get("gateway", "?")
            return [
                Step(
                    "1.2",
                    "request received",
                    f"{where} from {gateway}",
                    seen.time,
                    fields,
                )
            ]
        if seen.subject == topology.SUBJECT_REGISTER:
            return [Step("2.2", "register command", where, seen.time, fields)]
        if seen.subject == topology.SUBJECT_SCHEMA:
            if data.get("eventType") == SchemaRegistrationFailed.TYPE:
                detail = f"{where}: {data.get('error') or 'no reason given'}"
                return [Step("4.1", "failed", detail, seen.time, fields)]
            if data.get("eventType") == SchemaRegistrationCompleted.TYPE:
                detail = f"{where}: {_schema_summary(data.get('schema'))}"
                return [Step("4.1", "completed", detail, seen.time, fields)]
            return []
        if seen.subject == topology.SUBJECT_NOTIFY:
            self.reported = True
            # The error, if any, shows in the 4.1 and final steps already.
            detail = f"{where}: state {data.get('state')}"
            return [Step("5.1", "report", detail, seen.time, fields)]
        return []

    def _record(self, seen: Seen) -> list[Step]:
        if seen.subject != topology.bucket_subject(topology.REGISTRATIONS, self.ref_id):
            return []
        record = _kv_value(seen)
        if record is None:
            return []
        self.plugin_name = record.get("pluginName") or self.plugin_name
        self.callback_api = record.get("callbackApi") or self.callback_api
        steps: list[Step] = []

        # The history lists every change, so a revision missed is not a step
        # missed; a record without one shows each state it is seen in.
        history = record.get("history")
        if isinstance(history, list) and history:
            changes = [str(change.get("state")) for change in history]
            new = changes[self._states_shown :]
            self._states_shown = max(self._states_shown, len(changes))
        else:
            state = record.get("state")
            new = [str(state)] if state and state != self.state else []
        steps.extend(_state_step(state, record, seen.time) for state in new)
        self.state = record.get("state") or self.state
        self.error = record.get("error") or self.error

        callback = record.get("callback")
        if isinstance(callback, dict) and callback != self.callback:
            self.callback = callback
            steps.append(_callback_step(callback, self.callback_api, seen.time))
        return steps

    def _plugin(self, seen: Seen) -> list[Step]:
        plugin = _kv_value(seen)
        if plugin is None or plugin.get("refId") != self.ref_id:
            return []
        # Plugin names may hold dots: the key is all that follows the prefix.
        name = seen.subject.removeprefix(topology.bucket_subject(topology.PLUGINS, ""))
        detail = f"{topology.PLUGINS} {name}: {plugin.get('imageUrl')}"
        fields = {"pluginName": name, "imageUrl": plugin.get("imageUrl")}
        return [Step("3.2", "plugin stored", detail, seen.time, fields)]


def _kv_value(seen: Seen) -> dict[str, Any] | None:
    if seen.headers.get("KV-Operation") in ("DEL", "PURGE") or not seen.data:
        return None
    try:
        value = json.loads(seen.data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _state_step(state: str, record: dict[str, Any], at: datetime | None) -> Step:
    fields = {"state": state}
    if state == records.RECEIVED:
        return Step("1.1", "recorded", "registration state received", at, fields)
    if state == records.REGISTERING:
        return Step("3.3", "registering", "the catalog started the run", at, fields)
    if state == records.FAILED:
        error = record.get("error") or "no reason given"
        return Step("final", "failed", error, at, {**fields, "error": error})
    if state == records.SUCCESS:
        detail = f"schema stored: {_schema_summary(record.get('schema'))}"
        return Step("final", "success", detail, at, fields)
    return Step("record", state, f"registration state {state}", at, fields)


def _callback_step(
    callback: dict[str, Any], callback_api: str | None, at: datetime | None
) -> Step:
    status, note = callback.get("status"), callback.get("note")
    if isinstance(status, int):
        title = "delivered" if 200 <= status < 300 else "not delivered"
        detail = f"POST {callback_api} -> HTTP {status}"
        if note and note != "delivered":
            detail += f" ({note})"
    elif callback_api:
        title, detail = "not delivered", f"POST {callback_api}: {note or 'no status'}"
    else:
        title, detail = "none", "no callbackApi: nobody to call"
    return Step(
        "callback",
        title,
        detail,
        at,
        {"callback": callback, "callbackApi": callback_api},
    )


def _schema_summary(schema: object) -> str:
    if not isinstance(schema, dict):
        return "no schema"
    properties = schema.get("properties")
    if isinstance(properties, dict) and properties:
        return "properties " + ", ".join(sorted(properties))
    return f"a {schema.get('type', 'JSON')} schema"


class Follower:
    """Everything stored on the flow's subjects and buckets from ``start()`` on."""

    def __init__(self, nc: Client, nats_url: str) -> None:
        self._nc = nc
        self._url = nats_url
        self._queue: asyncio.Queue[Seen] = asyncio.Queue()
        self._subs: list[Subscription] = []
        self.tracker: Tracker | None = None

    async def start(self) -> None:
        js = self._nc.jetstream(timeout=5)
        for stream, subject in WATCHED:
            try:
                sub = await js.subscribe(
                    subject,
                    stream=stream,
                    cb=self._put,
                    ordered_consumer=True,
                    deliver_policy=DeliverPolicy.NEW,
                )
            except NotFoundError:
                await self.stop()
                raise CliError(
                    f"stream {stream} does not exist at {self._url}; "
                    "is the stack running (noetl dev)?"
                ) from None
            self._subs.append(sub)

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()

    async def _put(self, msg: Msg) -> None:
        meta = msg.metadata
        self._queue.put_nowait(
            Seen(
                stream=meta.stream,
                subject=msg.subject,
                sequence=meta.sequence.stream,
                headers=dict(msg.headers or {}),
                data=msg.data,
                time=meta.timestamp,
            )
        )

    async def follow(
        self,
        ref_id: str,
        *,
        time_limit: float,
        callback_wait: float = CALLBACK_WAIT,
        nobody_wait: float = NOBODY_WAIT,
    ) -> AsyncIterator[Step]:
        """Each step of registration ``ref_id`` until it ended, or WaitTimedOut."""
        tracker = self.tracker = Tracker(ref_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + time_limit
        settled_at: float | None = None
        while True:
            now = loop.time()
            if tracker.settled:
                settled_at = settled_at or now
                grace = callback_wait if tracker.callback_api else nobody_wait
                if not tracker.callback_pending or now - settled_at >= grace:
                    return
                left = min(settled_at + grace, deadline) - now
            else:
                left = deadline - now
            if left <= 0:
                if tracker.settled:
                    return
                raise WaitTimedOut(
                    f"registration {ref_id} is {tracker.state or 'not recorded'} "
                    f"after {time_limit:g} s; see 'noetl status {ref_id}'"
                )
            try:
                seen = await asyncio.wait_for(self._queue.get(), min(left, 1.0))
            except TimeoutError:
                if self._nc.is_closed:
                    raise NatsUnreachable(
                        self._url, "the connection was lost"
                    ) from None
                continue
            for step in tracker.feed(seen):
                yield step


@dataclass(frozen=True)
class Outcome:
    ref_id: str
    state: str | None
    error: str | None
    callback: dict[str, Any] | None


async def register(
    api: Api,
    nats_url: str,
    image_url: str,
    *,
    plugin_name: str | None = None,
    callback_api: str | None = None,
    time_limit: float = 120.0,
    on_submitted: Callable[[str], None],
    on_step: Callable[[Step], None],
) -> Outcome:
    """Submit a registration and report each of its steps as it happens."""
    async with broker.connected(nats_url) as nc:
        follower = Follower(nc, nats_url)
        # Watching starts before the mutation, so that no step is missed.
        await follower.start()
        try:
            ref_id = await api.register_plugin(
                image_url, plugin_name=plugin_name, callback_api=callback_api
            )
            on_submitted(ref_id)
            async for step in follower.follow(ref_id, time_limit=time_limit):
                on_step(step)
        finally:
            await follower.stop()
    tracker = follower.tracker
    assert tracker is not None
    return Outcome(ref_id, tracker.state, tracker.error, tracker.callback)
