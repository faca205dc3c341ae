"""Every manifest under knative/ is valid, and kustomize renders them."""

from __future__ import annotations

from pathlib import Path

import pytest

from knative import manifests


@pytest.mark.parametrize(
    "path", manifests.files(), ids=lambda p: str(p.relative_to(manifests.KNATIVE))
)
def test_each_manifest_is_valid(path: Path) -> None:
    docs = manifests.load(path)
    assert docs, f"{path} holds no object"
    for doc in docs:
        where = f"{path.name}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        assert manifests.problems(doc) == [], where


def test_every_manifest_is_in_a_kustomization() -> None:
    listed = set()
    for folder in [manifests.KNATIVE, *manifests.KNATIVE.rglob("*/")]:
        if (folder / manifests.KUSTOMIZATION).exists():
            for entry in manifests.kustomization(folder).get("resources", []):
                listed.add((folder / entry).resolve())
    assert {p.resolve() for p in manifests.files()} <= listed


def test_names_are_unique() -> None:
    keys = [(d["kind"], d["metadata"]["name"]) for d in manifests.documents()]
    assert len(keys) == len(set(keys))


def test_the_rendered_set_is_valid() -> None:
    rendered = manifests.rendered()
    assert len(rendered) == len(manifests.documents())
    for doc in rendered:
        assert manifests.problems(doc) == [], f"{doc['kind']} {doc['metadata']}"


def test_rendering_puts_everything_in_one_namespace() -> None:
    namespace = manifests.kustomization()["namespace"]
    for doc in manifests.rendered():
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == namespace
        else:
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]
        for subject in doc.get("subjects", []):
            assert subject["namespace"] == namespace


def test_rendering_points_every_image_at_the_registry() -> None:
    wanted = {
        f"{entry['newName']}:{entry['newTag']}"
        for entry in manifests.kustomization()["images"]
    }
    used = set(manifests.images(manifests.rendered()).values())
    assert used == wanted


def test_rendering_gives_nack_the_one_nats_address() -> None:
    address = manifests.config()["NATS_URL"]
    for kind in ("Stream", "KeyValue"):
        for doc in manifests.of_kind(kind, manifests.rendered()):
            assert doc["spec"]["servers"] == [address], doc["metadata"]["name"]


def test_crd_copies_keep_their_attribution() -> None:
    readme = (manifests.CRDS / "README.md").read_text()
    assert "Apache License 2.0" in readme
    for path in manifests.CRDS.rglob("*.yaml"):
        assert str(path.relative_to(manifests.CRDS)) in readme


def test_the_strict_schemas_reject_unknown_fields() -> None:
    service = manifests.named("Service", "api")
    spec = service["spec"]["template"]["spec"]
    broken = {**spec, "containers": [{**spec["containers"][0], "replica": 2}]}
    wrong = {**service, "spec": {"template": {"spec": broken}}}
    assert any("'replica' was unexpected" in p for p in manifests.problems(wrong))

    source = manifests.named("ContainerSource", "catalog-source")
    template = {**source["spec"]["template"], "bogus": True}
    wrong = {**source, "spec": {**source["spec"], "template": template}}
    assert any("bogus" in p for p in manifests.problems(wrong))
