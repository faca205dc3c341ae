"""Following a registration: the tracker alone, then against a real NATS.

In the NATS tests the test itself writes what the functions would write, in
the order they would write it, through the shared core's own helpers.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from nats.js import JetStreamContext

from noetl import binding, records, topology
from noetl.cli import broker
from noetl.cli.errors import WaitTimedOut
from noetl.cli.watch import (
    PLUGINS_STREAM,
    REGISTRATIONS_STREAM,
    Follower,
    Seen,
    Tracker,
)
from noetl.messages import event_for, publish
from noetl.models import (
    RegisterPluginImage,
    RegistrationRequested,
    ReportPluginRegistration,
    SchemaRegistrationCompleted,
    SchemaRegistrationFailed,
)

NAME = "example-plugin-1.0"
IMAGE = "localhost/noetl/example-plugin:1.0"
SCHEMA = {"type": "object", "properties": {"url": {"type": "string"}}}


def new_ref() -> str:
    return str(uuid.uuid4())


def message(subject: str, payload: Any, sequence: int = 1) -> Seen:
    headers, data = binding.to_binary(event_for(payload, "test", subject))
    return Seen(topology.stream_of(subject), subject, sequence, headers, data)


def record(ref_id: str, states: list[str], **fields: Any) -> Seen:
    value = {
        "refId": ref_id,
        "pluginName": NAME,
        "state": states[-1],
        "history": [{"state": s, "at": "t"} for s in states],
        **fields,
    }
    subject = f"$KV.{topology.REGISTRATIONS}.{ref_id}"
    return Seen(REGISTRATIONS_STREAM, subject, 1, {}, json.dumps(value).encode())


def test_only_the_followed_refid_makes_steps() -> None:
    ref, other = new_ref(), new_ref()
    tracker = Tracker(ref)
    theirs = RegisterPluginImage(other, NAME, IMAGE, {"gateway": "API"})
    ours = RegisterPluginImage(ref, NAME, IMAGE, {"gateway": "API"})
    assert tracker.feed(message(topology.SUBJECT_REGISTER, theirs)) == []
    assert tracker.feed(record(other, ["received"])) == []
    [step] = tracker.feed(message(topology.SUBJECT_REGISTER, ours))
    assert (step.step, step.title) == ("2.2", "register command")


def test_a_repeated_message_is_one_step() -> None:
    tracker = Tracker(ref := new_ref())
    request = RegistrationRequested(ref, NAME, IMAGE, {"gateway": "API"})
    assert len(tracker.feed(message(topology.SUBJECT_API, request, 1))) == 1
    assert tracker.feed(message(topology.SUBJECT_API, request, 2)) == []


def test_states_missed_between_revisions_still_show() -> None:
    tracker = Tracker(ref := new_ref())
    assert [s.step for s in tracker.feed(record(ref, ["received"]))] == ["1.1"]
    steps = tracker.feed(record(ref, ["received", "registering", "failed"], error="x"))
    assert [(s.step, s.title) for s in steps] == [
        ("3.3", "registering"),
        ("final", "failed"),
    ]
    assert tracker.state == "failed" and tracker.error == "x"


def test_settled_once_final_and_reported_then_the_callback() -> None:
    tracker = Tracker(ref := new_ref())
    tracker.feed(record(ref, ["received", "registering", "success"], callbackApi="u"))
    assert tracker.final and not tracker.settled
    report = ReportPluginRegistration(ref, NAME, "success")
    [step] = tracker.feed(message(topology.SUBJECT_NOTIFY, report))
    assert step.step == "5.1" and tracker.settled and tracker.callback_pending

    callback = {"state": "success", "status": 200, "done": True, "note": "delivered"}
    states = ["received", "registering", "success"]
    [step] = tracker.feed(record(ref, states, callbackApi="u", callback=callback))
    assert (step.step, step.title, step.detail) == (
        "callback",
        "delivered",
        "POST u -> HTTP 200",
    )
    assert not tracker.callback_pending


def test_a_refused_callback_and_nobody_to_call() -> None:
    tracker = Tracker(ref := new_ref())
    refused = {"state": "failed", "status": 410, "note": "refused"}
    [_, step] = tracker.feed(
        record(ref, ["received"], callbackApi="u", callback=refused)
    )
    assert (step.title, step.detail) == (
        "not delivered",
        "POST u -> HTTP 410 (refused)",
    )

    tracker = Tracker(ref := new_ref())
    nobody = {"state": "success", "status": None, "note": "none"}
    [_, step] = tracker.feed(record(ref, ["received"], callback=nobody))
    assert (step.title, step.detail) == ("none", "no callbackApi: nobody to call")


def test_a_record_without_history_shows_each_state_it_is_seen_in() -> None:
    tracker = Tracker(ref := new_ref())
    subject = f"$KV.{topology.REGISTRATIONS}.{ref}"

    def bare(state: str) -> Seen:
        value = json.dumps({"refId": ref, "state": state}).encode()
        return Seen(REGISTRATIONS_STREAM, subject, 1, {}, value)

    assert [s.step for s in tracker.feed(bare("received"))] == ["1.1"]
    assert tracker.feed(bare("received")) == []
    assert [s.title for s in tracker.feed(bare("success"))] == ["success"]


def test_a_stored_plugin_and_a_deleted_key() -> None:
    tracker = Tracker(ref := new_ref())
    subject = f"$KV.{topology.PLUGINS}.{NAME}"
    value = json.dumps({"imageUrl": IMAGE, "refId": ref}).encode()
    [step] = tracker.feed(Seen(PLUGINS_STREAM, subject, 3, {}, value))
    assert step.step == "3.2" and step.fields["pluginName"] == NAME
    deleted = Seen(PLUGINS_STREAM, subject, 4, {"KV-Operation": "DEL"}, b"")
    assert tracker.feed(deleted) == []


def test_messages_that_are_not_ours_to_read_are_skipped() -> None:
    tracker = Tracker(new_ref())
    assert tracker.feed(Seen("events", "dispatcher.api", 1, {}, b"not json")) == []
    assert tracker.feed(Seen("events", "dispatcher.api", 2, {}, b"[1, 2]")) == []


async def test_the_follower_sees_every_step_stored_after_it_started(
    nats_url: str, js: JetStreamContext
) -> None:
    ref, request = new_ref(), {"gateway": "API"}
    kv = await js.key_value(topology.REGISTRATIONS)
    plugins = await js.key_value(topology.PLUGINS)
    # Stored before the follower starts: not part of what it follows.
    earlier = RegisterPluginImage(new_ref(), NAME, IMAGE, request)
    await publish(js, topology.SUBJECT_REGISTER, earlier, "test")

    nc = await broker.connect(nats_url)
    follower = Follower(nc, nats_url)
    await follower.start()
    try:
        new = records.Registration(ref, NAME, IMAGE, callback_api="http://cb.test/")
        await records.create(kv, new)
        await publish(
            js,
            topology.SUBJECT_API,
            RegistrationRequested(ref, NAME, IMAGE, request),
            "api",
        )
        other = RegistrationRequested(new_ref(), NAME, IMAGE, request)
        await publish(js, topology.SUBJECT_API, other, "api")
        command = RegisterPluginImage(ref, NAME, IMAGE, request)
        await publish(js, topology.SUBJECT_REGISTER, command, "dispatcher")
        await records.put_plugin(plugins, records.Plugin(NAME, IMAGE, ref))
        await records.advance(kv, ref, records.REGISTERING)
        completed = SchemaRegistrationCompleted(ref, NAME, SCHEMA)
        await publish(js, topology.SUBJECT_SCHEMA, completed, "plugin")
        await records.advance(kv, ref, records.SUCCESS, schema=SCHEMA)
        report = ReportPluginRegistration(ref, NAME, "success")
        await publish(js, topology.SUBJECT_NOTIFY, report, "dispatcher")

        def delivered(r: records.Registration) -> bool:
            r.callback = {"state": "success", "status": 204, "done": True}
            return True

        await records.update(kv, ref, delivered)
        steps = [step async for step in follower.follow(ref, time_limit=60)]
    finally:
        await follower.stop()
        await nc.close()

    # Each stream delivers in order; between streams the order may differ.
    assert sorted(s.step for s in steps) == sorted(
        ["1.1", "1.2", "2.2", "3.2", "3.3", "4.1", "final", "5.1", "callback"]
    )
    by_step = {s.step: s for s in steps}
    assert by_step["final"].title == "success"
    assert by_step["callback"].title == "delivered"
    assert all(s.at is not None for s in steps)
    assert follower.tracker is not None and follower.tracker.state == "success"


async def test_the_follower_gives_up_at_its_time_limit(
    nats_url: str, js: JetStreamContext
) -> None:
    ref = new_ref()
    kv = await js.key_value(topology.REGISTRATIONS)
    nc = await broker.connect(nats_url)
    follower = Follower(nc, nats_url)
    await follower.start()
    try:
        await records.create(kv, records.Registration(ref, NAME, IMAGE))
        failed = SchemaRegistrationFailed(ref, NAME, IMAGE, "boom")
        await publish(js, topology.SUBJECT_SCHEMA, failed, "catalog")
        seen = []
        with pytest.raises(WaitTimedOut, match=f"{ref} is received after 2 s"):
            async for step in follower.follow(ref, time_limit=2):
                seen.append(step.step)
        assert sorted(seen) == ["1.1", "4.1"]
    finally:
        await follower.stop()
        await nc.close()


async def test_following_without_the_streams_says_what_is_missing(
    nats_url: str,
) -> None:
    nc = await broker.connect(nats_url)
    try:
        with pytest.raises(Exception, match="stream events does not exist"):
            await Follower(nc, nats_url).start()
    finally:
        await nc.close()
