"""The pull loop: fetch from the durable consumer, POST each message, settle it.

At most ``max_inflight`` messages are held at once: a pull asks for no more
than there is room for. Each message becomes a CloudEvent's HTTP request
(:mod:`convert`), is POSTed to the sink while JetStream is told it is in
progress, and is then acked, nak'd with a delay, or dead-lettered and acked,
by :mod:`delivery`'s rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from noetl import logs
from noetl.errors import InvalidCloudEvent, NoetlError
from sources.jetstream import consumer, deadletter, delivery
from sources.jetstream.config import Config
from sources.jetstream.convert import Converter
from sources.jetstream.delivery import Action, Verdict
from sources.jetstream.sink import Sink

log = logging.getLogger("sources.jetstream")

#: Seconds a pull waits for messages. It bounds how long a stop waits for the
#: pull to return, so that nothing is fetched and left unanswered.
PULL_WAIT = 1.0
#: Seconds between retries of a pull that failed, doubled up to the limit.
RETRY_FIRST, RETRY_LIMIT = 0.5, 5.0
#: Seconds a delivery may take to settle once its POST is over.
SETTLE_MARGIN = 10.0

# What NATS raises while it is away or restarting.
_NATS_AWAY = (nats.errors.Error, OSError, TimeoutError)


class Source:
    """One durable consumer feeding one sink, until ``stop`` is set."""

    def __init__(
        self, config: Config, js: JetStreamContext, sink: Sink, stop: asyncio.Event
    ) -> None:
        self.config = config
        self.js = js
        self.sink = sink
        self.stop = stop
        self._convert = Converter(config.extensions)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Consume until stopped, then let what is in flight finish."""
        pull = await self._subscribe()
        if pull is None:
            return
        log.info(
            "consuming",
            extra={
                "stream": self.config.stream,
                "durable": self.config.durable,
                "subjects": list(self.config.subjects) or ["(whole stream)"],
                "sink": self.config.sink_for_logs,
            },
        )
        try:
            await self._pull(pull)
        finally:
            await self._finish()
            with contextlib.suppress(*_NATS_AWAY):
                await pull.unsubscribe()

    async def _subscribe(self) -> JetStreamContext.PullSubscription | None:
        """The consumer's pull subscription, retried while NATS is away."""
        failures = 0
        while not self.stop.is_set():
            try:
                await consumer.prepare(self.js, self.config)
                return await self.js.pull_subscribe_bind(
                    durable=self.config.durable, stream=self.config.stream
                )
            except NoetlError:
                raise
            except _NATS_AWAY as exc:
                failures += 1
                log.warning("cannot reach JetStream yet: %r; retrying", exc)
                await self._pause(failures)
        return None

    async def _pull(self, pull: JetStreamContext.PullSubscription) -> None:
        failures = 0
        while not self.stop.is_set():
            if failures:
                # A restarted server may have lost the consumer with its store.
                try:
                    await consumer.prepare(self.js, self.config)
                except _NATS_AWAY as exc:
                    log.debug("JetStream still away: %r", exc)
                    failures += 1
                    await self._pause(failures)
                    continue

            room = await self._room()
            if not room:
                break
            try:
                messages = await pull.fetch(room, timeout=PULL_WAIT)
            except TimeoutError:
                # Nothing came within the wait. nats-py raises its own
                # TimeoutError or asyncio's, which is the builtin one: both
                # mean ask again, not that NATS is away.
                messages = []
            except _NATS_AWAY as exc:
                if not failures:
                    log.warning("pull failed: %r; retrying until NATS answers", exc)
                failures += 1
                await self._pause(failures)
                continue
            if failures:
                log.info("pulling again after %d failed attempts", failures)
                failures = 0

            for msg in messages:
                task = asyncio.create_task(self._deliver(msg))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _room(self) -> int:
        """How many more messages may be fetched, once there is room (0: stop).

        A busy source waits until a quarter of its deliveries are free, so
        that it fetches them in one round trip rather than one by one.
        """
        limit = self.config.max_inflight
        batch = max(1, limit // 4)
        while limit - len(self._tasks) < batch and not self.stop.is_set():
            stopped = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait(
                {*self._tasks, stopped}, return_when=asyncio.FIRST_COMPLETED
            )
            stopped.cancel()
        if self.stop.is_set():
            return 0
        return limit - len(self._tasks)

    async def _pause(self, failures: int) -> None:
        """Wait before retrying, or less if the source is stopped meanwhile."""
        wait = min(RETRY_FIRST * 2 ** (failures - 1), RETRY_LIMIT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), wait)

    async def _finish(self) -> None:
        if not self._tasks:
            return
        log.info("stopping; waiting for %d deliveries in flight", len(self._tasks))
        _, late = await asyncio.wait(
            set(self._tasks), timeout=self.config.request_timeout + SETTLE_MARGIN
        )
        for task in late:
            # Unsettled, the message is redelivered once its ack wait is over.
            task.cancel()

    async def _deliver(self, msg: Msg) -> None:
        """POST one message and settle it; never raises."""
        original = _original(msg)
        try:
            await self._deliver_one(msg, original)
        except Exception:
            # A fault of the source's own: the message is redelivered after
            # its ack wait, and the other deliveries go on.
            with logs.bound(seq=original.sequence, subject=original.subject):
                log.exception("delivery failed")

    async def _deliver_one(self, msg: Msg, original: deadletter.Original) -> None:
        if self.stop.is_set():
            # Fetched but not started: give it back at once for another run.
            with contextlib.suppress(*_NATS_AWAY):
                await msg.nak()
            return

        where = {"seq": original.sequence, "subject": original.subject}
        try:
            request = self._convert(original)
        except InvalidCloudEvent as exc:
            with logs.bound(**where):
                await self._settle(msg, original, delivery.unconvertible(str(exc)))
            return

        with logs.bound(**where, refId=request.ref_id, ceId=request.id):
            started = time.perf_counter()
            with _InProgress(msg, self.config.ack_wait / 3):
                attempt = await self.sink.post(request)
                verdict = delivery.judge(
                    attempt, msg.metadata.num_delivered, self.config.policy
                )
                ms = round((time.perf_counter() - started) * 1000, 1)
                await self._settle(msg, original, verdict, ms=ms)

    async def _settle(
        self,
        msg: Msg,
        original: deadletter.Original,
        verdict: Verdict,
        ms: float | None = None,
    ) -> None:
        """Ack, nak or dead-letter ``msg`` as ``verdict`` says, and log it."""
        delivered = msg.metadata.num_delivered
        extra: dict[str, Any] = {"attempt": delivered, "status": verdict.status}
        if ms is not None:
            extra["ms"] = ms
        try:
            if verdict.action is Action.ACK:
                await msg.ack()
                # The function logs what it did; this line is for debugging.
                log.debug("delivered", extra=extra)
            elif verdict.action is Action.RETRY:
                await msg.nak(delay=verdict.delay)
                log.warning(
                    "will retry in %.1fs: %s",
                    verdict.delay,
                    verdict.reason,
                    extra=extra,
                )
            else:
                await self._dead_letter(msg, original, verdict, extra)
        except _NATS_AWAY as exc:
            log.warning(
                "could not settle the message (%r); JetStream redelivers it", exc
            )

    async def _dead_letter(
        self,
        msg: Msg,
        original: deadletter.Original,
        verdict: Verdict,
        extra: dict[str, Any],
    ) -> None:
        delivered = msg.metadata.num_delivered
        try:
            await deadletter.publish(
                self.js, original, verdict.reason, delivered, verdict.status
            )
        except _NATS_AWAY as exc:
            # Lose nothing: the message stays until a dead letter is stored.
            wait = delivery.delay(delivered, self.config.policy)
            await msg.nak(delay=wait)
            log.error(
                "could not dead-letter (%r); will retry in %.1fs: %s",
                exc,
                wait,
                verdict.reason,
                extra=extra,
            )
            return
        await msg.ack()
        log.error("dead-lettered: %s", verdict.reason, extra=extra)


def _original(msg: Msg) -> deadletter.Original:
    meta = msg.metadata
    return deadletter.Original(
        stream=meta.stream,
        subject=msg.subject,
        sequence=meta.sequence.stream,
        headers=dict(msg.headers or {}),
        data=msg.data,
    )


class _InProgress:
    """Tell JetStream every ``every`` seconds that ``msg`` is being worked on.

    A timer rather than a task: most deliveries end long before the first
    beat, and a timer costs a third of a task to start and cancel.
    """

    __slots__ = ("beats", "every", "loop", "msg", "timer")

    def __init__(self, msg: Msg, every: float) -> None:
        self.msg = msg
        self.every = every
        self.beats: set[asyncio.Task[None]] = set()

    def __enter__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.timer = self.loop.call_later(self.every, self._beat)

    def __exit__(self, *exc: object) -> None:
        self.timer.cancel()
        for task in self.beats:
            task.cancel()

    def _beat(self) -> None:
        task = self.loop.create_task(self._tell())
        self.beats.add(task)
        task.add_done_callback(self.beats.discard)
        self.timer = self.loop.call_later(self.every, self._beat)

    async def _tell(self) -> None:
        try:
            await self.msg.in_progress()
        except _NATS_AWAY as exc:
            log.debug("in-progress ack failed: %r", exc)
