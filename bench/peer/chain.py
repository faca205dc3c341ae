"""The dispatcher, catalog and notifier as FastStream subscribers.

Each handler reads the message as our source would (any CloudEvent mode, or
plain JSON), does the function's work and settles the message itself: an ack
when done, a nak with a growing delay when NATS or the requester is away (a
retry by redelivery), and a term for a message that can never succeed. The
peer keeps no dead-letter stream: a termed message is only logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.errors import Error as NatsError
from nats.js.kv import KeyValue

from bench.peer.runs import Runs
from noetl import binding, records, settings, timers, topology
from noetl.errors import CallbackRefused, NoetlError, RegistrationNotFound, Unavailable
from noetl.messages import event_for, payload_of
from noetl.models import (
    CheckRegistration,
    Payload,
    RegisterPluginImage,
    RegistrationRequested,
    ReportPluginRegistration,
    SchemaRegistrationCompleted,
    SchemaRegistrationFailed,
)

log = logging.getLogger("bench.peer")

WORKERS = 16
EVENTS = JStream(topology.EVENTS, declare=False)
COMMANDS = JStream(topology.COMMANDS, declare=False)
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0

Work = Callable[[Payload], Awaitable[None]]


class Chain:
    """What every handler of one service shares: the broker and its buckets."""

    def __init__(self, broker: NatsBroker, function: str) -> None:
        self.broker = broker
        self.function = function
        self._buckets: dict[str, KeyValue] = {}

    async def bucket(self, name: str) -> KeyValue:
        if name not in self._buckets:
            self._buckets[name] = await self.broker.key_value(name, declare=False)
        return self._buckets[name]

    async def publish(self, subject: str, payload: Payload) -> None:
        headers, body = binding.to_binary(event_for(payload, self.function, subject))
        # FastStream sets its own lower-case content-type, which would shadow ours.
        headers["content-type"] = headers.pop(binding.CONTENT_TYPE)
        await self.broker.publish(
            body, subject, headers=headers, stream=topology.stream_of(subject)
        )

    def subscribe(
        self, subject: str, stream: JStream, durable: str
    ) -> Callable[[Work], Work]:
        """Register ``work`` as the handler of ``subject``'s messages."""

        def register(work: Work) -> Work:
            @self.broker.subscriber(
                subject,
                stream=stream,
                durable=durable,
                pull_sub=PullSub(batch_size=WORKERS, timeout=1.0),
                max_workers=WORKERS,
                ack_policy=AckPolicy.MANUAL,
            )
            async def handle(msg: NatsMessage) -> None:
                await settle(msg, work)

            return work

        return register


async def settle(msg: NatsMessage, work: Work) -> None:
    raw = msg.raw_message
    meta = raw.metadata
    try:
        event = binding.from_message(
            dict(raw.headers or {}),
            raw.data,
            stream=meta.stream,
            subject=raw.subject,
            sequence=meta.sequence.stream,
        )
        await work(payload_of(event))
    except NoetlError as exc:
        if exc.status < 500 and exc.status not in (404, 408, 409, 429):
            log.error("can never succeed, terminated: %s", exc)
            await msg.reject()
            return
        await msg.nack(delay=_backoff(meta.num_delivered))
        return
    except (NatsError, OSError, TimeoutError) as exc:
        log.warning("will retry: %r", exc)
        await msg.nack(delay=_backoff(meta.num_delivered))
        return
    await msg.ack()


def _backoff(delivered: int) -> float:
    return min(BACKOFF_FIRST * 2 ** (delivered - 1), BACKOFF_MAX)


def dispatcher(broker: NatsBroker) -> None:
    chain = Chain(broker, "dispatcher")

    @chain.subscribe(topology.SUBJECT_API, EVENTS, "peer-dispatcher-requests")
    async def requested(event: Payload) -> None:
        assert isinstance(event, RegistrationRequested)
        kv = await chain.bucket(topology.REGISTRATIONS)
        record = await records.create(
            kv,
            records.Registration(
                ref_id=event.ref_id,
                plugin_name=event.plugin_name,
                image_url=event.image_url,
                callback_api=event.callback_api,
                request_source=event.request_source,
            ),
        )
        if record.final:
            return
        deadline = settings.load().registration_deadline
        check = CheckRegistration(
            ref_id=event.ref_id,
            plugin_name=event.plugin_name,
            image_url=event.image_url,
            reason="deadline",
            error=f"registration not final {deadline:g} s after it was requested",
        )
        await timers.schedule(
            broker.connection.jetstream(), check, deadline, "dispatcher"
        )
        command = RegisterPluginImage(
            ref_id=event.ref_id,
            plugin_name=event.plugin_name,
            image_url=event.image_url,
            request_source=event.request_source,
        )
        await chain.publish(topology.SUBJECT_REGISTER, command)

    @chain.subscribe(topology.SUBJECT_SCHEMA, EVENTS, "peer-dispatcher-outcomes")
    async def outcome(event: Payload) -> None:
        kv = await chain.bucket(topology.REGISTRATIONS)
        if isinstance(event, SchemaRegistrationCompleted):
            state, schema, error = records.SUCCESS, event.schema, None
        else:
            assert isinstance(event, SchemaRegistrationFailed)
            state, schema, error = records.FAILED, None, event.error
        # Unlike ours, an outcome for a registration never requested is not
        # adopted: it waits in redelivery for a record that never comes.
        record, wrote = await records.advance(
            kv, event.ref_id, state, schema=schema, error=error
        )
        if record is None:
            raise RegistrationNotFound(event.ref_id)
        if (not wrote and record.state != state) or record.reported_at:
            return
        report = ReportPluginRegistration(
            ref_id=record.ref_id,
            plugin_name=record.plugin_name,
            state=record.state,
            error=record.error,
        )
        await chain.publish(topology.SUBJECT_NOTIFY, report)
        await records.update(kv, record.ref_id, _reported)


def _reported(record: records.Registration) -> bool:
    if record.reported_at is not None:
        return False
    record.reported_at = records.now()
    return True


def catalog(broker: NatsBroker) -> None:
    chain = Chain(broker, "catalog")
    runs = Runs(settings.load(), chain)

    @chain.subscribe(topology.SUBJECT_REGISTER, COMMANDS, "peer-catalog-register")
    async def register(command: Payload) -> None:
        assert isinstance(command, RegisterPluginImage)
        kv = await chain.bucket(topology.REGISTRATIONS)
        record = await records.get(kv, command.ref_id)
        if record is None:
            record = await records.create(
                kv,
                records.Registration(
                    ref_id=command.ref_id,
                    plugin_name=command.plugin_name,
                    image_url=command.image_url,
                    request_source=command.request_source,
                ),
            )
        if record.final:
            return
        plugins = await chain.bucket(topology.PLUGINS)
        await records.put_plugin(
            plugins,
            records.Plugin(
                name=command.plugin_name,
                image_url=command.image_url,
                ref_id=command.ref_id,
            ),
        )
        if await runs.start(command):
            await records.advance(kv, command.ref_id, records.REGISTERING)

    @chain.subscribe(topology.SUBJECT_CHECK, COMMANDS, "peer-catalog-checks")
    async def check(timer: Payload) -> None:
        assert isinstance(timer, CheckRegistration)
        kv = await chain.bucket(topology.REGISTRATIONS)
        record = await records.get(kv, timer.ref_id)
        if record is not None and not record.final:
            await runs.failed(record, timer.error)


def notifier(broker: NatsBroker) -> None:
    chain = Chain(broker, "notifier")
    client = httpx.AsyncClient(timeout=settings.load().callback_timeout)

    @chain.subscribe(topology.SUBJECT_NOTIFY, COMMANDS, "peer-notifier")
    async def report(command: Payload) -> None:
        assert isinstance(command, ReportPluginRegistration)
        kv = await chain.bucket(topology.REGISTRATIONS)
        record = await records.get(kv, command.ref_id)
        if record is None:
            raise RegistrationNotFound(command.ref_id)
        done = record.callback or {}
        if done.get("state") == command.state:
            return
        status = None
        if record.callback_api:
            status = await _call_back(client, record.callback_api, command)
        await records.update(kv, command.ref_id, _called(command.state, status))


async def _call_back(
    client: httpx.AsyncClient, url: str, report: ReportPluginRegistration
) -> int:
    key = f"{report.ref_id}:{report.state}"
    try:
        answer = await client.post(
            url, json=report.to_data(), headers={"Idempotency-Key": key}
        )
    except httpx.HTTPError as exc:
        raise Unavailable(f"callback {url}: {exc!r}") from exc
    if answer.is_success:
        return answer.status_code
    if answer.status_code in (408, 425, 429) or answer.status_code >= 500:
        raise Unavailable(f"callback {url} answered {answer.status_code}")
    raise CallbackRefused(url, answer.status_code)


def _called(state: str, status: int | None) -> Callable[[records.Registration], bool]:
    def change(record: records.Registration) -> bool:
        if (record.callback or {}).get("state") == state:
            return False
        record.callback = {"state": state, "status": status, "at": records.now()}
        return True

    return change


ROLES: dict[str, Callable[[NatsBroker], None]] = {
    "dispatcher": dispatcher,
    "catalog": catalog,
    "notifier": notifier,
}
