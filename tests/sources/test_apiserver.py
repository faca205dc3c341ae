"""The ApiServerSource stand-in end to end: the stub API server, the real
program started as ``python -m sources.apiserver``, and a real HTTP sink.

Nothing is timed: each test waits for a condition with a generous deadline.
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import support
from aiohttp import web
from kubestub import KubeStub
from support import serving

from functions.catalog import jobs
from functions.catalog.jobs import jobspec
from noetl import localrun
from noetl.settings import Settings

WAIT = 60.0  # seconds: generous, for a slow machine
NAMESPACE = "noetl-test"
CONSUMING = '"message": "consuming"'


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def type(self) -> str:
        return self.headers["ce-type"].rsplit(".", 1)[-1]

    @property
    def job(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def name(self) -> str:
        return str(self.job["metadata"]["name"])


class Sink:
    def __init__(self) -> None:
        self.url = ""
        self.received: list[Received] = []

    async def handle(self, request: web.Request) -> web.Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.received.append(Received(headers, await request.read()))
        return web.Response(status=202)

    def of(self, name: str) -> list[str]:
        """The event types received for Job ``name``, in order."""
        return [r.type for r in self.received if r.name == name]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    recorder = Sink()
    async with serving(recorder.handle, "/") as url:
        recorder.url = url
        yield recorder


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    with KubeStub() as stub:
        yield stub


Start = Callable[..., Awaitable[localrun.Process]]


@pytest.fixture
async def start(kube: KubeStub, sink: Sink, tmp_path: Path) -> AsyncIterator[Start]:
    """Start the stand-in against the stub; waits for its "consuming" line."""
    started: list[localrun.Process] = []

    async def run(wait: bool = True, **env: str) -> localrun.Process:
        proc = localrun.Process(
            [sys.executable, "-m", "sources.apiserver"],
            env={
                "K_SINK": sink.url,
                "KUBECONFIG": str(kube.kubeconfig(tmp_path, NAMESPACE)),
                "KUBERNETES_SERVICE_HOST": "",  # this is no pod, whatever runs us
                "NOETL_LOG_LEVEL": "DEBUG",
                **env,
            },
            cwd=localrun.ROOT,
        )
        started.append(proc)
        if wait:
            await asyncio.to_thread(proc.wait_for_line, CONSUMING, WAIT)
        return proc

    try:
        yield run
    finally:
        for proc in started:
            await asyncio.to_thread(proc.stop)
            print(f"--- {proc.command}", *proc.lines, sep="\n")


until = functools.partial(support.until, within=WAIT)


def registration_job(plugin: str = "example-plugin-1.0") -> dict[str, Any]:
    run = jobs.Run.of(
        ref_id=str(uuid.uuid4()),
        plugin_name=plugin,
        image_url=f"localhost/noetl/{plugin}",
        nats_url="nats://nats:4222",
    )
    return jobspec.job_for(run, Settings(), NAMESPACE)


async def test_job_changes_arrive_as_apiserversource_cloud_events(
    kube: KubeStub, sink: Sink, start: Start
) -> None:
    before = kube.create(NAMESPACE, registration_job())["metadata"]["name"]
    await start()
    await until(lambda: sink.of(before) == ["add"], "the Job that was there first")

    name = kube.create(NAMESPACE, registration_job())["metadata"]["name"]
    kube.complete(NAMESPACE, name)
    kube.delete(NAMESPACE, name)
    await until(lambda: sink.of(name) == ["add", "update", "delete"], "3 events")

    update = [r for r in sink.received if r.name == name][1]
    assert update.headers["ce-specversion"] == "1.0"
    assert update.headers["ce-type"] == "dev.knative.apiserver.resource.update"
    assert update.headers["ce-source"] == kube.url
    assert (
        update.headers["ce-subject"]
        == f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{name}"
    )
    assert update.headers["content-type"] == "application/json"
    assert (update.job["apiVersion"], update.job["kind"]) == ("batch/v1", "Job")
    conditions = update.job["status"]["conditions"]
    assert {c["type"] for c in conditions} == {"SuccessCriteriaMet", "Complete"}
    labels = update.job["metadata"]["labels"]
    assert labels[jobspec.LABEL_MANAGED_BY] == "noetl"
    # Every send has an id of its own, as ApiServerSource gives them.
    ids = [r.headers["ce-id"] for r in sink.received]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i) for i in ids)


async def test_jobs_without_our_labels_are_not_sent(
    kube: KubeStub, sink: Sink, start: Start
) -> None:
    await start()
    stranger = {"metadata": {"name": "someone-elses", "labels": {"app": "x"}}}
    kube.create(NAMESPACE, stranger)
    ours = kube.create(NAMESPACE, registration_job())["metadata"]["name"]
    elsewhere = registration_job()
    elsewhere["metadata"]["namespace"] = "other"
    kube.create("other", elsewhere)

    await until(lambda: sink.of(ours) == ["add"], "our Job")
    # Changes arrive in order: had the others been sent, they came first.
    assert [r.name for r in sink.received] == [ours]
    list_and_watch = [p for m, p in kube.requests if m == "GET"]
    assert all("managed-by%3Dnoetl" in path for path in list_and_watch)


async def test_a_watch_that_ends_is_opened_again(
    kube: KubeStub, sink: Sink, start: Start
) -> None:
    await start()
    kube.drop_watches()
    await until(lambda: kube.watches_opened >= 2, "a second watch")

    name = kube.create(NAMESPACE, registration_job())["metadata"]["name"]
    await until(lambda: sink.of(name) == ["add"], "the Job created after")
    # Opened again from the last version seen: no list, no repeats.
    assert kube.count("GET", "watch=true") >= 2
    assert sum(1 for m, p in kube.requests if m == "GET" and "watch" not in p) == 1


async def test_a_forgotten_resource_version_means_listing_again(
    kube: KubeStub, sink: Sink, start: Start
) -> None:
    await start()
    name = kube.create(NAMESPACE, registration_job())["metadata"]["name"]
    await until(lambda: sink.of(name) == ["add"], "the first add")

    kube.expire()  # the version the stand-in holds is now too old: 410
    kube.drop_watches()
    # Listing again tells of every Job, so a change missed is not lost.
    await until(lambda: sink.of(name) == ["add", "add"], "the Job listed again")
    kube.failed(NAMESPACE, name, "BackoffLimitExceeded")
    await until(lambda: sink.of(name) == ["add", "add", "update"], "the update")


async def test_an_api_that_is_away_is_tried_again(
    kube: KubeStub, sink: Sink, start: Start
) -> None:
    kube.fail(500, times=2, method="GET")
    kube.fail(503, times=1, method="GET", path="/jobs")
    proc = await start()

    name = kube.create(NAMESPACE, registration_job())["metadata"]["name"]
    await until(lambda: sink.of(name) == ["add"], "the Job")
    assert any("trying again" in line for line in proc.lines)


async def test_sigterm_stops_it_cleanly(start: Start) -> None:
    proc = await start()

    proc.popen.send_signal(signal.SIGTERM)

    assert await asyncio.to_thread(proc.popen.wait, WAIT) == 0
    assert any('"message": "stopped"' in line for line in proc.lines)


async def test_bad_configuration_is_named_and_exits_2(start: Start) -> None:
    proc = await start(
        wait=False, K_SINK="not a url", NOETL_APISERVER_WATCH_SECONDS="-1"
    )

    assert await asyncio.to_thread(proc.popen.wait, WAIT) == 2
    await until(lambda: any("bad configuration" in x for x in proc.lines), "log")
    line = next(x for x in proc.lines if "bad configuration" in x)
    assert "K_SINK='not a url'" in line
    assert "NOETL_APISERVER_WATCH_SECONDS='-1'" in line


async def test_no_cluster_configuration_exits_1(start: Start, tmp_path: Path) -> None:
    proc = await start(wait=False, KUBECONFIG=str(tmp_path / "missing"))

    assert await asyncio.to_thread(proc.popen.wait, WAIT) == 1
    await until(lambda: any("cannot watch Jobs" in x for x in proc.lines), "log")
