"""The one NATS connection a process keeps, opened on first use.

Nothing connects at import time: a function served by gunicorn is imported
in the master and forked into the worker, and a socket opened before the
fork would be shared by both. The first request of a worker connects,
provisions what is missing, and every later request reuses the connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from noetl import settings, topology
from noetl.errors import Unavailable

log = logging.getLogger(__name__)

#: Seconds the first connection (and provisioning) may take before a request
#: is answered with "unavailable" instead of waiting.
CONNECT_DEADLINE = 5.0

_client: Client | None = None
_js: JetStreamContext | None = None
_buckets: dict[str, KeyValue] = {}
_lock: asyncio.Lock | None = None


class _Outage:
    """Logs a NATS outage as one warning when it starts and one line when it ends.

    The client calls back on every failed reconnect attempt; those go to
    DEBUG so that a long outage is visible without flooding the log.
    """

    def __init__(self) -> None:
        self.client: Client | None = None
        self.down = False

    async def disconnected(self) -> None:
        client = self.client
        if client is None or client.is_closed or client.is_draining:
            return  # a deliberate close, not an outage
        self.down = True
        log.warning("NATS connection lost; reconnecting")

    async def reconnected(self) -> None:
        self.down = False
        log.info("NATS connection restored")

    async def error(self, exc: Exception) -> None:
        log.log(
            logging.DEBUG if self.down else logging.WARNING,
            "NATS client error: %s",
            str(exc) or type(exc).__name__,
        )


async def connect(
    url: str, name: str, first_deadline: float | None = None, **options: Any
) -> Client:
    """A client that reconnects forever, logging each outage once.

    nats-py applies ``max_reconnect_attempts=-1`` to the first connect too, so
    a server that is away would make it wait for ever; ``first_deadline``
    bounds that first attempt for callers with someone waiting on them.
    """
    client = nats.NATS()
    outage = _Outage()
    outage.client = client
    opening = client.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        disconnected_cb=outage.disconnected,
        reconnected_cb=outage.reconnected,
        error_cb=outage.error,
        **options,
    )
    try:
        await asyncio.wait_for(opening, first_deadline)
    except BaseException:
        await client.close()
        raise
    return client


async def jetstream() -> JetStreamContext:
    """This process's JetStream context, with streams and buckets provisioned."""
    global _client, _js, _lock
    if _js is not None:
        return _js
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if _js is None:
            url = settings.load().nats_url
            try:
                _client = await connect(
                    url, name="noetl", first_deadline=CONNECT_DEADLINE
                )
                js = _client.jetstream(timeout=5)
                await asyncio.wait_for(topology.provision(js), CONNECT_DEADLINE)
            except Exception as exc:
                if _client is not None:
                    await _client.close()
                    _client = None
                reason = str(exc) or type(exc).__name__
                raise Unavailable(f"NATS at {url} is not reachable: {reason}") from exc
            _js = js
    return _js


async def bucket(name: str) -> KeyValue:
    """A key-value bucket by name, looked up once per process."""
    if name not in _buckets:
        js = await jetstream()
        _buckets[name] = await js.key_value(name)
    return _buckets[name]


async def close() -> None:
    """Drain and forget the connection (tests and clean shutdown)."""
    global _client, _js
    client, _client, _js = _client, None, None
    _buckets.clear()
    if client is not None and not client.is_closed:
        await client.drain()
