"""The catalog over real HTTP: commands in, plugins stored, runs followed."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.kv import KeyValue
from support import until

from noetl import buckets, records, topology
from noetl.models import (
    RegisterPluginImage,
    SchemaRegistrationCompleted,
    SchemaRegistrationFailed,
)

T = TypeVar("T")
Serve = Callable[..., str]

EXAMPLE = "localhost/noetl/example-plugin:1.0"
FAILING = "localhost/noetl/failing-plugin:1.0"
COMPLETED = SchemaRegistrationCompleted.ce_type()
FAILED = SchemaRegistrationFailed.ce_type()


class Watch:
    """Every message published on the 4.1 subject, duplicates included.

    A core subscription sees each publish, also those JetStream drops as
    duplicates, so counting here shows whether the catalog published twice.
    """

    def __init__(self) -> None:
        self.seen: list[Msg] = []

    async def receive(self, msg: Msg) -> None:
        self.seen.append(msg)

    def of(self, ref_id: str, ce_type: str | None = None) -> list[Msg]:
        return [
            msg
            for msg in self.seen
            if json.loads(msg.data)["refId"] == ref_id
            and (ce_type is None or (msg.headers or {}).get("ce-type") == ce_type)
        ]

    async def wait(self, ref_id: str, ce_type: str) -> Msg:
        async def arrived() -> list[Msg]:
            return self.of(ref_id, ce_type)

        found = await until(arrived, f"{ce_type} for {ref_id}")
        return found[0]


class Catalog:
    """Drives a served catalog: records to create, commands to post."""

    def __init__(self, js: JetStreamContext, http: httpx.AsyncClient) -> None:
        self.js = js
        self.http = http

    async def registrations(self) -> KeyValue:
        return await self.js.key_value(topology.REGISTRATIONS)

    async def plugins(self) -> KeyValue:
        return await self.js.key_value(topology.PLUGINS)

    async def command(
        self,
        image: str,
        name: str = "example-plugin-1.0",
        state: str | None = records.RECEIVED,
    ) -> RegisterPluginImage:
        """A 2.2 command whose registration is recorded in ``state`` (None: none)."""
        command = RegisterPluginImage(
            ref_id=str(uuid.uuid4()),
            plugin_name=name,
            image_url=image,
            request_source={"gateway": "API"},
        )
        if state is not None:
            record = records.Registration(
                ref_id=command.ref_id,
                plugin_name=name,
                image_url=image,
                request_source=command.request_source,
                state=state,
            )
            await records.create(await self.registrations(), record)
        return command

    async def post(
        self,
        url: str,
        data: dict[str, Any],
        ce_type: str = RegisterPluginImage.ce_type(),
    ) -> httpx.Response:
        """POST ``data`` as a binary-mode HTTP CloudEvent, as the source would."""
        headers = {
            "ce-id": f"{data.get('refId', 'no-ref')}:2.2",
            "ce-type": ce_type,
            "ce-source": "/noetl/dispatcher",
            "ce-specversion": "1.0",
            "ce-subject": topology.SUBJECT_REGISTER,
            "Content-Type": "application/json",
        }
        return await self.http.post(url, headers=headers, content=json.dumps(data))

    async def record(self, ref_id: str) -> records.Registration:
        record = await records.get(await self.registrations(), ref_id)
        assert record is not None, f"no registration {ref_id}"
        return record

    async def stored(self, ref_id: str) -> list[RawStreamMsg]:
        """The 4.1 messages the events stream stored for ``ref_id``."""
        info = await self.js.stream_info(topology.EVENTS)
        if not info.state.messages:
            return []
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await self.js.get_msg(topology.EVENTS, seq)
            if (
                msg.subject == topology.SUBJECT_SCHEMA
                and msg.data
                and json.loads(msg.data)["refId"] == ref_id
            ):
                found.append(msg)
        return found


@pytest.fixture
async def watch(nc: Client) -> AsyncIterator[Watch]:
    watch = Watch()
    subscription = await nc.subscribe(topology.SUBJECT_SCHEMA, cb=watch.receive)
    await nc.flush()
    try:
        yield watch
    finally:
        await subscription.unsubscribe()


@pytest.fixture
async def catalog(js: JetStreamContext) -> AsyncIterator[Catalog]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield Catalog(js, http)


StandIn = Callable[[str, str], dict[str, str]]


@pytest.fixture
def standin(tmp_path: Path) -> StandIn:
    """Map an image to a Python script; returns the catalog's env for it.

    Each call adds one image to the same NOETL_LOCAL_PLUGINS file.
    """
    table: dict[str, list[str]] = {}
    path = tmp_path / "local-plugins.json"

    def add(image: str, script: str) -> dict[str, str]:
        source = tmp_path / f"standin-{len(table)}.py"
        source.write_text(script)
        table[image] = [sys.executable, str(source)]
        path.write_text(json.dumps(table))
        return {"NOETL_LOCAL_PLUGINS": str(path)}

    return add


GRACE = {"NOETL_REPORT_GRACE_SECONDS": "1"}


async def test_example_plugin_reports_its_schema(
    serve: Serve, catalog: Catalog, watch: Watch
) -> None:
    url = serve("catalog", **GRACE)
    command = await catalog.command(EXAMPLE)

    response = await catalog.post(url, command.to_data())
    assert response.status_code == 200

    async def completed() -> list[RawStreamMsg]:
        return [
            msg
            for msg in await catalog.stored(command.ref_id)
            if msg.headers and msg.headers["ce-type"] == COMPLETED
        ]

    [stored] = await until(completed, "the report on the events stream")
    assert stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] == f"{command.ref_id}:4.1:completed"
    assert stored.headers["ce-source"] == "/noetl/plugin/example-plugin-1.0"
    assert stored.data is not None
    event = SchemaRegistrationCompleted.from_data(json.loads(stored.data))
    assert event.plugin_name == "example-plugin-1.0"
    assert event.schema["required"] == ["url"]

    plugin = await records.get_plugin(await catalog.plugins(), "example-plugin-1.0")
    assert plugin is not None
    assert (plugin.image_url, plugin.ref_id) == (EXAMPLE, command.ref_id)
    # Deciding the outcome is the dispatcher's work, not the catalog's.
    assert (await catalog.record(command.ref_id)).state == records.REGISTERING


async def test_a_report_within_the_grace_period_is_no_failure(
    serve: Serve, catalog: Catalog, watch: Watch
) -> None:
    url = serve("catalog", NOETL_REPORT_GRACE_SECONDS="3")
    command = await catalog.command(EXAMPLE)

    assert (await catalog.post(url, command.to_data())).status_code == 200
    completed = await watch.wait(command.ref_id, COMPLETED)
    # What the dispatcher does with the report.
    await records.advance(
        await catalog.registrations(),
        command.ref_id,
        records.SUCCESS,
        schema=json.loads(completed.data)["schema"],
    )

    await asyncio.sleep(3 + 2)  # the grace period, and then some
    assert watch.of(command.ref_id, FAILED) == []


async def test_failing_plugin_is_reported_failed_once(
    serve: Serve, catalog: Catalog, watch: Watch
) -> None:
    url = serve("catalog", **GRACE)
    command = await catalog.command(FAILING, name="failing-plugin-1.0")

    assert (await catalog.post(url, command.to_data())).status_code == 200

    msg = await watch.wait(command.ref_id, FAILED)
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == f"{command.ref_id}:4.1:failed"
    assert msg.headers["ce-source"] == "/noetl/catalog"
    event = SchemaRegistrationFailed.from_data(json.loads(msg.data))
    assert event.image_url == FAILING
    assert "plugin exited with code 1" in event.error
    assert "fails on purpose" in event.error  # quoted from its stderr

    await asyncio.sleep(2)  # past the grace period: nothing more comes
    assert len(watch.of(command.ref_id)) == 1


async def test_an_image_without_a_stand_in_fails_at_once(
    serve: Serve, catalog: Catalog, watch: Watch
) -> None:
    url = serve("catalog", **GRACE)
    image = "registry.example/team/unknown:2.0"
    command = await catalog.command(image, name="unknown-2.0")

    assert (await catalog.post(url, command.to_data())).status_code == 200

    msg = await watch.wait(command.ref_id, FAILED)
    error = json.loads(msg.data)["error"]
    assert f"image {image!r} has no local stand-in" in error
    assert EXAMPLE in error and FAILING in error
    # A run that never started leaves the record as it was, for the outcome.
    assert (await catalog.record(command.ref_id)).state == records.RECEIVED


async def test_an_exit_without_a_report_fails_after_the_grace_period(
    serve: Serve, catalog: Catalog, watch: Watch, standin: StandIn
) -> None:
    env = standin("localhost/test/silent:1.0", "import sys\nsys.exit(0)\n")
    url = serve("catalog", **GRACE, **env)
    command = await catalog.command("localhost/test/silent:1.0", name="silent")

    assert (await catalog.post(url, command.to_data())).status_code == 200

    msg = await watch.wait(command.ref_id, FAILED)
    assert (
        json.loads(msg.data)["error"]
        == "plugin exited 0 but reported no schema within 1 s"
    )


async def test_a_run_that_hangs_is_stopped(
    serve: Serve, catalog: Catalog, watch: Watch, standin: StandIn
) -> None:
    env = standin("localhost/test/hang:1.0", "import time\ntime.sleep(600)\n")
    url = serve("catalog", NOETL_JOB_TIMEOUT_SECONDS="2", **GRACE, **env)
    command = await catalog.command("localhost/test/hang:1.0", name="hang")

    assert (await catalog.post(url, command.to_data())).status_code == 200

    msg = await watch.wait(command.ref_id, FAILED)
    error = json.loads(msg.data)["error"]
    assert error.startswith("plugin run exceeded 2 s and was stopped")


async def test_a_redelivered_command_stores_once_and_runs_once(
    serve: Serve, catalog: Catalog, watch: Watch, standin: StandIn, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    env = standin(
        "localhost/test/counted:1.0",
        "import os, time\n"
        f"with open({str(runs)!r}, 'a') as f:\n"
        "    f.write(os.environ['REF_ID'] + '\\n')\n"
        "time.sleep(1)\n",
    )
    url = serve("catalog", **GRACE, **env)
    command = await catalog.command("localhost/test/counted:1.0", name="counted")

    responses = await asyncio.gather(
        catalog.post(url, command.to_data()), catalog.post(url, command.to_data())
    )
    responses.append(await catalog.post(url, command.to_data()))
    assert [r.status_code for r in responses] == [200, 200, 200]

    await watch.wait(command.ref_id, FAILED)  # no report: after the grace
    assert runs.read_text().splitlines() == [command.ref_id]
    assert len(await buckets.history(catalog.js, topology.PLUGINS, "counted")) == 1
    states = [h["state"] for h in (await catalog.record(command.ref_id)).history]
    assert states == ["received", "registering"]


async def test_a_decided_registration_is_skipped(
    serve: Serve, catalog: Catalog
) -> None:
    url = serve("catalog", **GRACE)
    command = await catalog.command(EXAMPLE, state=records.FAILED)
    before = await catalog.record(command.ref_id)

    assert (await catalog.post(url, command.to_data())).status_code == 200

    # Skipped before step 3.2, so nothing was stored and nothing run.
    plugins = await catalog.plugins()
    assert await records.get_plugin(plugins, command.plugin_name) is None
    after = await catalog.record(command.ref_id)
    assert (after.state, after.revision) == (records.FAILED, before.revision)


async def test_a_command_without_a_record_gets_one(
    serve: Serve, catalog: Catalog, watch: Watch
) -> None:
    url = serve("catalog", **GRACE)
    command = await catalog.command(FAILING, name="adopted", state=None)

    assert (await catalog.post(url, command.to_data())).status_code == 200

    record = await catalog.record(command.ref_id)
    assert (record.plugin_name, record.image_url) == ("adopted", FAILING)
    assert record.request_source == {"gateway": "API"}
    assert record.state == records.REGISTERING
    await watch.wait(command.ref_id, FAILED)


async def test_runs_beyond_the_concurrency_wait_their_turn(
    serve: Serve, catalog: Catalog, watch: Watch, standin: StandIn, tmp_path: Path
) -> None:
    turns = tmp_path / "turns.txt"
    env = standin(
        "localhost/test/slow:1.0",
        "import os, sys, time\n"
        "from plugins.example.__main__ import main\n"
        f"log = open({str(turns)!r}, 'a', buffering=1)\n"
        "log.write('start ' + os.environ['PLUGIN_NAME'] + '\\n')\n"
        "time.sleep(1.5)\n"
        "code = main(sys.argv[1:])\n"
        "log.write('end ' + os.environ['PLUGIN_NAME'] + '\\n')\n"
        "sys.exit(code)\n",
    )
    url = serve("catalog", NOETL_JOB_CONCURRENCY="1", **GRACE, **env)
    first = await catalog.command("localhost/test/slow:1.0", name="slow-a")
    second = await catalog.command("localhost/test/slow:1.0", name="slow-b")

    assert (await catalog.post(url, first.to_data())).status_code == 200
    assert (await catalog.post(url, second.to_data())).status_code == 200

    await watch.wait(first.ref_id, COMPLETED)
    await watch.wait(second.ref_id, COMPLETED)

    async def both_ended() -> list[str]:
        lines = turns.read_text().splitlines()
        return lines if len(lines) == 4 else []

    assert await until(both_ended, "both runs to end") == [
        "start slow-a",
        "end slow-a",
        "start slow-b",
        "end slow-b",
    ]


async def test_an_unknown_message_type_is_refused(
    serve: Serve, catalog: Catalog
) -> None:
    url = serve("catalog")
    command = await catalog.command(EXAMPLE)

    response = await catalog.post(
        url, command.to_data(), ce_type="io.noetl.command.UnregisterPluginImage"
    )

    assert response.status_code == 400
    plugins = await catalog.plugins()
    assert await records.get_plugin(plugins, command.plugin_name) is None


async def test_a_command_missing_fields_is_refused(
    serve: Serve, catalog: Catalog
) -> None:
    url = serve("catalog")
    command = await catalog.command(EXAMPLE)
    data = command.to_data()
    del data["imageUrl"]

    response = await catalog.post(url, data)

    assert response.status_code == 400
    assert (await catalog.record(command.ref_id)).state == records.RECEIVED


async def test_a_command_with_a_bad_ref_id_is_refused(
    serve: Serve, catalog: Catalog
) -> None:
    url = serve("catalog")
    command = await catalog.command(EXAMPLE)

    response = await catalog.post(url, {**command.to_data(), "refId": "42"})

    assert response.status_code == 400
