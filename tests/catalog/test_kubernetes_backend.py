"""The kubernetes job backend in this process, its real client talking HTTP
to the stub API server: what it creates, and how it meets the API failing."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import kubernetes_validate
import pytest
from kubestub import KubeStub

from functions.catalog import jobs
from functions.catalog.jobs import jobspec
from functions.catalog.jobs.kubernetes import KubernetesRunner
from noetl.settings import Settings


class Ended:
    """Facts that must not be told anything: this backend learns of a Job's
    end from events, not by following it."""

    async def failed(self, run: jobs.Run, reason: str) -> None:
        raise AssertionError(f"told failed: {reason}")

    async def finished(self, run: jobs.Run) -> None:
        raise AssertionError("told finished")


@pytest.fixture(autouse=True)
def _pointed_at_the_stub(
    monkeypatch: pytest.MonkeyPatch, kube: KubeStub, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith(("NOETL_", "KUBERNETES_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path, "plugins")))


def _runner(**config: object) -> KubernetesRunner:
    quick = {"k8s_request_timeout": 0.5, "k8s_create_backoff": 0.01, **config}
    settings = Settings(job_backend="kubernetes", **quick)  # type: ignore[arg-type]
    runner = jobs.create(settings, Ended())
    assert isinstance(runner, KubernetesRunner)
    return runner


def _run() -> jobs.Run:
    return jobs.Run.of(
        ref_id=str(uuid.uuid4()),
        plugin_name="example-plugin-1.0",
        image_url="registry.example/team/example-plugin:1.0",
        nats_url="nats://nats.plugins:4222",
    )


async def test_the_job_posted_is_the_job_built_and_valid(kube: KubeStub) -> None:
    runner, run = _runner(), _run()

    started = await runner.start(run)

    name = jobspec.job_name(run.ref_id)
    assert started == f"created Job plugins/{name}"
    [posted] = kube.created
    # What arrived over HTTP, after the client's own serialization.
    assert posted == jobspec.job_for(run, runner.config, "plugins")
    kubernetes_validate.validate(posted, kubernetes_validate.latest_version(), True)
    [(method, path)] = kube.requests
    assert method == "POST"
    assert path == "/apis/batch/v1/namespaces/plugins/jobs?fieldValidation=Strict"


async def test_the_namespace_setting_wins_over_the_context(kube: KubeStub) -> None:
    run = _run()
    await _runner(k8s_namespace="elsewhere").start(run)
    assert kube.job("elsewhere", jobspec.job_name(run.ref_id)) is not None


async def test_a_context_without_a_namespace_means_default(
    kube: KubeStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = kube.kubeconfig(tmp_path, namespace="")
    monkeypatch.setenv("KUBECONFIG", str(path))
    run = _run()
    await _runner().start(run)
    assert kube.job("default", jobspec.job_name(run.ref_id)) is not None


async def test_a_redelivered_run_meets_409_and_counts_as_started(
    kube: KubeStub,
) -> None:
    runner, run = _runner(), _run()

    first = await runner.start(run)
    again = await asyncio.gather(runner.start(run), runner.start(run))

    assert first.startswith("created")
    assert all(text.endswith("exists already") for text in again)
    assert len(kube.jobs()) == 1 and len(kube.created) == 1
    assert kube.count("POST") == 3


async def test_a_403_fails_at_once_with_what_to_do(kube: KubeStub) -> None:
    kube.fail(
        403,
        message='jobs.batch is forbidden: User "system:serviceaccount:noetl:catalog"'
        ' cannot create resource "jobs" in API group "batch"',
    )

    with pytest.raises(jobs.RunNotStarted) as caught:
        await _runner().start(_run())

    reason = str(caught.value)
    assert reason.startswith("cannot create Job plugins/noetl-reg-")
    assert "the API answered 403 Forbidden: jobs.batch is forbidden" in reason
    assert "may not create Jobs in namespace plugins" in reason
    assert kube.count("POST") == 1  # a refusal is not retried
    assert kube.jobs() == []


async def test_an_invalid_job_fails_at_once(kube: KubeStub) -> None:
    kube.fail(422, message="Job.batch is invalid: spec.template.spec: bad")

    with pytest.raises(jobs.RunNotStarted, match="check the NOETL_K8S_"):
        await _runner().start(_run())
    assert kube.count("POST") == 1


async def test_500s_are_retried_a_bounded_number_of_times(kube: KubeStub) -> None:
    kube.fail(500, times=10, message="etcdserver: request timed out")

    with pytest.raises(jobs.RunNotStarted) as caught:
        await _runner(k8s_create_attempts=3).start(_run())

    assert str(caught.value).endswith(
        "the API answered 500 Internal Server Error: etcdserver: request timed out;"
        " gave up after 3 attempts"
    )
    assert kube.count("POST") == 3


async def test_a_500_then_success_creates_the_job(kube: KubeStub) -> None:
    kube.fail(503, times=2)
    run = _run()

    assert (await _runner(k8s_create_attempts=3).start(run)).startswith("created")
    assert kube.count("POST") == 3
    assert kube.job("plugins", jobspec.job_name(run.ref_id)) is not None


async def test_an_api_that_does_not_answer_in_time_fails_after_retries(
    kube: KubeStub,
) -> None:
    kube.delay(5.0, times=10)

    with pytest.raises(jobs.RunNotStarted) as caught:
        await _runner(k8s_create_attempts=2).start(_run())

    assert "no answer from the API at http://127.0.0.1:" in str(caught.value)
    assert "within 0.5 s; gave up after 2 attempts" in str(caught.value)
    assert kube.count("POST") == 2
    assert kube.jobs() == []


async def test_an_api_that_is_gone_fails_after_retries(kube: KubeStub) -> None:
    runner = _runner(k8s_create_attempts=2)
    await runner.start(_run())  # connected
    kube.stop()

    with pytest.raises(jobs.RunNotStarted, match="cannot reach the API at http"):
        await runner.start(_run())


async def test_without_a_cluster_configuration_runs_fail_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(missing))

    with pytest.raises(jobs.RunNotStarted) as caught:
        await _runner().start(_run())

    assert str(caught.value).startswith("no Kubernetes cluster to run on: cannot use")
    assert str(missing) in str(caught.value)


def test_in_a_pod_the_service_account_and_its_namespace_are_used(
    tmp_path: Path,
) -> None:
    from functions.catalog.jobs import cluster

    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-token")
    (account / "ca.crt").write_text("not checked until a request is made")
    (account / "namespace").write_text("noetl\n")
    pod = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}

    found = cluster.connect(environ=pod, service_account=account)

    assert found.host == "https://10.96.0.1:443"
    assert found.namespace == "noetl"
    assert found.origin.startswith("the pod's service account")
    assert "pod-token" in str(found.api.configuration.api_key)
    assert cluster.connect("other", pod, account).namespace == "other"
