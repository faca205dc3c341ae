"""Entry point: ``python -m sources.jetstream``.

Exits 0 when stopped by SIGTERM or SIGINT, 2 on bad configuration, 1 when
the stream or consumer cannot be used as configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable
from typing import TypeVar

import uvloop
from nats.aio.client import Client

from noetl import connection, logs
from noetl.environment import InvalidSetting
from noetl.errors import NoetlError
from sources.jetstream.config import Config
from sources.jetstream.sink import Sink
from sources.jetstream.source import Source

log = logging.getLogger("sources.jetstream")

T = TypeVar("T")


async def run(config: Config) -> int:
    """Consume until SIGTERM or SIGINT; the process's exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # The client retries the first connection forever too, logging each try.
    nc = await _unless_stopped(
        stop,
        connection.connect(
            config.nats_url, name=f"noetl-source-{config.stream}", connect_timeout=2
        ),
    )
    if nc is None:
        return 0
    try:
        async with Sink(
            config.sink, config.request_timeout, config.max_inflight
        ) as sink:
            await Source(config, nc.jetstream(timeout=5), sink, stop).run()
    except NoetlError as exc:
        log.error("cannot consume: %s", exc)
        return 1
    finally:
        await _close(nc)
    log.info("stopped")
    return 0


async def _unless_stopped(stop: asyncio.Event, work: Awaitable[T]) -> T | None:
    """The result of ``work``, or None if ``stop`` is set first."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return None


async def _close(nc: Client) -> None:
    """Flush the last acks and close; a server that is away is not waited for."""
    with contextlib.suppress(Exception):
        if nc.is_connected:
            await nc.drain()
        else:
            await nc.close()


def main() -> int:
    try:
        config = Config.from_env()
    except InvalidSetting as exc:
        durable = os.environ.get("NOETL_SOURCE_DURABLE") or "jetstream"
        logs.setup(f"{durable}-source")
        log.error("bad configuration: %s", exc)
        return 2
    # Named by its durable, as `noetl dev` names it: two sources may share a
    # stream, never a durable.
    logs.setup(f"{config.durable}-source", config.log_level)
    return uvloop.run(run(config))


if __name__ == "__main__":
    sys.exit(main())
