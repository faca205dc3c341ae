"""A short-lived NATS connection for a command: it fails fast and quietly.

The functions' connection retries forever; a command that cannot reach NATS
should say so within seconds instead, and without nats.py's tracebacks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import nats
from nats.aio.client import Client
from nats.errors import NoServersError

from noetl.cli.errors import NatsUnreachable

log = logging.getLogger(__name__)


async def _quiet(exc: Exception) -> None:
    log.debug("NATS: %s", exc)


async def connect(url: str) -> Client:
    """A client for ``url``, or NatsUnreachable after a few quick tries."""
    try:
        return await nats.connect(
            url,
            name="noetl-cli",
            connect_timeout=2,
            max_reconnect_attempts=3,
            reconnect_time_wait=0.5,
            error_cb=_quiet,
        )
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, NoServersError):
            reason = "no server answered"
        raise NatsUnreachable(url, reason) from None


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[Client]:
    client = await connect(url)
    try:
        yield client
    finally:
        if not client.is_closed:
            await client.close()
