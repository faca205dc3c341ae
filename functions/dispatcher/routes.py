"""The dispatcher's routing table: which event becomes which command.

Events are facts; the dispatcher is the one place that turns them into
commands and, for a registration's outcome, the one place that decides it:
the first outcome recorded with compare-and-set wins, and the report (5.1)
goes out once for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cloudevents.http import CloudEvent
from nats.js.kv import KeyValue

from noetl import connection, records, settings, timers, topology
from noetl.errors import UnknownMessageType
from noetl.messages import publish
from noetl.models import (
    CheckRegistration,
    Payload,
    RegisterPluginImage,
    RegistrationRequested,
    ReportPluginRegistration,
    SchemaRegistrationCompleted,
    SchemaRegistrationFailed,
)

log = logging.getLogger(__name__)
FUNCTION = "dispatcher"


@dataclass(frozen=True)
class Route:
    payload: type[Payload]
    handle: Callable[[Any], Awaitable[str]]


async def dispatch(event: CloudEvent) -> str:
    """Route ``event`` by its type; unknown types are refused, not guessed."""
    route = ROUTES.get(event["type"])
    if route is None:
        raise UnknownMessageType(event["type"], list(ROUTES))
    return await route.handle(route.payload.from_data(event.get_data()))


async def registration_requested(event: RegistrationRequested) -> str:
    """1.2 → 2.2: tell the catalog to register the image."""
    kv = await connection.bucket(topology.REGISTRATIONS)
    # Another publisher than our API may have sent the event: make sure the
    # registration has a record before anything else reads it.
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
        return f"skipped: registration already {record.state}"

    # The deadline first: whatever is lost after this, the registration ends.
    js = await connection.jetstream()
    deadline = settings.load().registration_deadline
    check = CheckRegistration(
        ref_id=event.ref_id,
        plugin_name=event.plugin_name,
        image_url=event.image_url,
        reason="deadline",
        error=f"registration not final {deadline:g} s after it was requested",
    )
    await timers.schedule(js, check, after=deadline, function=FUNCTION)

    command = RegisterPluginImage(
        ref_id=event.ref_id,
        plugin_name=event.plugin_name,
        image_url=event.image_url,
        request_source=event.request_source,
    )
    await publish(js, topology.SUBJECT_REGISTER, command, FUNCTION)
    return "commanded the catalog to register the image"


async def schema_completed(event: SchemaRegistrationCompleted) -> str:
    """4.1 completed → success with the schema, then 5.1."""
    return await _decide(event, records.SUCCESS, schema=event.schema)


async def schema_failed(event: SchemaRegistrationFailed) -> str:
    """4.1 failed → failed with the reason, then 5.1."""
    return await _decide(
        event, records.FAILED, error=event.error, image=event.image_url
    )


async def _decide(
    event: Payload,
    state: str,
    *,
    schema: dict[str, Any] | None = None,
    error: str | None = None,
    image: str | None = None,
) -> str:
    kv = await connection.bucket(topology.REGISTRATIONS)
    if await records.get(kv, event.ref_id) is None:
        await _adopt(kv, event, image)

    record, wrote = await records.advance(
        kv, event.ref_id, state, schema=schema, error=error
    )
    assert record is not None
    if not wrote and record.state != state:
        return f"ignored: registration already {record.state}"
    if record.reported_at is not None:
        return f"ignored: {record.state} was reported already"

    report = ReportPluginRegistration(
        ref_id=record.ref_id,
        plugin_name=record.plugin_name,
        state=record.state,
        error=record.error,
    )
    await publish(
        await connection.jetstream(), topology.SUBJECT_NOTIFY, report, FUNCTION
    )
    await records.update(kv, record.ref_id, _mark_reported)
    return f"decided {record.state}" if wrote else f"reported {record.state} again"


def _mark_reported(record: records.Registration) -> bool:
    if record.reported_at is not None:
        return False
    record.reported_at = records.now()
    return True


async def _adopt(kv: KeyValue, event: Payload, image: str | None) -> None:
    """Create the record of a registration we never saw requested."""
    if image is None:
        plugins = await connection.bucket(topology.PLUGINS)
        plugin = await records.get_plugin(plugins, event.plugin_name)
        image = plugin.image_url if plugin else None
    log.warning("no record of this registration; creating it from the outcome")
    await records.create(
        kv,
        records.Registration(
            ref_id=event.ref_id,
            plugin_name=event.plugin_name,
            image_url=image or "",
            request_source={"gateway": "unknown"},
        ),
    )


ROUTES: dict[str, Route] = {
    RegistrationRequested.ce_type(): Route(
        RegistrationRequested, registration_requested
    ),
    SchemaRegistrationCompleted.ce_type(): Route(
        SchemaRegistrationCompleted, schema_completed
    ),
    SchemaRegistrationFailed.ce_type(): Route(SchemaRegistrationFailed, schema_failed),
}
