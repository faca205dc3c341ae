"""Every variable the deployed code reads is set, or left empty for its default."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from knative import manifests
from noetl.dev.stack import ROUTES, Route
from noetl.settings import Settings
from sources.jetstream.config import Config

#: Where the deployed parts read their environment.
READERS = [
    manifests.ROOT / "noetl" / "settings.py",
    *sorted((manifests.ROOT / "sources" / "jetstream").glob("*.py")),
    *sorted((manifests.ROOT / "functions").rglob("*.py")),
]
#: Read by the code but set by the platform, or never in a cluster.
INJECTED = {
    "K_SINK": "Knative, from a source's sink",
    "K_CE_OVERRIDES": "Knative, from a source's ceOverrides",
    "KUBERNETES_SERVICE_HOST": "Kubernetes, in every pod",
    "KUBECONFIG": "read only outside a pod",
}
NAME = re.compile(r"[A-Z][A-Z0-9_]+")
# settings.py's readers, and the source's _Reader methods.
HELPERS = {"_str", "_int", "_float", "required", "optional", "integer", "seconds"}


def read_by(path: Path) -> set[str]:
    """The environment variables ``path`` reads by name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        func = node.func
        helper = isinstance(func, ast.Name) and func.id in HELPERS
        method = isinstance(func, ast.Attribute) and (
            func.attr in HELPERS
            or (func.attr == "get" and ast.unparse(func.value).endswith("environ"))
        )
        if (helper or method) and NAME.fullmatch(first.value):
            names.add(first.value)
    return names


def read() -> set[str]:
    return set().union(*(read_by(path) for path in READERS))


def per_source() -> set[str]:
    names = set()
    for doc in manifests.of_kind("ContainerSource"):
        names |= {e["name"] for e in manifests.container(doc).get("env", [])}
    return names


def test_the_scan_finds_the_settings() -> None:
    names = read()
    assert {"NATS_URL", "NOETL_JOB_BACKEND", "NOETL_SOURCE_DURABLE"} <= names
    assert set(INJECTED) <= names


def test_every_variable_read_is_in_the_manifests() -> None:
    missing = read() - set(INJECTED) - set(manifests.config()) - per_source()
    assert not missing, f"set these in knative/config/configmap.yaml: {missing}"


def test_the_manifests_set_nothing_the_code_does_not_read() -> None:
    stale = (set(manifests.config()) | per_source()) - read()
    assert not stale


def test_what_each_source_sets_is_its_own() -> None:
    assert not per_source() & set(manifests.config())
    assert per_source() == {
        "NOETL_SOURCE_STREAM",
        "NOETL_SOURCE_SUBJECTS",
        "NOETL_SOURCE_DURABLE",
    }


def test_the_functions_accept_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in manifests.config().items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.nats_url == manifests.config()["NATS_URL"]
    # Plugin Jobs are handed the catalog's own address unless told otherwise.
    assert settings.plugin_nats_url == settings.nats_url
    assert settings.job_backend == "kubernetes"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.source)
def test_each_source_accepts_the_config(route: Route) -> None:
    doc = manifests.named("ContainerSource", route.source)
    env = {e["name"]: e["value"] for e in manifests.container(doc)["env"]}
    Config.from_env({**manifests.config(), **env, "K_SINK": "http://sink.noetl/"})


def test_the_secret_holds_nothing_as_shipped() -> None:
    secret = manifests.named("Secret", "noetl-secrets")
    assert not secret.get("data") and not secret.get("stringData")
