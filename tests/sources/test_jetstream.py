"""The source program end to end: a real nats-server, the real source process
started as ``python -m sources.jetstream``, and a real HTTP sink in this test.

Nothing is timed: each test waits for a condition with a generous deadline.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import nats.errors
import pytest
import support
from aiohttp import web
from cloudevents.http import CloudEvent
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, RawStreamMsg
from support import serving

from noetl import binding, connection, localrun, messages, models, topology
from sources.jetstream import source
from sources.jetstream.config import Config
from sources.jetstream.sink import Sink
from sources.jetstream.source import Source

T = TypeVar("T")

WAIT = 30.0  # seconds: generous, for a slow machine
DURABLE = "source-test"
STREAM = topology.EVENTS
SUBJECT = topology.SUBJECT_API


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def id(self) -> str:
        return self.headers.get("ce-id", "")

    def attribute(self, name: str) -> str:
        return binding.decode_value(self.headers["ce-" + name])


Answer = Callable[[Received, int], Awaitable[web.Response]]


async def _ok(received: Received, attempt: int) -> web.Response:
    return web.Response(status=204)


class HttpSink:
    """Records each request and answers as the scenario says.

    ``answer`` gets the request and which attempt at its ce-id it is (1 first).
    """

    def __init__(self) -> None:
        self.url = ""
        self.received: list[Received] = []
        self.answer: Answer = _ok
        self.in_flight = 0
        self.most_in_flight = 0

    async def handle(self, request: web.Request) -> web.Response:
        received = Received(
            {name.lower(): value for name, value in request.headers.items()},
            await request.read(),
        )
        self.received.append(received)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self.answer(received, len(self.for_id(received.id)))
        finally:
            self.in_flight -= 1

    def for_id(self, ce_id: str) -> list[Received]:
        return [received for received in self.received if received.id == ce_id]

    async def wait_for(self, count: int) -> list[Received]:
        await until(lambda: len(self.received) >= count, f"{count} requests")
        return self.received


@pytest.fixture
async def sink() -> AsyncIterator[HttpSink]:
    recorder = HttpSink()
    async with serving(recorder.handle, "/") as url:
        recorder.url = url
        yield recorder


def _source_process(nats_url: str, sink: HttpSink, **env: str) -> localrun.Process:
    return localrun.Process(
        [sys.executable, "-m", "sources.jetstream"],
        env={
            "NATS_URL": nats_url,
            "K_SINK": sink.url,
            "NOETL_SOURCE_STREAM": STREAM,
            "NOETL_SOURCE_DURABLE": DURABLE,
            **env,
        },
        cwd=localrun.ROOT,
    )


Start = Callable[..., Awaitable[localrun.Process]]
# Few attempts and short backoffs, so that retries end within a test.
QUICK = {
    "NOETL_SOURCE_MAX_DELIVER": "3",
    "NOETL_SOURCE_BACKOFF_SECONDS": "0.1",
    "NOETL_SOURCE_BACKOFF_MAX_SECONDS": "0.5",
    "NOETL_LOG_LEVEL": "DEBUG",
}


@pytest.fixture
async def start_source(sink: HttpSink) -> AsyncIterator[Start]:
    """Start the source program; ``start(nats_url, NOETL_SOURCE_...="...")``."""
    started: list[localrun.Process] = []

    async def start(nats_url: str, **env: str) -> localrun.Process:
        proc = _source_process(nats_url, sink, **{**QUICK, **env})
        started.append(proc)
        await asyncio.to_thread(proc.wait_for_line, '"message": "consuming"', WAIT)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            await asyncio.to_thread(proc.stop)
            print(f"--- {proc.command}", *proc.lines, sep="\n")


until = functools.partial(support.until, within=WAIT)


async def publish(
    js: JetStreamContext,
    data: bytes,
    headers: dict[str, str] | None = None,
    subject: str = SUBJECT,
) -> int:
    ack = await js.publish(subject, data, headers=headers, stream=STREAM)
    return ack.seq


async def settled(js: JetStreamContext) -> ConsumerInfo:
    """The consumer once every message in the stream is acked."""

    async def check() -> ConsumerInfo | None:
        last = (await js.stream_info(STREAM)).state.last_seq
        info = await js.consumer_info(STREAM, DURABLE)
        done = (
            info.ack_floor is not None
            and info.ack_floor.stream_seq >= last
            and not info.num_ack_pending
            and not info.num_pending
        )
        return info if done else None

    info: ConsumerInfo = await until(check, "every message acked")
    return info


async def dead_letters(js: JetStreamContext, count: int) -> list[RawStreamMsg]:
    """The first ``count`` dead letters, once there are that many."""

    async def stored() -> bool:
        return (await js.stream_info(topology.DEADLETTERS)).state.messages >= count

    await until(stored, f"{count} dead letters")
    return [await js.get_msg(topology.DEADLETTERS, seq) for seq in range(1, count + 1)]


async def no_dead_letters(js: JetStreamContext) -> bool:
    return (await js.stream_info(topology.DEADLETTERS)).state.messages == 0


def _registration() -> models.RegistrationRequested:
    return models.RegistrationRequested(
        ref_id=str(uuid.uuid4()),
        plugin_name="example-plugin-1.0",
        image_url="localhost/noetl/example-plugin:1.0",
        request_source={"gateway": "API"},
    )


async def test_binary_event_arrives_with_its_attributes_and_is_acked(
    nats_url: str, js: JetStreamContext, sink: HttpSink, start_source: Start
) -> None:
    await start_source(nats_url)
    payload = _registration()
    await messages.publish(js, SUBJECT, payload, "api")
    # Values with a space, a percent sign and non-ASCII letters.
    odd = CloudEvent(
        {
            "id": "odd:1",
            "source": "/noetl/tëst 100% sûr",
            "type": "io.noetl.event.Odd",
            "datacontenttype": "application/json",
            "comment": 'naïve "quoted" 50%',
        },
        {"refId": "odd", "text": "ünïcödé"},
    )
    headers, body = binding.to_binary(odd)
    await publish(js, body, headers)

    first, second = await sink.wait_for(2)
    assert first.id == payload.message_id()
    assert first.attribute("type") == models.RegistrationRequested.ce_type()
    assert first.attribute("source") == "/noetl/api"
    assert first.attribute("specversion") == "1.0"
    assert first.headers["content-type"] == "application/json"
    assert json.loads(first.body) == payload.to_data()

    assert second.headers["ce-source"] == "/noetl/t%C3%ABst%20100%25%20s%C3%BBr"
    assert second.attribute("source") == "/noetl/tëst 100% sûr"
    assert second.attribute("comment") == 'naïve "quoted" 50%'
    assert json.loads(second.body) == {"refId": "odd", "text": "ünïcödé"}

    info = await settled(js)
    assert info.delivered is not None and info.delivered.consumer_seq == 2
    assert len(sink.received) == 2  # nothing redelivered
    assert await no_dead_letters(js)


async def test_structured_and_plain_json_get_derived_attributes(
    nats_url: str, js: JetStreamContext, sink: HttpSink, start_source: Start
) -> None:
    await start_source(nats_url)
    structured = CloudEvent(
        {"id": "elsewhere-1", "source": "/elsewhere", "type": "com.example.Thing"},
        {"refId": "r1", "value": 1},
    )
    headers, body = binding.to_structured(structured)
    await publish(js, body, headers)
    completed = {"eventType": "pluginSchemaRegistrationCompleted", "refId": "r2"}
    await publish(
        js,
        json.dumps(completed).encode(),
        {"Nats-Msg-Id": "r2:4.1:completed"},
        subject=topology.SUBJECT_SCHEMA,
    )
    untyped = await publish(js, b'{"hello": "world"}')

    got = {received.id: received for received in await sink.wait_for(3)}
    assert got["elsewhere-1"].attribute("type") == "com.example.Thing"
    assert got["elsewhere-1"].attribute("source") == "/elsewhere"
    assert json.loads(got["elsewhere-1"].body) == {"refId": "r1", "value": 1}

    plain = got["r2:4.1:completed"]
    assert plain.attribute("type") == "io.noetl.event.pluginSchemaRegistrationCompleted"
    assert plain.attribute("source") == f"nats://{STREAM}/{topology.SUBJECT_SCHEMA}"
    assert json.loads(plain.body) == completed

    bare = got[f"{STREAM}:{untyped}"]
    assert bare.attribute("type") == f"io.noetl.message.{SUBJECT}"
    assert bare.attribute("source") == f"nats://{STREAM}/{SUBJECT}"
    await settled(js)


async def test_overrides_add_extensions_to_every_event(
    nats_url: str, js: JetStreamContext, sink: HttpSink, start_source: Start
) -> None:
    overrides = {"extensions": {"cluster": "local one", "team": "plugins"}}
    await start_source(nats_url, K_CE_OVERRIDES=json.dumps(overrides))
    await messages.publish(js, SUBJECT, _registration(), "api")
    await publish(js, b'{"plain": true}')

    for received in await sink.wait_for(2):
        assert received.attribute("cluster") == "local one"
        assert received.attribute("team") == "plugins"
    await settled(js)


async def test_poison_messages_are_dead_lettered_and_the_next_flows(
    nats_url: str, js: JetStreamContext, sink: HttpSink, start_source: Start
) -> None:
    await start_source(nats_url)
    not_json = await publish(js, b"not json", {"X-Origin": "test"})
    not_object = await publish(js, b"[1, 2]", {"Nats-Msg-Id": "list-1"})
    untyped = await publish(
        js, b'{"id": "x", "source": "/s"}', {"Content-Type": binding.STRUCTURED}
    )
    structured = {"Content-Type": binding.STRUCTURED}
    future = await publish(
        js,
        b'{"id": "x", "source": "/s", "type": "t", "specversion": "2.0"}',
        structured,
    )
    bad_base64 = await publish(
        js,
        b'{"id": "x", "source": "/s", "type": "t", "data_base64": "abc"}',
        structured,
    )
    payload = _registration()
    await messages.publish(js, SUBJECT, payload, "api")

    [received] = await sink.wait_for(1)
    assert received.id == payload.message_id()
    dead = await dead_letters(js, 5)
    await settled(js)

    by_sequence = {int(m.headers["Noetl-Dead-Sequence"]): m for m in dead}
    assert set(by_sequence) == {not_json, not_object, untyped, future, bad_base64}
    for sequence, letter in by_sequence.items():
        headers = letter.headers or {}
        assert letter.subject == topology.DEADLETTER_PREFIX + SUBJECT
        assert headers["Noetl-Dead-Reason"].startswith("not a CloudEvent: ")
        assert headers["Noetl-Dead-Attempts"] == "1"
        assert headers["Noetl-Dead-Stream"] == STREAM
        assert headers["Noetl-Dead-Subject"] == SUBJECT
        assert headers["Nats-Msg-Id"] == f"{STREAM}:{sequence}:dead"
        assert "Noetl-Dead-Status" not in headers
        assert headers["Noetl-Dead-At"].endswith("Z")

    first = by_sequence[not_json]
    assert first.data == b"not json"
    assert (first.headers or {})["X-Origin"] == "test"
    assert "not JSON" in (first.headers or {})["Noetl-Dead-Reason"]
    second = by_sequence[not_object].headers or {}
    assert "not an object" in second["Noetl-Dead-Reason"]
    assert second["Noetl-Dead-Msg-Id"] == "list-1"
    assert "type" in (by_sequence[untyped].headers or {})["Noetl-Dead-Reason"]
    assert len(sink.received) == 1


async def test_a_400_is_dead_lettered_at_once(
    nats_url: str, js: JetStreamContext, sink: HttpSink, start_source: Start
) -> None:
    async def reject(received: Received, attempt: int) -> web.Response:
        return web.Response(status=400, text="pluginName is not valid")

    sink.answer = reject
    await start_source(nats_url)
    seq = await publish(js, b'{"refId": "r1"}')

    [letter] = await dead_letters(js, 1)
    headers = letter.headers or {}
    assert headers["Noetl-Dead-Status"] == "400"
    assert headers["Noetl-Dead-Attempts"] == "1"
    assert headers["Noetl-Dead-Sequence"] == str(seq)
    assert headers["Noetl-Dead-Reason"] == "sink answered 400: pluginName is not valid"
    assert letter.data == b'{"refId": "r1"}'
    await settled(js)
    assert len(sink.received) == 1


async def test_a_dead_letter_that_cannot_be_stored_keeps_the_message(
    nats_url: str, js: JetStreamContext, sink: HttpSink, start_source: Start
) -> None:
    async def reject(received: Received, attempt: int) -> web.Response:
        return web.Response(status=422)

    sink.answer = reject
    await start_source(nats_url)
    await js.delete_stream(topology.DEADLETTERS)
    await publish(js, b'{"refId": "r1"}')

    # Nak'd rather than acked while there is nowhere to put it; tried again.
    await sink.wait_for(2)
    await topology.provision(js)
    [letter] = await dead_letters(js, 1)
    await settled(js)
    headers = letter.headers or {}
    assert headers["Noetl-Dead-Status"] == "422"
    assert int(headers["Noetl-Dead-Attempts"]) >= 2


async def test_a_503_is_retried_until_delivered(
    nats_url: str, js: JetStreamContext, sink: HttpSink, start_source: Start
) -> None:
    async def busy_once(received: Received, attempt: int) -> web.Response:
        if attempt == 1:
            return web.Response(status=503, headers={"Retry-After": "1"})
        return web.Response(status=200)

    sink.answer = busy_once
    await start_source(nats_url)
    payload = _registration()
    await messages.publish(js, SUBJECT, payload, "api")

    await sink.wait_for(2)
    await settled(js)
    assert [r.id for r in sink.received] == [payload.message_id()] * 2
    assert await no_dead_letters(js)


async def test_always_failing_is_dead_lettered_after_max_deliver(
    nats_url: str, js: JetStreamContext, sink: HttpSink, start_source: Start
) -> None:
    async def broken(received: Received, attempt: int) -> web.Response:
        return web.Response(status=500, text="boom")

    sink.answer = broken
    await start_source(nats_url, NOETL_SOURCE_MAX_DELIVER="3")
    await publish(js, b'{"refId": "r1"}', {"Nats-Msg-Id": "r1:1.2"})

    [letter] = await dead_letters(js, 1)
    await settled(js)
    headers = letter.headers or {}
    assert headers["Noetl-Dead-Attempts"] == "3"
    assert headers["Noetl-Dead-Status"] == "500"
    assert headers["Noetl-Dead-Reason"] == (
        "gave up after 3 attempts: sink answered 500: boom"
    )
    assert headers["Noetl-Dead-Msg-Id"] == "r1:1.2"
    assert len(sink.for_id("r1:1.2")) == 3


async def test_a_slow_sink_is_called_once(
    nats_url: str, js: JetStreamContext, sink: HttpSink, start_source: Start
) -> None:
    async def slow(received: Received, attempt: int) -> web.Response:
        await asyncio.sleep(5)  # longer than the ack wait
        return web.Response(status=200)

    sink.answer = slow
    await start_source(nats_url, NOETL_SOURCE_ACK_WAIT_SECONDS="2")
    await messages.publish(js, SUBJECT, _registration(), "api")

    info = await settled(js)
    assert len(sink.received) == 1
    assert info.delivered is not None and info.delivered.consumer_seq == 1


async def test_in_flight_messages_are_bounded(
    nats_url: str, js: JetStreamContext, sink: HttpSink, start_source: Start
) -> None:
    async def slowish(received: Received, attempt: int) -> web.Response:
        await asyncio.sleep(0.3)
        return web.Response(status=200)

    sink.answer = slowish
    await start_source(nats_url, NOETL_SOURCE_MAX_INFLIGHT="2")
    for n in range(8):
        await publish(js, json.dumps({"n": n}).encode())

    await sink.wait_for(8)
    await settled(js)
    assert sink.most_in_flight == 2


async def test_a_pull_that_ends_at_its_wait_is_not_taken_for_an_outage(
    nats_url: str,
    js: JetStreamContext,
    sink: HttpSink,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # In process, with a wait so short that most pulls end at its edge, where
    # nats-py raises the builtin TimeoutError rather than its own.
    monkeypatch.setattr(source, "PULL_WAIT", 0.0002)
    caplog.set_level(logging.INFO, "sources.jetstream")
    config = Config.from_env(
        {
            "NATS_URL": nats_url,
            "K_SINK": sink.url,
            "NOETL_SOURCE_STREAM": STREAM,
            "NOETL_SOURCE_DURABLE": DURABLE,
        }
    )
    client = await connection.connect(nats_url, name="test-source")
    stop = asyncio.Event()
    try:
        async with Sink(config.sink, config.request_timeout, 4) as post:
            running = asyncio.create_task(
                Source(config, client.jetstream(), post, stop).run()
            )
            await until(
                lambda: any("consuming" in r.getMessage() for r in caplog.records),
                "the source consuming",
            )
            for n in range(5):
                await publish(js, json.dumps({"n": n}).encode())
                await asyncio.sleep(0.1)
            await sink.wait_for(5)
            stop.set()
            await asyncio.wait_for(running, WAIT)
    finally:
        await client.close()

    outages = [
        r.getMessage() for r in caplog.records if "pull failed" in r.getMessage()
    ]
    assert not outages


async def test_sigterm_lets_the_post_in_flight_finish_and_exits_0(
    nats_url: str, js: JetStreamContext, sink: HttpSink, start_source: Start
) -> None:
    answered = asyncio.Event()

    async def slow(received: Received, attempt: int) -> web.Response:
        await asyncio.sleep(2)
        answered.set()
        return web.Response(status=200)

    sink.answer = slow
    proc = await start_source(nats_url)
    await publish(js, b'{"refId": "r1"}')
    await sink.wait_for(1)

    proc.popen.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(proc.popen.wait, WAIT)
    assert code == 0
    assert answered.is_set()
    await settled(js)
    assert len(sink.received) == 1


async def test_nats_restart_is_survived(
    tmp_path: Path, sink: HttpSink, start_source: Start
) -> None:
    port = localrun.free_port()
    store = tmp_path / "restarted"
    server = await asyncio.to_thread(localrun.start_nats, port, store)
    url = f"nats://127.0.0.1:{port}"
    client = await connection.connect(url, name="test")
    js = client.jetstream(timeout=2)
    try:
        # SIGKILL may lose an ack the server had not stored yet: the short
        # ack wait has the message redelivered soon, at least once as promised.
        proc = await start_source(url, NOETL_SOURCE_ACK_WAIT_SECONDS="2")
        await publish(js, b'{"n": 1}')
        await sink.wait_for(1)

        server.kill()
        await asyncio.to_thread(proc.wait_for_line, "NATS connection lost", WAIT)
        server = await asyncio.to_thread(localrun.start_nats, port, store)

        async def published() -> bool:
            # This test's own client may still write to the dead connection.
            try:
                await publish(js, b'{"n": 2}', {"Nats-Msg-Id": "after-restart"})
            except nats.errors.Error:
                return False
            return True

        await until(published, "a publish after the restart")
        await until(lambda: sink.for_id("after-restart"), "the message after restart")
        await settled(js)
        assert proc.popen.poll() is None
    finally:
        await client.close()
        server.stop()


async def test_a_source_started_before_nats_consumes_once_it_is_up(
    tmp_path: Path, sink: HttpSink
) -> None:
    port = localrun.free_port()
    proc = _source_process(f"nats://127.0.0.1:{port}", sink)
    server = None
    try:
        await asyncio.to_thread(proc.wait_for_line, "NATS client error", WAIT)
        server = await asyncio.to_thread(localrun.start_nats, port, tmp_path / "late")
        await asyncio.to_thread(proc.wait_for_line, '"message": "consuming"', WAIT)
    finally:
        proc.stop()
        if server is not None:
            server.stop()
    assert proc.popen.returncode == 0


async def test_sigterm_while_nats_is_away_exits_0(sink: HttpSink) -> None:
    proc = _source_process(f"nats://127.0.0.1:{localrun.free_port()}", sink)
    try:
        await asyncio.to_thread(proc.wait_for_line, "NATS client error", WAIT)
        proc.popen.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.popen.wait, WAIT) == 0
    finally:
        proc.stop()


async def test_an_unknown_stream_exits_1_naming_it(
    nats_url: str, sink: HttpSink
) -> None:
    proc = _source_process(nats_url, sink, NOETL_SOURCE_STREAM="nope")
    try:
        assert await asyncio.to_thread(proc.popen.wait, WAIT) == 1
    finally:
        proc.stop()
    assert any("stream 'nope' does not exist" in line for line in proc.lines)


async def test_bad_configuration_exits_2_naming_the_variable(sink: HttpSink) -> None:
    proc = _source_process(
        "nats://127.0.0.1:4222", sink, NOETL_SOURCE_MAX_DELIVER="zero"
    )
    try:
        assert await asyncio.to_thread(proc.popen.wait, WAIT) == 2
    finally:
        proc.stop()
    assert any("NOETL_SOURCE_MAX_DELIVER='zero'" in line for line in proc.lines)
