"""Timers that need no long-lived process: JetStream message schedules.

A timer is a message on ``catalog.timer.<refId>.<reason>`` carrying a
``Nats-Schedule: @at <time>`` header. At that time JetStream itself publishes
its data and headers to ``catalog.plugin.check``, where the catalog's source
picks it up like any other command. One subject per timer means setting a
timer again replaces it rather than adding a second one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext

from noetl import binding, topology
from noetl.messages import event_for
from noetl.models import CheckRegistration


def subject_of(check: CheckRegistration) -> str:
    return f"{topology.TIMER_PREFIX}{check.ref_id}.{check.reason}"


async def schedule(
    js: JetStreamContext, check: CheckRegistration, after: float, function: str
) -> datetime:
    """Deliver ``check`` to the catalog ``after`` seconds from now."""
    # Schedules resolve to whole seconds; round up so a timer never fires early.
    at = datetime.now(UTC) + timedelta(seconds=after + 1)
    at = at.replace(microsecond=0)
    headers, body = binding.to_binary(
        event_for(check, function, topology.SUBJECT_CHECK)
    )
    headers["Nats-Schedule"] = "@at " + at.strftime("%Y-%m-%dT%H:%M:%SZ")
    headers["Nats-Schedule-Target"] = topology.SUBJECT_CHECK
    await js.publish(subject_of(check), body, headers=headers, stream=topology.COMMANDS)
    return at
