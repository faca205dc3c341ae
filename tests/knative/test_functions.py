"""Each function is a Knative Service that scales to zero and runs as served here."""

from __future__ import annotations

from pathlib import Path

import pytest

from knative import manifests
from noetl import localrun
from noetl.dev.stack import ROUTES, Route
from noetl.settings import Settings
from sources.jetstream.config import Config

FUNCTIONS = sorted(
    p.parent.name for p in (manifests.ROOT / "functions").glob("*/main.py")
)
#: The one function reached from outside the cluster.
PUBLIC = {"api"}
RESTRICTED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
ENV_FROM = [
    {"configMapRef": {"name": "noetl-config"}},
    {"secretRef": {"name": "noetl-secrets"}},
]


def service(name: str) -> manifests.Doc:
    return manifests.named("Service", name)


def scaling(name: str) -> dict[str, str]:
    data: dict[str, str] = service(name)["spec"]["template"]["metadata"]["annotations"]
    return data


def source_config(function: str) -> Config:
    """The configuration of the source feeding ``function``, as deployed."""
    (doc,) = [
        d
        for d in manifests.of_kind("ContainerSource")
        if d["spec"]["sink"]["ref"]["name"] == function
    ]
    env = {e["name"]: e["value"] for e in manifests.container(doc).get("env", [])}
    return Config.from_env({**manifests.config(), **env, "K_SINK": "http://sink/"})


def deployed_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in manifests.config().items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_every_function_has_a_service() -> None:
    assert sorted(localrun.FUNCTIONS) == FUNCTIONS
    assert sorted(d["metadata"]["name"] for d in manifests.of_kind("Service")) == (
        FUNCTIONS
    )


@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_service_runs_the_function_as_noetl_dev_does(name: str) -> None:
    # noetl dev's command, less what differs on a cluster: the program's own
    # path, the source's absolute path, and the host and port it binds.
    local = localrun.function_command(name, 8080)
    expected = [Path(local[0]).name]
    args = iter(local[1:])
    for arg in args:
        if arg in ("--host", "--port"):
            next(args)
        elif arg.startswith(str(localrun.ROOT)):
            expected.append(str(Path(arg).relative_to(localrun.ROOT)))
        else:
            expected.append(arg)

    container = manifests.container(service(name))
    assert container["image"] == f"noetl/{name}"
    assert container["command"] == expected
    assert container["args"] == ["--port", "$(PORT)"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_service_scales_to_zero_within_limits(name: str) -> None:
    spec = service(name)["spec"]["template"]["spec"]
    scale = scaling(name)
    assert scale["autoscaling.knative.dev/min-scale"] == "0"
    assert int(scale["autoscaling.knative.dev/max-scale"]) >= 1
    target = int(scale["autoscaling.knative.dev/target"])
    assert 1 <= target <= spec["containerConcurrency"]
    assert spec["timeoutSeconds"] > 0


@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_container_is_restricted_and_configured(name: str) -> None:
    spec = service(name)["spec"]["template"]["spec"]
    container = manifests.container(service(name))
    assert container["securityContext"] == RESTRICTED
    assert container["envFrom"] == ENV_FROM
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}

    # gunicorn writes to /tmp, which must be an emptyDir on a read-only root.
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume


@pytest.mark.parametrize("name", FUNCTIONS)
def test_readiness_is_the_health_path(name: str) -> None:
    probe = manifests.container(service(name))["readinessProbe"]
    # No port: Knative probes the serving port itself.
    assert probe == {"httpGet": {"path": "/healthz"}}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_only_the_api_is_reached_from_outside(name: str) -> None:
    labels = service(name)["metadata"].get("labels", {})
    visibility = labels.get("networking.knative.dev/visibility")
    assert visibility == (None if name in PUBLIC else "cluster-local")


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.function)
def test_a_function_answers_before_its_source_gives_up(route: Route) -> None:
    function = route.function
    source = source_config(function)
    spec = service(function)["spec"]["template"]["spec"]
    # Knative ends a slow request (504, retried) before the source stops
    # waiting; in-progress acks keep the message while it is in flight.
    assert spec["timeoutSeconds"] < source.request_timeout
    # At full scale the source's POSTs in flight are all taken at once.
    scale = int(scaling(function)["autoscaling.knative.dev/max-scale"])
    assert scale * spec["containerConcurrency"] >= source.max_inflight


def test_the_catalog_can_finish_creating_a_job(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = deployed_settings(monkeypatch)
    assert settings.job_backend == "kubernetes"
    attempts = settings.k8s_create_attempts
    slowest = attempts * settings.k8s_request_timeout + sum(
        settings.k8s_create_backoff * 2**i for i in range(attempts - 1)
    )
    assert slowest < service("catalog")["spec"]["template"]["spec"]["timeoutSeconds"]


def test_the_notifier_can_finish_a_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = deployed_settings(monkeypatch)
    timeout = service("notifier")["spec"]["template"]["spec"]["timeoutSeconds"]
    assert settings.callback_timeout < timeout
