"""The registration Job's body: a pure function, checked against the schema."""

from __future__ import annotations

import os
import re
from typing import Any

import kubernetes_validate
import pytest

from functions.catalog import jobs
from functions.catalog.jobs import jobspec
from noetl.settings import Settings

REF_ID = "8d3c1f1e-0a43-4d6b-9a39-1f1c7d7b2a10"
IMAGE = "registry.example/team/example-plugin:1.0"
#: The oldest Kubernetes the Job is checked against, and the newest known.
VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def _run(ref_id: str = REF_ID, plugin: str = "example-plugin-1.0") -> jobs.Run:
    return jobs.Run.of(
        ref_id=ref_id,
        plugin_name=plugin,
        image_url=IMAGE,
        nats_url="nats://nats.plugins:4222",
    )


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def _container(job: dict[str, Any]) -> dict[str, Any]:
    [container] = _pod(job)["containers"]
    return dict(container)


def _validate(job: dict[str, Any]) -> None:
    for version in VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)


@pytest.fixture(autouse=True)
def _defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test states the settings it differs in."""
    for name in list(os.environ):
        if name.startswith("NOETL_"):
            monkeypatch.delenv(name)


def test_the_name_comes_from_the_ref_id_alone() -> None:
    name = jobspec.job_name(REF_ID)
    assert name == f"noetl-reg-{REF_ID}"
    assert len(name) <= 63 and DNS_1123_LABEL.fullmatch(name)
    assert jobspec.job_name(REF_ID.upper()) == name


def test_an_odd_ref_id_still_gives_a_valid_name() -> None:
    name = jobspec.job_name("Weird_ID." + "x" * 80)
    assert len(name) <= 63 and DNS_1123_LABEL.fullmatch(name)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("example-plugin-1.0", "example-plugin-1.0"),
        ("-odd/name with spaces_", "odd-name-with-spaces"),
        ("a" * 70, "a" * 63),
        ("...", ""),
    ],
)
def test_label_values_are_label_safe(text: str, value: str) -> None:
    assert jobspec.label_value(text) == value
    assert value == "" or LABEL_VALUE.fullmatch(value)


def test_the_job_runs_the_image_as_the_contract_says() -> None:
    job = jobspec.job_for(_run(), Settings(), "noetl")

    _validate(job)
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["metadata"]["name"] == f"noetl-reg-{REF_ID}"
    assert job["metadata"]["namespace"] == "noetl"
    container = _container(job)
    assert container["image"] == IMAGE
    assert container["args"] == ["--registration"]
    assert container["env"] == [
        {"name": "NATS_URL", "value": "nats://nats.plugins:4222"},
        {"name": "PLUGIN_NAME", "value": "example-plugin-1.0"},
        {"name": "REF_ID", "value": REF_ID},
        {"name": "IMAGE_URL", "value": IMAGE},
    ]
    assert "envFrom" not in container
    assert job["metadata"]["annotations"] == {"noetl.io/image-url": IMAGE}


def test_the_job_and_its_pods_are_labelled() -> None:
    job = jobspec.job_for(_run(), Settings(), "noetl")

    expected = {
        "app.kubernetes.io/name": "noetl-plugin",
        "app.kubernetes.io/component": "registration",
        "app.kubernetes.io/part-of": "noetl",
        "app.kubernetes.io/managed-by": "noetl",
        "noetl.io/ref-id": REF_ID,
        "noetl.io/plugin-name": "example-plugin-1.0",
    }
    assert job["metadata"]["labels"] == expected
    assert job["spec"]["template"]["metadata"]["labels"] == expected
    assert jobspec.SELECTOR == "app.kubernetes.io/managed-by=noetl"


def test_the_job_ends_by_itself_and_does_not_retry_a_plugin_that_failed() -> None:
    job = jobspec.job_for(_run(), Settings(), "noetl")

    spec = job["spec"]
    assert spec["backoffLimit"] == 1
    assert spec["activeDeadlineSeconds"] == 300
    assert spec["ttlSecondsAfterFinished"] == 3600
    ignore, fail = spec["podFailurePolicy"]["rules"]
    assert ignore == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert fail == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "plugin", "operator": "NotIn", "values": [0]},
    }
    assert _pod(job)["restartPolicy"] == "Never"


def test_the_pod_meets_the_restricted_profile_with_a_read_only_root() -> None:
    job = jobspec.job_for(_run(), Settings(), "noetl")

    pod = _pod(job)
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    container = _container(job)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    assert "serviceAccountName" not in pod and "imagePullSecrets" not in pod


def test_every_knob_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "NOETL_K8S_SERVICE_ACCOUNT": "plugin-runner",
        "NOETL_K8S_IMAGE_PULL_SECRETS": "registry-a, registry-b",
        "NOETL_K8S_IMAGE_PULL_POLICY": "Always",
        "NOETL_K8S_NATS_SECRET": "plugin-nats",
        "NOETL_K8S_BACKOFF_LIMIT": "0",
        "NOETL_K8S_ACTIVE_DEADLINE_SECONDS": "120",
        "NOETL_K8S_TTL_SECONDS_AFTER_FINISHED": "60",
        "NOETL_K8S_RUN_AS_USER": "0",
        "NOETL_K8S_CPU_REQUEST": "50m",
        "NOETL_K8S_CPU_LIMIT": "1",
        "NOETL_K8S_MEMORY_REQUEST": "32Mi",
        "NOETL_K8S_MEMORY_LIMIT": "128Mi",
        "NOETL_K8S_TMP_SIZE_LIMIT": "16Mi",
    }.items():
        monkeypatch.setenv(name, value)

    job = jobspec.job_for(_run(), Settings(), "plugins")

    _validate(job)
    spec, pod, container = job["spec"], _pod(job), _container(job)
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 120)
    assert spec["ttlSecondsAfterFinished"] == 60
    assert pod["serviceAccountName"] == "plugin-runner"
    assert pod["imagePullSecrets"] == [{"name": "registry-a"}, {"name": "registry-b"}]
    assert container["imagePullPolicy"] == "Always"
    # The credentials come from the Secret; the address stays the one we set.
    assert container["envFrom"] == [{"secretRef": {"name": "plugin-nats"}}]
    assert container["env"][0] == {
        "name": "NATS_URL",
        "value": "nats://nats.plugins:4222",
    }
    # 0: the image's own (non-root) user.
    assert "runAsUser" not in pod["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "32Mi"},
        "limits": {"cpu": "1", "memory": "128Mi"},
    }
    assert pod["volumes"][0]["emptyDir"] == {"sizeLimit": "16Mi"}


def test_the_active_deadline_follows_the_job_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOETL_JOB_TIMEOUT_SECONDS", "90")
    job = jobspec.job_for(_run(), Settings(), "noetl")
    assert job["spec"]["activeDeadlineSeconds"] == 90


def test_the_schema_check_is_strict() -> None:
    """The check itself would catch a misspelt field."""
    job = jobspec.job_for(_run(), Settings(), "noetl")
    job["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, VERSIONS[-1], strict=True)
