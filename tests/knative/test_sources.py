"""A ContainerSource per route of noetl dev, and the ApiServerSource of Jobs."""

from __future__ import annotations

import pytest

from functions.catalog import jobevents
from functions.catalog.jobs import jobspec
from knative import manifests
from noetl import topology
from noetl.dev import stack
from noetl.dev.stack import ROUTES, Route
from sources.jetstream.config import Config
from sources.jetstream.source import SETTLE_MARGIN

KSVC = {"apiVersion": "serving.knative.dev/v1", "kind": "Service"}
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def env(doc: manifests.Doc) -> dict[str, str]:
    return {e["name"]: e["value"] for e in manifests.container(doc)["env"]}


def test_every_route_has_a_source_and_no_more() -> None:
    names = {d["metadata"]["name"] for d in manifests.of_kind("ContainerSource")}
    assert names == {route.source for route in ROUTES}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.source)
def test_the_source_consumes_what_noetl_dev_routes(route: Route) -> None:
    doc = manifests.named("ContainerSource", route.source)
    assert env(doc) == {
        "NOETL_SOURCE_STREAM": route.stream,
        "NOETL_SOURCE_SUBJECTS": ",".join(route.subjects),
        "NOETL_SOURCE_DURABLE": route.function,
    }
    assert doc["spec"]["sink"] == {"ref": {**KSVC, "name": route.function}}
    for subject in route.subjects:
        assert topology.stream_of(subject) == route.stream


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.source)
def test_the_source_runs_as_noetl_dev_runs_it(route: Route) -> None:
    local = stack.local_stack().part(route.source).command
    container = manifests.container(manifests.named("ContainerSource", route.source))
    assert container["image"] == "noetl/jetstream-source"
    assert container["command"] == ["python", *local[1:]]
    assert container["envFrom"] == [
        {"configMapRef": {"name": "noetl-config"}},
        {"secretRef": {"name": "noetl-secrets"}},
    ]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.source)
def test_the_source_is_restricted(route: Route) -> None:
    doc = manifests.named("ContainerSource", route.source)
    pod = doc["spec"]["template"]["spec"]
    assert pod["securityContext"] == RESTRICTED_POD
    container = manifests.container(doc)
    assert container["securityContext"] == {
        **RESTRICTED_POD,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.source)
def test_the_source_may_finish_its_work_when_stopped(route: Route) -> None:
    doc = manifests.named("ContainerSource", route.source)
    config = Config.from_env({**manifests.config(), **env(doc), "K_SINK": "http://x/"})
    grace = doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= config.request_timeout + SETTLE_MARGIN


def test_job_events_reach_the_catalog() -> None:
    (doc,) = manifests.of_kind("ApiServerSource")
    spec = doc["spec"]
    # Resource mode: the event's data is the Job, as jobevents reads it.
    assert spec["mode"] == "Resource"
    assert jobevents.ADD.startswith("dev.knative.apiserver.resource.")
    assert spec["sink"] == {"ref": {**KSVC, "name": "catalog"}}

    (watched,) = spec["resources"]
    assert (watched["apiVersion"], watched["kind"]) == ("batch/v1", "Job")
    labels = watched["selector"]["matchLabels"]
    assert ",".join(f"{k}={v}" for k, v in labels.items()) == jobspec.SELECTOR
    assert labels.items() <= jobspec.COMMON_LABELS.items()
