"""The whole flow with the kubernetes backend, every part a real process.

A real nats-server; the dispatcher, catalog and notifier served over HTTP;
the three JetStream sources wired as ``noetl dev`` wires them (the catalog's
also with ``catalog.plugin.check``, where timers fire); the ApiServerSource
stand-in watching the stub API server and feeding the catalog; and the
requester's callback endpoint, an aiohttp server in this test. A test asks
for a registration with the 1.2 event, as the API would, then plays the
cluster: it ends the Job in the stub, or makes the API fail.

The stack is started once for the module; each test has its own refId.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
import support
from aiohttp import web
from kubestub import KubeStub
from nats.aio.client import Client
from nats.js import JetStreamContext
from support import messages, serving

from functions.catalog.jobs import jobspec
from noetl import localrun, records, topology
from noetl import messages as publishing
from noetl.models import (
    RegistrationRequested,
    SchemaRegistrationCompleted,
    SchemaRegistrationFailed,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

WAIT = 90.0  # seconds: generous, for a slow machine
NAMESPACE = "plugins"
IMAGE = "registry.example/team/example-plugin:1.0"
PLUGIN = "example-plugin-1.0"
GRACE = 1
FAILED = SchemaRegistrationFailed.ce_type()
ROUTES = (
    ("dispatcher", topology.EVENTS, (topology.SUBJECT_API, topology.SUBJECT_SCHEMA)),
    ("catalog", topology.COMMANDS, (topology.SUBJECT_REGISTER, topology.SUBJECT_CHECK)),
    ("notifier", topology.COMMANDS, (topology.SUBJECT_NOTIFY,)),
)


@dataclass(frozen=True)
class Callback:
    key: str
    body: dict[str, Any]


@dataclass
class Requester:
    """The callbackApi: records every call, answers 200."""

    url: str = ""
    calls: list[Callback] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append(
            Callback(request.headers.get("Idempotency-Key", ""), await request.json())
        )
        return web.Response(status=200)

    def of(self, ref_id: str) -> list[Callback]:
        return [c for c in self.calls if c.body.get("refId") == ref_id]


@dataclass
class Stack:
    js: JetStreamContext
    kube: KubeStub
    requester: Requester
    parts: dict[str, localrun.Process]

    def logged(self, part: str, ref_id: str, text: str) -> bool:
        return any(
            ref_id in line and text in line for line in list(self.parts[part].lines)
        )


until = functools.partial(support.until, within=WAIT)


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeStub]:
    with KubeStub() as stub:
        yield stub


@pytest.fixture(scope="module")
async def requester() -> AsyncIterator[Requester]:
    recorder = Requester()
    async with serving(recorder.handle, "/callback") as url:
        recorder.url = url
        yield recorder


@pytest.fixture(scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, kube: KubeStub, requester: Requester
) -> AsyncIterator[Stack]:
    home = tmp_path_factory.mktemp("kubernetes-flow")
    nats_port = localrun.free_port()
    server = localrun.start_nats(nats_port, home / "jetstream")
    nats_url = f"nats://127.0.0.1:{nats_port}"
    nc: Client | None = None
    parts: dict[str, localrun.Process] = {}
    try:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await topology.provision(js)
        parts = await asyncio.to_thread(_start_parts, nats_url, kube, home)
        yield Stack(js, kube, requester, parts)
    finally:
        for name, proc in reversed(parts.items()):
            await asyncio.to_thread(proc.stop)
            print(f"--- {name}", *proc.lines[-200:], sep="\n")
        if nc is not None:
            await nc.close()
        server.stop()


def _start_parts(
    nats_url: str, kube: KubeStub, home: Path
) -> dict[str, localrun.Process]:
    """Every part, started together and then waited for."""
    common = {
        "NATS_URL": nats_url,
        "KUBERNETES_SERVICE_HOST": "",  # this is no pod, whatever runs us
        "KUBECONFIG": str(kube.kubeconfig(home, NAMESPACE)),
        "PYTHONUNBUFFERED": "1",
    }
    catalog_env = {
        "NOETL_JOB_BACKEND": "kubernetes",
        "NOETL_REPORT_GRACE_SECONDS": str(GRACE),
        "NOETL_K8S_REQUEST_TIMEOUT_SECONDS": "2",
        "NOETL_K8S_CREATE_ATTEMPTS": "3",
        "NOETL_K8S_CREATE_BACKOFF_SECONDS": "0.1",
    }
    ports = {name: localrun.free_port() for name, _, _ in ROUTES}
    parts: dict[str, localrun.Process] = {}
    started: list[tuple[localrun.Process, int | None, str | None]] = []

    def start(
        name: str, command: list[str], env: dict[str, str], port: int | None = None
    ) -> None:
        proc = localrun.Process(command, env={**common, **env}, cwd=localrun.ROOT)
        parts[name] = proc
        started.append((proc, port, None if port else '"message": "consuming"'))

    try:
        for name, port in ports.items():
            env = catalog_env if name == "catalog" else {}
            start(name, localrun.function_command(name, port), env, port)
        for proc, port, _ in started:
            assert port is not None
            proc.wait_for_port(port, timeout=WAIT)
        started.clear()

        for name, stream, subjects in ROUTES:
            start(
                f"{name}-source",
                [sys.executable, "-m", "sources.jetstream"],
                {
                    "K_SINK": f"http://127.0.0.1:{ports[name]}/",
                    "NOETL_SOURCE_STREAM": stream,
                    "NOETL_SOURCE_SUBJECTS": ",".join(subjects),
                    "NOETL_SOURCE_DURABLE": name,
                    "NOETL_SOURCE_BACKOFF_SECONDS": "0.2",
                    "NOETL_SOURCE_BACKOFF_MAX_SECONDS": "1",
                },
            )
        start(
            "apiserver-source",
            [sys.executable, "-m", "sources.apiserver"],
            {"K_SINK": f"http://127.0.0.1:{ports['catalog']}/"},
        )
        for proc, _, line in started:
            assert line is not None
            proc.wait_for_line(line, timeout=WAIT)
    except BaseException:
        for proc in parts.values():
            proc.stop()
            print(f"--- {proc.command}", *proc.lines[-100:], sep="\n")
        raise
    return parts


@pytest.fixture(autouse=True)
def _no_faults(kube: KubeStub) -> Iterator[None]:
    kube.clear_faults()
    yield
    kube.clear_faults()


async def _register(stack: Stack) -> str:
    """Ask for a registration as the API does: the 1.2 event, with a callback."""
    ref_id = str(uuid.uuid4())
    requested = RegistrationRequested(
        ref_id=ref_id,
        plugin_name=PLUGIN,
        image_url=IMAGE,
        request_source={"gateway": "API"},
        callback_api=stack.requester.url,
    )
    await publishing.publish(stack.js, topology.SUBJECT_API, requested, "api")
    return ref_id


async def _job(stack: Stack, ref_id: str) -> str:
    """The name of the registration's Job, once the catalog created it."""
    name = jobspec.job_name(ref_id)
    await until(lambda: stack.kube.job(NAMESPACE, name), f"Job {name}")
    return name


async def _record(stack: Stack, ref_id: str) -> records.Registration:
    kv = await stack.js.key_value(topology.REGISTRATIONS)
    record = await records.get(kv, ref_id)
    assert record is not None
    return record


async def _in_state(stack: Stack, ref_id: str, state: str) -> bool:
    return (await _record(stack, ref_id)).state == state


async def _stored_failed(stack: Stack, ref_id: str) -> list[dict[str, Any]]:
    return [
        json.loads(m.data)
        for m in await messages(stack.js, topology.EVENTS)
        if m.headers
        and m.headers.get("ce-type") == FAILED
        and json.loads(m.data)["refId"] == ref_id
    ]


async def _one_failed_callback(stack: Stack, ref_id: str) -> records.Registration:
    """The registration ended failed: one Failed event, one failed callback."""
    [call] = await until(lambda: stack.requester.of(ref_id), "the callback")
    assert call.key == f"{ref_id}:failed"
    assert call.body["state"] == "failed"
    assert len(await _stored_failed(stack, ref_id)) == 1
    record = await until(
        lambda: _delivered(stack, ref_id), "the callback noted in the record"
    )
    assert record.state == records.FAILED
    return record


async def _delivered(stack: Stack, ref_id: str) -> records.Registration | None:
    record = await _record(stack, ref_id)
    return record if record.callback and record.callback.get("done") else None


@pytest.mark.parametrize(
    ("reason", "message", "says"),
    [
        (
            "PodFailurePolicy",
            "Container plugin for pod plugins/x failed with exit code 1 matching "
            "FailJob rule at index 1",
            "the plugin exited non-zero in Job plugins/noetl-reg-",
        ),
        (
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            "an image that cannot be pulled shows this way too",
        ),
    ],
)
async def test_a_failed_job_ends_in_one_failed_callback(
    stack: Stack, reason: str, message: str, says: str
) -> None:
    ref_id = await _register(stack)
    name = await _job(stack, ref_id)
    # The catalog notes the registration as registering once the Job exists.
    await until(lambda: _in_state(stack, ref_id, records.REGISTERING), "registering")

    stack.kube.failed(NAMESPACE, name, reason, message)

    record = await _one_failed_callback(stack, ref_id)
    assert record.error is not None and says in record.error
    assert record.error.endswith(f"({reason}: {message})")

    # The Job changes again; ApiServerSource sends again, with a new id.
    stack.kube.label(NAMESPACE, name, {"example.com/seen": "yes"})
    await until(
        lambda: stack.logged("catalog", ref_id, "ignored: registration already failed"),
        "the repeat to be ignored",
    )
    assert len(stack.requester.of(ref_id)) == 1
    assert len(await _stored_failed(stack, ref_id)) == 1


async def test_a_completed_job_without_a_report_fails_after_the_grace(
    stack: Stack,
) -> None:
    ref_id = await _register(stack)
    name = await _job(stack, ref_id)

    stack.kube.complete(NAMESPACE, name)

    record = await _one_failed_callback(stack, ref_id)
    assert record.error == f"plugin exited 0 but reported no schema within {GRACE} s"


async def test_a_report_and_a_completed_job_end_in_success(stack: Stack) -> None:
    ref_id = await _register(stack)
    name = await _job(stack, ref_id)

    # The plugin reports, then its pod exits 0 and the Job completes.
    report = SchemaRegistrationCompleted(
        ref_id=ref_id, plugin_name=PLUGIN, schema={"type": "object"}
    )
    await publishing.publish(
        stack.js, topology.SUBJECT_SCHEMA, report, f"plugin/{PLUGIN}"
    )
    stack.kube.complete(NAMESPACE, name)

    [call] = await until(lambda: stack.requester.of(ref_id), "the callback")
    assert (call.key, call.body["state"]) == (f"{ref_id}:success", "success")
    # Whether the Job event or the grace check came after the report was
    # decided, the catalog found the registration decided and did nothing.
    await until(
        lambda: stack.logged("catalog", ref_id, "already success"),
        "the catalog to see the registration decided",
    )
    assert await _stored_failed(stack, ref_id) == []
    assert (await _record(stack, ref_id)).schema == {"type": "object"}
    assert len(stack.requester.of(ref_id)) == 1


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ({"status": 403}, "the API answered 403 Forbidden"),
        ({"status": 500, "times": 5}, "500 Internal Server Error"),
        ({"delay": 10.0, "times": 5}, "no answer from the API at"),
    ],
    ids=["403", "500", "timeout"],
)
async def test_an_api_that_cannot_create_the_job_ends_in_failed(
    stack: Stack, fault: dict[str, Any], says: str
) -> None:
    if "delay" in fault:
        stack.kube.delay(fault["delay"], times=fault["times"])
    else:
        stack.kube.fail(**fault)

    ref_id = await _register(stack)

    record = await _one_failed_callback(stack, ref_id)
    assert record.error is not None and says in record.error
    assert record.error.startswith(f"cannot create Job {NAMESPACE}/noetl-reg-")
    if fault.get("status") != 403:
        assert record.error.endswith("gave up after 3 attempts")
    assert [h["state"] for h in record.history] == ["received", "failed"]
    assert stack.kube.job(NAMESPACE, jobspec.job_name(ref_id)) is None
