"""Listing and replaying dead letters against a real NATS."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from noetl import topology
from noetl.cli.deadletters import replay_headers

Noetl = Callable[..., subprocess.CompletedProcess[str]]
ORIGINAL = {
    "ce-id": "r:2.2",
    "ce-type": "io.noetl.command.RegisterPluginImage",
    "Content-Type": "application/json",
    "Nats-Msg-Id": "r:2.2",
}


async def bury(js: JetStreamContext, data: bytes, status: str = "400") -> int:
    """Dead-letter ``data`` as the source does for catalog.plugin.register."""
    headers = {
        **ORIGINAL,
        # Each dead letter is a message of its own to the dead-letter stream.
        "Nats-Msg-Id": f"dead:{data!r}",
        "Noetl-Dead-Reason": "sink answered 400",
        "Noetl-Dead-Status": status,
        "Noetl-Dead-Attempts": "1",
        "Noetl-Dead-Stream": topology.COMMANDS,
        "Noetl-Dead-Subject": topology.SUBJECT_REGISTER,
        "Noetl-Dead-At": "2026-01-01T00:00:00Z",
    }
    subject = topology.DEADLETTER_PREFIX + topology.SUBJECT_REGISTER
    ack = await js.publish(subject, data, headers=headers)
    return ack.seq


def test_replay_keeps_the_original_headers_only() -> None:
    dead = {**ORIGINAL, "Noetl-Dead-Reason": "x", "noetl-dead-status": "500"}
    kept = dict(ORIGINAL)
    del kept["Nats-Msg-Id"]
    assert replay_headers(dead) == kept


async def test_list_then_replay_one_then_all(
    nats_url: str, js: JetStreamContext, noetl: Noetl
) -> None:
    run = noetl
    first = await bury(js, b'{"refId": "r", "commandType": "RegisterPluginImage"}')
    second = await bury(js, b"not json", status="")

    listed = await asyncio.to_thread(
        run, "deadletters", "--nats", nats_url, "-o", "json"
    )
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)
    assert [d["sequence"] for d in letters] == [first, second]
    assert letters[0]["subject"] == topology.SUBJECT_REGISTER
    assert letters[0]["reason"] == "sink answered 400"
    assert (letters[0]["status"], letters[0]["attempts"]) == ("400", "1")
    assert letters[0]["refId"] == "r"

    table = await asyncio.to_thread(run, "deadletters", "--nats", nats_url)
    assert table.stdout.splitlines()[0].split() == [
        "SEQ",
        "SUBJECT",
        "STATUS",
        "ATTEMPTS",
        "REASON",
    ]

    # The replay lands in the original stream, as first published.
    sub = await js.subscribe(
        topology.SUBJECT_REGISTER,
        stream=topology.COMMANDS,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
    )
    replayed = await asyncio.to_thread(run, "replay", str(first), "--nats", nats_url)
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed dead letter {first} to {topology.SUBJECT_REGISTER}" in (
        replayed.stdout
    )
    msg = await sub.next_msg(timeout=10)
    assert msg.data == b'{"refId": "r", "commandType": "RegisterPluginImage"}'
    assert not any(k.lower().startswith("noetl-dead-") for k in msg.headers or {})
    assert "Nats-Msg-Id" not in (msg.headers or {})
    assert (msg.headers or {})["ce-id"] == "r:2.2"

    again = await asyncio.to_thread(run, "replay", str(first), "--nats", nats_url)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[0] == (
        f"noetl: no dead letter with sequence {first}"
    )

    rest = await asyncio.to_thread(
        run, "replay", "--all", "--nats", nats_url, "-o", "json"
    )
    assert rest.returncode == 0, rest.stderr
    assert [d["sequence"] for d in json.loads(rest.stdout)] == [second]
    await sub.next_msg(timeout=10)
    await sub.unsubscribe()

    empty = await asyncio.to_thread(run, "deadletters", "--nats", nats_url)
    assert empty.stdout.strip() == "no dead letters"


async def test_nats_unreachable_is_one_line(noetl: Noetl) -> None:
    run = noetl
    result = await asyncio.to_thread(run, "deadletters", "--nats", "nats://127.0.0.1:1")
    assert result.returncode == 1
    assert result.stderr == (
        "noetl: cannot reach NATS at nats://127.0.0.1:1: no server answered\n"
    )
