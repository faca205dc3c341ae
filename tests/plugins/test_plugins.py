"""The example plugins, run as the process backend runs them."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from nats.js import JetStreamContext

from noetl import binding, localrun, topology
from noetl.models import SchemaRegistrationCompleted

_PLUGIN_ENV = ("NATS_URL", "PLUGIN_NAME", "REF_ID", "IMAGE_URL")


async def _run(module: str, *args: str, **env: str) -> tuple[int, str, str]:
    """Run ``python -m module args`` with ``env``; exit code, stdout, stderr."""
    environ = {k: v for k, v in os.environ.items() if k not in _PLUGIN_ENV}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        env={**environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _job_env(nats_url: str, ref_id: str) -> dict[str, str]:
    return {
        "NATS_URL": nats_url,
        "PLUGIN_NAME": "example-plugin-1.0",
        "REF_ID": ref_id,
        "IMAGE_URL": "localhost/noetl/example-plugin:1.0",
    }


async def test_example_plugin_reports_its_schema(
    nats_url: str, js: JetStreamContext
) -> None:
    ref_id = str(uuid.uuid4())

    code, out, err = await _run(
        "plugins.example", "--registration", **_job_env(nats_url, ref_id)
    )

    assert code == 0, err
    assert f"schema reported for refId {ref_id}" in out
    msg = await js.get_last_msg(topology.EVENTS, topology.SUBJECT_SCHEMA)
    assert msg.headers is not None and msg.data is not None
    assert msg.headers["Nats-Msg-Id"] == f"{ref_id}:4.1:completed"
    event = binding.from_binary(msg.headers, msg.data)
    assert event["type"] == SchemaRegistrationCompleted.ce_type()
    assert event["source"] == "/noetl/plugin/example-plugin-1.0"
    report = SchemaRegistrationCompleted.from_data(event.get_data())
    assert (report.ref_id, report.plugin_name) == (ref_id, "example-plugin-1.0")
    assert report.schema["type"] == "object"
    assert report.schema["required"] == ["url"]
    assert "enum" in report.schema["properties"]["method"]


async def test_example_plugin_without_registration_prints_usage() -> None:
    code, _, err = await _run("plugins.example")

    assert code == 2
    assert "usage: python -m plugins.example --registration" in err


async def test_example_plugin_names_what_its_environment_lacks() -> None:
    code, _, err = await _run("plugins.example", "--registration", NATS_URL="x")

    assert code == 2
    assert "PLUGIN_NAME, REF_ID, IMAGE_URL not set" in err


async def test_example_plugin_fails_when_nats_is_away() -> None:
    away = f"nats://127.0.0.1:{localrun.free_port()}"

    code, _, err = await _run(
        "plugins.example", "--registration", **_job_env(away, str(uuid.uuid4()))
    )

    assert code == 1
    assert f"could not report to {away}" in err


async def test_failing_plugin_exits_non_zero_and_says_why() -> None:
    code, out, err = await _run(
        "plugins.failing", "--registration", **_job_env("nats://x", str(uuid.uuid4()))
    )

    assert code == 1
    assert out == ""
    assert "failing-plugin: " in err and "fails on purpose" in err


async def test_failing_plugin_without_registration_prints_usage() -> None:
    code, _, err = await _run("plugins.failing")

    assert code == 2
    assert "usage: python -m plugins.failing --registration" in err
