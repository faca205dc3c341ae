"""How the catalog reports a run's end: the 4.1 Failed event, once.

The catalog does not decide outcomes and does not write them to the record;
it publishes what it saw and the dispatcher decides. A run that failed is
reported at once. A run that ended well is given a grace period for its
plugin's report to arrive and be recorded; if the record is still not final
after it, that silence is the failure.

:func:`publish_failed` is for a handler with someone to retry it (an error
goes back to the source); :class:`Publisher` for a run followed in the
background, with nobody but itself to try again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from nats.errors import Error as NatsError

from functions.catalog.jobs import Run
from noetl import connection, messages, records, topology
from noetl.errors import Unavailable
from noetl.models import SchemaRegistrationFailed

log = logging.getLogger(__name__)

FUNCTION = "catalog"
T = TypeVar("T")


async def publish_failed(event: SchemaRegistrationFailed) -> None:
    """Publish the 4.1 Failed event; NATS errors are the caller's to handle."""
    log.warning("registration failed: %s", event.error)
    js = await connection.jetstream()
    await messages.publish(js, topology.SUBJECT_SCHEMA, event, FUNCTION)


def silence(grace: float) -> str:
    """The reason a run that ended well, then said nothing, failed with."""
    return f"plugin exited 0 but reported no schema within {grace:g} s"


class Registered(Protocol):
    """What names a registration's image: a run or a registration record."""

    @property
    def ref_id(self) -> str: ...
    @property
    def plugin_name(self) -> str: ...
    @property
    def image_url(self) -> str: ...


def failure(of: Registered, reason: str) -> SchemaRegistrationFailed:
    """The 4.1 Failed event of a run or a registration record."""
    return SchemaRegistrationFailed(
        ref_id=of.ref_id,
        plugin_name=of.plugin_name,
        image_url=of.image_url,
        error=reason,
    )


class Publisher:
    """The catalog's :class:`~functions.catalog.jobs.Facts`: publishes failures."""

    def __init__(self, grace: float, attempts: int = 5, backoff: float = 0.5) -> None:
        self.grace = grace
        self.attempts = attempts
        self.backoff = backoff

    async def failed(self, run: Run, reason: str) -> None:
        event = failure(run, reason)
        await self._retrying(f"publishing {event.TYPE}", lambda: publish_failed(event))

    async def finished(self, run: Run) -> None:
        if await self._final(run):
            log.info("run ended and its registration is decided")
            return

        await asyncio.sleep(self.grace)
        if await self._final(run):
            log.info("run ended and its report arrived in the grace period")
            return
        await self.failed(run, silence(self.grace))

    async def _final(self, run: Run) -> bool:
        async def read() -> records.Registration | None:
            kv = await connection.bucket(topology.REGISTRATIONS)
            return await records.get(kv, run.ref_id)

        record = await self._retrying("reading the registration", read)
        return record is not None and record.final

    async def _retrying(self, what: str, op: Callable[[], Awaitable[T]]) -> T | None:
        """``op``'s result, trying again with backoff while NATS is away."""
        for attempt in range(1, self.attempts + 1):
            try:
                return await op()
            except (Unavailable, NatsError, OSError, TimeoutError) as exc:
                if attempt == self.attempts:
                    log.error(
                        "%s failed %d times, giving up: %r; the registration "
                        "stays as it is until its deadline",
                        what,
                        attempt,
                        exc,
                    )
                    return None
                delay = self.backoff * 2 ** (attempt - 1)
                log.warning(
                    "%s failed (attempt %d of %d): %r; trying again in %.1f s",
                    what,
                    attempt,
                    self.attempts,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
        return None
