"""The job backends and the failure publisher, in this process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from functions.catalog import jobs
from functions.catalog.facts import Publisher
from functions.catalog.jobs import process, standins
from functions.catalog.jobs.kubernetes import KubernetesRunner
from functions.catalog.jobs.process import ProcessRunner
from noetl import connection, localrun
from noetl.errors import Unavailable
from noetl.settings import Settings


@pytest.fixture(autouse=True)
def _no_inherited_job_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test states the settings it runs with."""
    for name in list(os.environ):
        if name.startswith("NOETL_"):
            monkeypatch.delenv(name)


class Ended:
    """A :class:`jobs.Facts` that remembers each run's end: None or a reason."""

    def __init__(self) -> None:
        self.ends: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()

    async def failed(self, run: jobs.Run, reason: str) -> None:
        await self.ends.put((run.ref_id, reason))

    async def finished(self, run: jobs.Run) -> None:
        await self.ends.put((run.ref_id, None))

    async def next(self) -> tuple[str, str | None]:
        return await asyncio.wait_for(self.ends.get(), 30)


def _run(image: str = "localhost/test/plugin:1.0") -> jobs.Run:
    return jobs.Run.of(
        ref_id=str(uuid.uuid4()),
        plugin_name="plugin-1.0",
        image_url=image,
        nats_url="nats://plugins.example:4222",
    )


def _runner(
    tmp_path: Path, scripts: dict[str, str], **config: object
) -> tuple[ProcessRunner, Ended]:
    """A process backend whose images run the given Python sources."""
    table = {}
    for number, (image, source) in enumerate(scripts.items()):
        path = tmp_path / f"standin-{number}.py"
        path.write_text(source)
        table[image] = [sys.executable, str(path)]
    plugins = tmp_path / "local-plugins.json"
    plugins.write_text(json.dumps(table))
    ended = Ended()
    settings = Settings(local_plugins=str(plugins), **config)  # type: ignore[arg-type]
    return ProcessRunner(settings, ended), ended


def test_a_run_has_the_args_and_env_of_a_job() -> None:
    run = jobs.Run.of(
        ref_id="8d3c1f1e-0a43-4d6b-9a39-1f1c7d7b2a10",
        plugin_name="example-plugin-1.0",
        image_url="localhost/noetl/example-plugin:1.0",
        nats_url="nats://nats.noetl:4222",
    )
    assert run.args == ("--registration",)
    assert dict(run.env) == {
        "NATS_URL": "nats://nats.noetl:4222",
        "PLUGIN_NAME": "example-plugin-1.0",
        "REF_ID": "8d3c1f1e-0a43-4d6b-9a39-1f1c7d7b2a10",
        "IMAGE_URL": "localhost/noetl/example-plugin:1.0",
    }


def test_the_backend_is_chosen_by_the_setting() -> None:
    ended = Ended()
    assert isinstance(
        jobs.create(Settings(job_backend="process"), ended), ProcessRunner
    )
    assert isinstance(
        jobs.create(Settings(job_backend="kubernetes"), ended), KubernetesRunner
    )
    with pytest.raises(jobs.UnknownJobBackend, match="expected one of: kubernetes"):
        jobs.create(Settings(job_backend="docker"), ended)


def test_the_catalog_does_not_import_the_kubernetes_client() -> None:
    """Not even with the kubernetes backend: its first run imports it."""
    probe = (
        "import sys\n"
        "import functions.catalog.main\n"
        "from functions.catalog import jobs\n"
        "from noetl.settings import Settings\n"
        "jobs.create(Settings(job_backend='kubernetes'), None)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_stand_ins_are_built_in_for_the_example_plugins() -> None:
    table = standins.load("")
    assert table["localhost/noetl/example-plugin:1.0"][-2:] == ("-m", "plugins.example")
    assert table["localhost/noetl/failing-plugin:1.0"][-2:] == ("-m", "plugins.failing")


def test_a_file_adds_stand_ins(tmp_path: Path) -> None:
    path = tmp_path / "plugins.json"
    path.write_text(json.dumps({"registry.example/a:1": ["run-a", "--fast"]}))
    table = standins.load(str(path))
    assert table["registry.example/a:1"] == ("run-a", "--fast")
    assert "localhost/noetl/example-plugin:1.0" in table


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (None, "cannot be read"),
        ("{not json", "is not JSON"),
        ('["run-a"]', "expected an object"),
        ('{"registry.example/a:1": "run-a"}', "'registry.example/a:1' maps to"),
        ('{"registry.example/a:1": []}', "non-empty list of strings"),
    ],
)
def test_a_bad_file_is_refused_by_name(
    tmp_path: Path, content: str | None, complaint: str
) -> None:
    path = tmp_path / "plugins.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(standins.InvalidLocalPlugins) as caught:
        standins.load(str(path))
    assert str(path) in str(caught.value)
    assert complaint in str(caught.value)


async def test_a_stand_in_gets_the_args_and_env_of_a_job(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    runner, ended = _runner(
        tmp_path,
        {
            "localhost/test/plugin:1.0": (
                "import json, os, sys\n"
                "names = ['NATS_URL', 'PLUGIN_NAME', 'REF_ID', 'IMAGE_URL']\n"
                "env = {name: os.environ[name] for name in names}\n"
                f"with open({str(seen)!r}, 'w') as f:\n"
                "    json.dump({'args': sys.argv[1:], 'env': env}, f)\n"
            )
        },
    )
    run = _run()

    assert await runner.start(run) == "run starting"

    assert await ended.next() == (run.ref_id, None)
    assert json.loads(seen.read_text()) == {
        "args": ["--registration"],
        "env": dict(run.env),
    }


async def test_a_failure_quotes_the_last_lines_of_stderr(tmp_path: Path) -> None:
    runner, ended = _runner(
        tmp_path,
        {
            "localhost/test/plugin:1.0": (
                "import sys\n"
                "for n in range(100):\n"
                "    print(f'line {n}', file=sys.stderr)\n"
                "sys.exit(7)\n"
            )
        },
    )

    await runner.start(_run())

    _, reason = await ended.next()
    assert reason is not None
    assert reason.startswith("plugin exited with code 7; the last lines of its stderr")
    assert reason.splitlines()[1:] == [f"line {n}" for n in range(80, 100)]


async def test_an_image_without_a_stand_in_cannot_start(tmp_path: Path) -> None:
    runner, ended = _runner(tmp_path, {})

    with pytest.raises(jobs.RunNotStarted, match="has no local stand-in"):
        await runner.start(_run("registry.example/unknown:1"))
    assert ended.ends.empty()


async def test_a_command_that_cannot_start_fails(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins.json"
    plugins.write_text(json.dumps({"localhost/test/plugin:1.0": ["/no/such/plugin"]}))
    ended = Ended()
    runner = ProcessRunner(Settings(local_plugins=str(plugins)), ended)

    await runner.start(_run())

    _, reason = await ended.next()
    assert reason is not None and reason.startswith("could not start '/no/such/plugin'")


async def test_a_timeout_stops_everything_the_run_started(tmp_path: Path) -> None:
    child = tmp_path / "child.pid"
    runner, ended = _runner(
        tmp_path,
        {
            "localhost/test/plugin:1.0": (
                "import subprocess, sys, time\n"
                "sleeper = [sys.executable, '-c', 'import time; time.sleep(600)']\n"
                "pid = subprocess.Popen(sleeper).pid\n"
                f"open({str(child)!r}, 'w').write(str(pid))\n"
                "time.sleep(600)\n"
            )
        },
        job_timeout=1.0,
    )

    await runner.start(_run())

    _, reason = await ended.next()
    assert (
        reason == "plugin run exceeded 1 s and was stopped; it wrote nothing to stderr"
    )
    pid = int(child.read_text())
    for _ in range(600):
        if not _alive(pid):
            break
        await asyncio.sleep(0.05)
    assert not _alive(pid), "the run's child outlived it"


async def test_one_run_per_ref_id_and_the_rest_wait_in_jetstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "SLOT_WAIT", 0.3)
    runner, ended = _runner(
        tmp_path,
        {"localhost/test/plugin:1.0": "import time\ntime.sleep(2)\n"},
        job_concurrency=1,
    )
    first, second = _run(), _run()

    assert await runner.start(first) == "run starting"
    assert await runner.start(first) == "run already active"
    # No slot: handed back, to be delivered again, rather than kept in memory.
    with pytest.raises(Unavailable, match="slots are busy"):
        await runner.start(second)

    assert await ended.next() == (first.ref_id, None)
    assert await runner.start(second) == "run starting"
    assert await ended.next() == (second.ref_id, None)
    assert ended.ends.empty()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie waiting for its reaper does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_a_failure_that_cannot_be_published_is_retried_then_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NATS_URL", f"nats://127.0.0.1:{localrun.free_port()}")
    publisher = Publisher(grace=0, attempts=2, backoff=0.01)

    try:
        await publisher.failed(_run(), "plugin exited with code 1")
    finally:
        await connection.close()

    messages = [r.getMessage() for r in caplog.records if r.name.endswith("facts")]
    assert any("(attempt 1 of 2)" in m for m in messages)
    assert any("failed 2 times, giving up" in m for m in messages)
