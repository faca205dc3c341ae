"""Timers that fired: a registration not final by then has failed.

A CheckRegistration reaches the catalog on ``catalog.plugin.check`` when a
timer set earlier fires (see :mod:`noetl.timers`), such as the grace period
after a Job that completed. It carries the error to fail with. The check
reads the record, not the event: a registration decided meanwhile is left
alone, and a check delivered twice publishes a Failed event whose message
id JetStream drops as a duplicate.
"""

from __future__ import annotations

from cloudevents.http import CloudEvent

from functions.catalog import facts
from noetl import connection, records, topology
from noetl.messages import expect
from noetl.models import CheckRegistration


async def check(event: CloudEvent) -> str:
    """Handle a CheckRegistration; returns what was done."""
    timer = expect(event, CheckRegistration)

    kv = await connection.bucket(topology.REGISTRATIONS)
    record = await records.get(kv, timer.ref_id)
    if record is None:
        return "ignored: no registration with this refId"
    if record.final:
        return f"{timer.reason} check: registration already {record.state}"

    await facts.publish_failed(facts.failure(record, timer.error))
    return f"{timer.reason} check: registration still {record.state}; reported failed"
