"""The limit of the source hop: the same I/O with nothing else in between.

``python -m bench.loop`` pulls from a durable consumer as the source pulls (a
batch once a quarter of its slots are free), POSTs each message to
a sink with aiohttp (one session, as the source's sink keeps), publishes the
message onward, awaiting JetStream's ack, and acks, with at most
``BENCH_CONCURRENCY`` messages in flight. No CloudEvent is built, nothing is
logged per message, no in-progress heartbeat runs: this is the floor that
the source and a function are measured against.

With ``BENCH_FORWARD=1`` the loop sends a binary-mode CloudEvent and leaves
the publishing to the sink, a function (the framework's share of the hop).

Configured by environment: ``NATS_URL``, ``BENCH_STREAM``, ``BENCH_SUBJECT``,
``BENCH_DURABLE``, ``BENCH_SINK``, ``BENCH_CONCURRENCY``, ``BENCH_FORWARD``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import aiohttp
import nats
import uvloop
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

PULL_WAIT = 1.0


class Loop:
    def __init__(self, js: JetStreamContext, session: aiohttp.ClientSession) -> None:
        self.js = js
        self.session = session
        self.sink = os.environ["BENCH_SINK"]
        self.limit = int(os.environ["BENCH_CONCURRENCY"])
        self.forward = os.environ.get("BENCH_FORWARD") == "1"
        self.tasks: set[asyncio.Task[None]] = set()
        # Pulled as the source pulls: once a quarter of the slots are free.
        self.batch = max(1, self.limit // 4)
        self.room = asyncio.Event()

    async def run(
        self, pull: JetStreamContext.PullSubscription, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            if self.limit - len(self.tasks) < self.batch:
                self.room.clear()
                await self.room.wait()
                continue
            try:
                messages = await pull.fetch(self.limit - len(self.tasks), PULL_WAIT)
            except TimeoutError:  # nats-py's and asyncio's are both this
                continue
            for msg in messages:
                task = asyncio.create_task(self.handle(msg))
                self.tasks.add(task)
                task.add_done_callback(self.done)

    def done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if self.limit - len(self.tasks) >= self.batch:
            self.room.set()

    async def handle(self, msg: Msg) -> None:
        headers = {"Content-Type": "application/json"}
        if self.forward:
            meta = msg.metadata
            headers.update(
                {
                    "ce-specversion": "1.0",
                    "ce-id": f"{meta.stream}:{meta.sequence.stream}",
                    "ce-source": f"nats://{meta.stream}/{msg.subject}",
                    "ce-type": "io.noetl.message.bench",
                }
            )
        post = self.session.post(self.sink, data=msg.data, headers=headers)
        async with post as answer:
            ok = 200 <= answer.status < 300
            await answer.read()  # to the end, as the source does: keep-alive
        if not ok:
            await msg.nak()
            return
        if not self.forward:
            await self.js.publish(json.loads(msg.data)["out"], msg.data)
        await msg.ack()


async def main() -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    client = await nats.connect(os.environ["NATS_URL"])
    js = client.jetstream()
    stream, durable = os.environ["BENCH_STREAM"], os.environ["BENCH_DURABLE"]
    await js.add_consumer(
        stream,
        ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30,
            max_deliver=-1,
            filter_subject=os.environ["BENCH_SUBJECT"],
        ),
    )
    pull = await js.pull_subscribe_bind(durable=durable, stream=stream)
    limit = int(os.environ["BENCH_CONCURRENCY"])
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=60),
    ) as session:
        print("consuming", flush=True)
        await Loop(js, session).run(pull, stop)
    await client.drain()
    return 0


if __name__ == "__main__":
    sys.exit(uvloop.run(main()))
