"""The catalog served over real HTTP with the kubernetes backend: commands
create Jobs in the stub API server, and ApiServerSource Job events and
timers that fired end registrations. NATS is real; no dispatcher runs, so
these tests read the facts the catalog publishes, and decide by hand."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent
from kubestub import KubeStub
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from support import eventually, messages, post_event

from functions.catalog import jobs
from functions.catalog.jobs import jobspec
from noetl import binding, records, topology
from noetl.models import (
    CheckRegistration,
    RegisterPluginImage,
    SchemaRegistrationFailed,
)
from noetl.settings import Settings

Serve = Callable[..., str]
NAMESPACE = "plugins"
IMAGE = "registry.example/team/example-plugin:1.0"
PLUGIN = "example-plugin-1.0"
FAILED = SchemaRegistrationFailed.ce_type()
UPDATE = "dev.knative.apiserver.resource.update"


class Published:
    """Every 4.1 message published, duplicates JetStream drops included."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.seen: list[Msg] = []

    async def settle(self) -> None:
        """Once this returns, what the server sent us before is here: the
        catalog publishes before it answers, so nothing is still coming."""
        await self.nc.flush()

    async def receive(self, msg: Msg) -> None:
        self.seen.append(msg)

    def failed(self, ref_id: str) -> list[dict[str, Any]]:
        return [
            json.loads(msg.data)
            for msg in self.seen
            if (msg.headers or {}).get("ce-type") == FAILED
            and json.loads(msg.data)["refId"] == ref_id
        ]


@pytest.fixture
async def published(nc: Client) -> AsyncIterator[Published]:
    seen = Published(nc)
    subscription = await nc.subscribe(topology.SUBJECT_SCHEMA, cb=seen.receive)
    await nc.flush()
    try:
        yield seen
    finally:
        await subscription.unsubscribe()


@pytest.fixture
def catalog(serve: Serve, kube: KubeStub, tmp_path: Path) -> str:
    """The catalog, its kubernetes backend pointed at the stub."""
    return serve(
        "catalog",
        NOETL_JOB_BACKEND="kubernetes",
        KUBECONFIG=str(kube.kubeconfig(tmp_path, NAMESPACE)),
        KUBERNETES_SERVICE_HOST="",
        NOETL_REPORT_GRACE_SECONDS="1",
        NOETL_K8S_REQUEST_TIMEOUT_SECONDS="0.5",
        NOETL_K8S_CREATE_ATTEMPTS="3",
        NOETL_K8S_CREATE_BACKOFF_SECONDS="0.05",
    )


async def _registrations(js: JetStreamContext) -> KeyValue:
    return await js.key_value(topology.REGISTRATIONS)


async def _recorded(js: JetStreamContext, state: str = records.REGISTERING) -> str:
    """A new registration's refId, its record in ``state``."""
    ref_id = str(uuid.uuid4())
    record = records.Registration(
        ref_id=ref_id,
        plugin_name=PLUGIN,
        image_url=IMAGE,
        request_source={"gateway": "API"},
        state=state,
    )
    await records.create(await _registrations(js), record)
    return ref_id


async def _state(js: JetStreamContext, ref_id: str) -> records.Registration:
    record = await records.get(await _registrations(js), ref_id)
    assert record is not None
    return record


def _command(ref_id: str) -> CloudEvent:
    command = RegisterPluginImage(
        ref_id=ref_id,
        plugin_name=PLUGIN,
        image_url=IMAGE,
        request_source={"gateway": "API"},
    )
    return CloudEvent(
        {
            "id": command.message_id(),
            "type": command.ce_type(),
            "source": "/noetl/dispatcher",
        },
        command.to_data(),
    )


def _job(ref_id: str) -> dict[str, Any]:
    run = jobs.Run.of(ref_id, PLUGIN, IMAGE, "nats://nats:4222")
    return jobspec.job_for(run, Settings(), NAMESPACE)


def _job_event(job: dict[str, Any], ce_type: str = UPDATE) -> CloudEvent:
    """What an ApiServerSource sends: a new random id every time."""
    name = job["metadata"]["name"]
    return CloudEvent(
        {
            "id": str(uuid.uuid4()),
            "type": ce_type,
            "source": "https://10.96.0.1:443",
            "subject": f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{name}",
        },
        job,
    )


def _ended(job: dict[str, Any], kind: str, reason: str, message: str) -> None:
    job["status"] = {
        "conditions": [
            {"type": kind, "status": "True", "reason": reason, "message": message}
        ]
    }


async def _stored_failed(js: JetStreamContext, ref_id: str) -> list[Any]:
    return [
        m
        for m in await messages(js, topology.EVENTS)
        if m.headers
        and m.headers.get("ce-type") == FAILED
        and json.loads(m.data)["refId"] == ref_id
    ]


# Starting runs.


async def test_a_command_creates_the_job_and_only_then_registers(
    catalog: str, kube: KubeStub, js: JetStreamContext
) -> None:
    ref_id = await _recorded(js, records.RECEIVED)

    response = await post_event(catalog, _command(ref_id))

    assert response.status_code == 200
    job = kube.job(NAMESPACE, jobspec.job_name(ref_id))
    assert job is not None
    assert job["metadata"]["labels"]["noetl.io/ref-id"] == ref_id
    assert (await _state(js, ref_id)).state == records.REGISTERING


async def test_a_redelivered_command_meets_409_and_leaves_one_job(
    catalog: str, kube: KubeStub, js: JetStreamContext, published: Published
) -> None:
    ref_id = await _recorded(js, records.RECEIVED)

    answers = [await post_event(catalog, _command(ref_id)) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len(kube.jobs()) == 1
    assert kube.count("POST") == 3
    history = [h["state"] for h in (await _state(js, ref_id)).history]
    assert history == ["received", "registering"]
    assert published.failed(ref_id) == []


@pytest.mark.parametrize(
    ("fault", "complaint", "posts"),
    [
        ({"status": 403}, "the API answered 403 Forbidden", 1),
        ({"status": 500, "times": 5}, "500 Internal Server Error", 3),
    ],
)
async def test_an_api_that_refuses_or_fails_fails_the_registration(
    catalog: str,
    kube: KubeStub,
    js: JetStreamContext,
    published: Published,
    fault: dict[str, int],
    complaint: str,
    posts: int,
) -> None:
    kube.fail(**fault)
    ref_id = await _recorded(js, records.RECEIVED)

    assert (await post_event(catalog, _command(ref_id))).status_code == 200

    [failure] = await eventually(lambda: _stored_failed(js, ref_id))
    error = json.loads(failure.data)["error"]
    assert error.startswith(f"cannot create Job {NAMESPACE}/noetl-reg-{ref_id}")
    assert complaint in error
    assert kube.count("POST") == posts
    # Never started, so never registering: the outcome comes from received.
    assert (await _state(js, ref_id)).state == records.RECEIVED


async def test_an_api_that_does_not_answer_fails_the_registration(
    catalog: str, kube: KubeStub, js: JetStreamContext
) -> None:
    kube.delay(5.0, times=5)
    ref_id = await _recorded(js, records.RECEIVED)

    assert (await post_event(catalog, _command(ref_id))).status_code == 200

    [failure] = await eventually(lambda: _stored_failed(js, ref_id))
    error = json.loads(failure.data)["error"]
    assert "no answer from the API at" in error
    assert error.endswith("within 0.5 s; gave up after 3 attempts")


# How Jobs end.


@pytest.mark.parametrize(
    ("reason", "message", "says"),
    [
        (
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            "failed more often than its backoffLimit (1) allows",
        ),
        (
            "PodFailurePolicy",
            "Container plugin for pod plugins/x failed with exit code 3 matching "
            "FailJob rule at index 1",
            "the plugin exited non-zero in Job plugins/noetl-reg-",
        ),
        (
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            "did not finish within its activeDeadlineSeconds (300 s) and was "
            "stopped; an image that cannot be pulled shows this way too, so check "
            f"that {IMAGE} exists",
        ),
    ],
)
async def test_a_failed_job_is_reported_failed_once(
    catalog: str,
    js: JetStreamContext,
    published: Published,
    reason: str,
    message: str,
    says: str,
) -> None:
    ref_id = await _recorded(js)
    job = _job(ref_id)
    _ended(job, "Failed", reason, message)

    answers = [await post_event(catalog, _job_event(job)) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    # Each send published, and JetStream kept one: the message id is the step's.
    [stored] = await _stored_failed(js, ref_id)
    assert stored.headers["Nats-Msg-Id"] == f"{ref_id}:4.1:failed"
    event = SchemaRegistrationFailed.from_data(json.loads(stored.data))
    assert (event.plugin_name, event.image_url) == (PLUGIN, IMAGE)
    assert says in event.error
    assert event.error.endswith(f"({reason}: {message})")

    # Once the dispatcher decided, a repeat publishes nothing at all.
    await records.advance(await _registrations(js), ref_id, records.FAILED)
    await published.settle()
    before = len(published.failed(ref_id))
    assert (await post_event(catalog, _job_event(job))).status_code == 200
    await published.settle()
    assert len(published.failed(ref_id)) == before


async def test_a_completed_job_is_checked_after_the_grace_period(
    catalog: str, js: JetStreamContext, published: Published
) -> None:
    ref_id = await _recorded(js)
    job = _job(ref_id)
    _ended(job, "Complete", "CompletionsReached", "Reached expected completions")

    assert (await post_event(catalog, _job_event(job))).status_code == 200
    assert published.failed(ref_id) == []  # not yet: the report may come

    async def fired() -> list[Any]:
        return [
            m
            for m in await messages(js, topology.COMMANDS)
            if m.subject == topology.SUBJECT_CHECK
            and json.loads(m.data)["refId"] == ref_id
        ]

    [timer] = await eventually(fired, within=30)
    check = binding.from_binary(timer.headers, timer.data)
    assert check["type"] == CheckRegistration.ce_type()
    assert check.get_data()["reason"] == "grace"

    # What the catalog's source does with it.
    assert (await post_event(catalog, check)).status_code == 200
    [stored] = await eventually(lambda: _stored_failed(js, ref_id))
    assert json.loads(stored.data)["error"] == (
        "plugin exited 0 but reported no schema within 1 s"
    )


async def test_a_check_finds_a_decided_registration_and_does_nothing(
    catalog: str, js: JetStreamContext, published: Published
) -> None:
    ref_id = await _recorded(js, records.SUCCESS)
    check = CheckRegistration(
        ref_id=ref_id,
        plugin_name=PLUGIN,
        image_url=IMAGE,
        reason="grace",
        error="plugin exited 0 but reported no schema within 1 s",
    )
    event = CloudEvent(
        {"id": check.message_id(), "type": check.ce_type(), "source": "/noetl/x"},
        check.to_data(),
    )

    assert (await post_event(catalog, event)).status_code == 200
    assert (await post_event(catalog, _job_event(_completed(ref_id)))).is_success

    await published.settle()
    assert published.failed(ref_id) == []
    assert not [
        m
        for m in await messages(js, topology.COMMANDS)
        if m.subject.startswith(topology.TIMER_PREFIX + ref_id)
    ]


def _completed(ref_id: str) -> dict[str, Any]:
    job = _job(ref_id)
    _ended(job, "Complete", "CompletionsReached", "")
    return job


@pytest.mark.parametrize(
    "ce_type",
    [UPDATE, "dev.knative.apiserver.resource.add"],
)
async def test_jobs_not_ours_or_unknown_are_acknowledged_and_ignored(
    catalog: str, js: JetStreamContext, published: Published, ce_type: str
) -> None:
    stranger = {
        "metadata": {"name": "backup", "namespace": NAMESPACE, "labels": {"a": "b"}},
        "status": {"conditions": [{"type": "Failed", "status": "True"}]},
    }
    unknown = _job(str(uuid.uuid4()))  # ours, but no registration has its refId
    _ended(unknown, "Failed", "BackoffLimitExceeded", "")
    running = _job(await _recorded(js))
    deleted = _job(await _recorded(js))
    _ended(deleted, "Failed", "BackoffLimitExceeded", "")

    answers = [
        await post_event(catalog, _job_event(stranger, ce_type)),
        await post_event(catalog, _job_event(unknown, ce_type)),
        await post_event(catalog, _job_event(running, ce_type)),
        await post_event(
            catalog, _job_event(deleted, "dev.knative.apiserver.resource.delete")
        ),
    ]

    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    await published.settle()
    assert published.seen == []


async def test_a_job_event_without_a_job_is_refused(catalog: str) -> None:
    event = CloudEvent(
        {"id": "x", "type": UPDATE, "source": "https://10.96.0.1:443"}, ["not", "a"]
    )
    response = await post_event(catalog, event)
    assert response.status_code == 400
    assert "must be the Job" in response.text
