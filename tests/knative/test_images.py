"""The Dockerfile builds the image each manifest names, as it expects to run it."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from knative import manifests

DOCKERFILE = manifests.ROOT / "Dockerfile"
DOCKERIGNORE = manifests.ROOT / ".dockerignore"
#: The packages the images carry, each copied on its own.
PACKAGES = {"noetl", "functions", "sources"}


@dataclass
class Stage:
    name: str
    base: str
    #: (instruction, value) in order.
    steps: list[tuple[str, str]] = field(default_factory=list)


def stages() -> dict[str, Stage]:
    found: dict[str, Stage] = {}
    current = None
    for item in DockerfileParser(str(DOCKERFILE)).structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            base, _, name = value.partition(" AS ")
            current = Stage(name=name.strip(), base=base.strip())
            found[current.name] = current
        elif current is not None and instruction != "COMMENT":
            current.steps.append((instruction, value))
    return found


def effective(stage: str, instruction: str) -> str | None:
    """The last ``instruction`` in ``stage`` or the stages it is built on."""
    all_stages = stages()
    chain: list[Stage] = []
    while stage in all_stages:
        chain.append(all_stages[stage])
        stage = all_stages[stage].base
    for each in chain:
        values = [value for name, value in each.steps if name == instruction]
        if values:
            return values[-1]
    return None


def environment(stage: str) -> dict[str, str]:
    """The ENV a stage ends with, its bases' included (KEY=value form only)."""
    all_stages = stages()
    chain: list[Stage] = []
    while stage in all_stages:
        chain.insert(0, all_stages[stage])
        stage = all_stages[stage].base
    env: dict[str, str] = {}
    for each in chain:
        for name, value in each.steps:
            if name == "ENV":
                for pair in value.split():
                    key, _, setting = pair.partition("=")
                    env[key] = setting
    return env


def image_targets() -> dict[str, str]:
    """Each manifest's image (``noetl/<target>``) by the target it names."""
    targets = {}
    for key, image in manifests.images().items():
        registry, _, target = image.partition("/")
        assert registry == "noetl" and ":" not in target, f"{key}: {image}"
        targets[target] = key
    return targets


def commands() -> dict[str, list[str]]:
    """The command each target's image is run with, from its manifests."""
    found: dict[str, list[str]] = {}
    for doc in manifests.of_kind("Service") + manifests.of_kind("ContainerSource"):
        container = manifests.container(doc)
        target = container["image"].partition("/")[2]
        assert found.setdefault(target, container["command"]) == container["command"]
    return found


def test_a_target_per_image_the_manifests_name() -> None:
    finals = set(stages()) - {stage.base for stage in stages().values()}
    assert finals == set(image_targets())


@pytest.mark.parametrize("target", sorted(image_targets()))
def test_a_target_runs_as_a_numeric_non_root_user(target: str) -> None:
    user = effective(target, "USER")
    assert user is not None, f"{target} runs as root"
    uid, _, gid = user.partition(":")
    # runAsNonRoot can only check a numeric uid.
    assert uid.isdigit() and int(uid) != 0, user
    assert not gid or (gid.isdigit() and int(gid) != 0), user


@pytest.mark.parametrize("target", sorted(image_targets()))
def test_a_target_s_entry_point_is_the_manifest_s_command(target: str) -> None:
    entrypoint = effective(target, "ENTRYPOINT")
    assert entrypoint is not None
    # Exec form, so that the process is PID 1 and gets SIGTERM itself.
    assert json.loads(entrypoint) == commands()[target]
    assert effective(target, "CMD") is None


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    (runtime,) = [s for s in stages().values() if s.base not in stages()]
    steps = [f"{name} {value}" for name, value in runtime.steps]

    def first(text: str) -> int:
        return next(i for i, step in enumerate(steps) if step.startswith(text))

    install = first('RUN python -c "import tomllib')
    assert first("COPY pyproject.toml") < install
    assert "pip install -r" in steps[install]
    copies = [first(f"COPY {package} ") for package in PACKAGES]
    assert install < min(copies)
    assert max(copies) < first("RUN pip install --no-deps .")


def test_the_base_is_slim_python_3_11() -> None:
    structure = DockerfileParser(str(DOCKERFILE)).structure
    args = [i["value"] for i in structure if i["instruction"] == "ARG"]
    assert "PYTHON_IMAGE=python:3.11-slim" in args
    (runtime,) = [s for s in stages().values() if s.base not in stages()]
    assert runtime.base == "${PYTHON_IMAGE}"


def test_home_is_on_the_writable_tmp() -> None:
    # The root filesystem is read-only; each function mounts an emptyDir at
    # /tmp, where gunicorn then keeps its control socket.
    for target in image_targets():
        assert environment(target).get("HOME") == "/tmp", target


def test_the_build_context_is_what_the_dockerfile_copies() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # Everything is left out but what is let in again.
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        value.split()[0]
        for stage in stages().values()
        for name, value in stage.steps
        if name == "COPY"
    }
    assert copied == allowed
    assert copied >= PACKAGES


def test_kustomize_maps_every_image_to_this_version() -> None:
    entries = manifests.kustomization()["images"]
    assert {entry["name"] for entry in entries} == {
        f"noetl/{target}" for target in image_targets()
    }
    project = tomllib.loads((manifests.ROOT / "pyproject.toml").read_text())
    assert {entry["newTag"] for entry in entries} == {project["project"]["version"]}


# A make running these tests must not pass its own flags on to this one.
ISOLATED = {
    key: value
    for key, value in os.environ.items()
    if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
}


def make_images(bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "images", *args],
        cwd=manifests.ROOT,
        env={**ISOLATED, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def fake(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_make_builds_the_images_kustomize_names(tmp_path: Path) -> None:
    fake(tmp_path, "engine", 'echo "$@" >> "$(dirname "$0")/calls"')
    entries = manifests.kustomization()["images"]
    registry = {str(Path(entry["newName"]).parent) for entry in entries}
    assert len(registry) == 1

    result = make_images(tmp_path, f"ENGINE={tmp_path / 'engine'}", "PUSH=1")
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    wanted = {f"{entry['newName']}:{entry['newTag']}" for entry in entries}
    assert {
        f"build --target {Path(image).name.partition(':')[0]} --tag {image} ."
        for image in wanted
    } == {call for call in calls if call.startswith("build")}
    assert {f"push {image}" for image in wanted} == {
        call for call in calls if call.startswith("push")
    }


def test_make_says_so_when_no_engine_runs(tmp_path: Path) -> None:
    for engine in ("docker", "podman"):
        fake(tmp_path, engine, "exit 1")
    result = make_images(tmp_path)
    assert result.returncode != 0
    assert "no container engine is running" in result.stderr
