"""The command line against the whole stack, running in-process for the module."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from noetl import localrun
from noetl.dev.receiver import Receiver
from noetl.dev.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

Noetl = Callable[..., subprocess.CompletedProcess[str]]
EXAMPLE = "localhost/noetl/example-plugin:1.0"
FAILING = "localhost/noetl/failing-plugin:1.0"


def at(stack: Stack, *args: str) -> list[str]:
    """``args`` with the running stack's API address."""
    return [*args, "--api", stack.api_url]


def at_both(stack: Stack, *args: str) -> list[str]:
    """``args`` with the running stack's API and NATS addresses."""
    return [*at(stack, *args), "--nats", stack.nats_url]


def steps_of(stdout: str) -> list[str]:
    """The step column of ``add plugin --wait``'s step lines."""
    found = []
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].count(":") == 2:
            found.append(fields[1])
    return found


def test_add_plugin_wait_shows_each_step_and_succeeds(
    stack: Stack, noetl: Noetl
) -> None:
    result = noetl(*at_both(stack, "add", "plugin", EXAMPLE, "--wait"))
    assert result.returncode == 0, result.stderr
    first, *_ = result.stdout.splitlines()
    assert first.startswith("refId ")
    ref_id = first.split()[1]
    uuid.UUID(ref_id)
    for step in ("1.1", "1.2", "2.2", "3.2", "3.3", "4.1", "final", "5.1", "callback"):
        assert step in steps_of(result.stdout), result.stdout
    assert "4.1      completed" in result.stdout
    assert "success" in result.stdout
    assert result.stdout.rstrip().endswith(f"registered: {ref_id} success")


def test_add_plugin_wait_exits_1_when_the_plugin_fails(
    stack: Stack, noetl: Noetl
) -> None:
    result = noetl(*at_both(stack, "add", "plugin", FAILING, "--wait"))
    assert result.returncode == 1
    assert "4.1      failed" in result.stdout
    assert "final    failed" in result.stdout
    [complaint] = result.stderr.splitlines()
    assert complaint.startswith("noetl: registration ") and " failed: " in complaint
    assert "Traceback" not in result.stderr


def test_add_plugin_wait_as_json_lines(stack: Stack, noetl: Noetl) -> None:
    result = noetl(
        *at_both(stack, "add", "plugin", EXAMPLE, "--name", "ex-json", "--wait"),
        "-o",
        "json",
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    ref_id = lines[0]["refId"]
    assert {line["step"] for line in lines[1:-1]} >= {"1.2", "2.2", "4.1", "5.1"}
    assert all(line["data"]["refId"] == ref_id for line in lines if "data" in line)
    assert lines[-1] == {"refId": ref_id, "state": "success", "error": None}


def test_add_then_status_and_get(stack: Stack, noetl: Noetl) -> None:
    added = noetl(
        *at(stack, "add", "plugin", EXAMPLE, "--name", "ex-status"), "-o", "json"
    )
    assert added.returncode == 0, added.stderr
    ref_id = json.loads(added.stdout)["refId"]

    deadline = time.monotonic() + 120
    while True:
        status = noetl(*at(stack, "status", ref_id), "-o", "json")
        assert status.returncode == 0, status.stderr
        record = json.loads(status.stdout)
        if record["state"] in ("SUCCESS", "FAILED") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert record["state"] == "SUCCESS"
    assert record["pluginName"] == "ex-status" and record["imageUrl"] == EXAMPLE
    assert isinstance(record["schema"], dict)

    text = noetl(*at(stack, "status", ref_id))
    assert f"refId:       {ref_id}" in text.stdout
    assert "state:       success" in text.stdout

    plugin = noetl(*at(stack, "get", "plugin", "ex-status"))
    assert plugin.returncode == 0
    assert "image: localhost/noetl/example-plugin:1.0" in plugin.stdout
    assert "state: success" in plugin.stdout
    as_json = json.loads(
        noetl(*at(stack, "get", "plugin", "ex-status"), "-o", "json").stdout
    )
    assert as_json["refId"] == ref_id and as_json["state"] == "SUCCESS"

    listed = noetl(*at(stack, "get", "plugins"))
    assert listed.stdout.splitlines()[0].split() == ["NAME", "STATE", "IMAGE", "REFID"]
    assert any(line.split()[0] == "ex-status" for line in listed.stdout.splitlines())
    names = [
        p["name"]
        for p in json.loads(noetl(*at(stack, "get", "plugins"), "-o", "json").stdout)
    ]
    assert "ex-status" in names


def test_the_api_url_may_come_from_the_environment(stack: Stack, noetl: Noetl) -> None:
    result = noetl("get", "plugins", "-o", "json", env={"NOETL_API_URL": stack.api_url})
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_what_does_not_exist_exits_1(stack: Stack, noetl: Noetl) -> None:
    plugin = noetl(*at(stack, "get", "plugin", "no-such-plugin"))
    assert (plugin.returncode, plugin.stderr) == (
        1,
        "noetl: no plugin named 'no-such-plugin'\n",
    )
    ref_id = str(uuid.uuid4())
    status = noetl(*at(stack, "status", ref_id))
    assert (status.returncode, status.stderr) == (
        1,
        f"noetl: no registration with refId '{ref_id}'\n",
    )


def test_graphql_errors_are_printed_one_per_line(stack: Stack, noetl: Noetl) -> None:
    result = noetl(*at(stack, "add", "plugin", "Not An Image!"))
    assert result.returncode == 1
    assert result.stderr.startswith("noetl: ")
    assert "imageUrl" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_an_unreachable_api_is_one_line(noetl: Noetl) -> None:
    url = f"http://127.0.0.1:{localrun.free_port()}/gql"
    result = noetl("add", "plugin", EXAMPLE, "--api", url)
    assert result.returncode == 1
    assert result.stderr.startswith(f"noetl: cannot reach the API at {url}: ")
    assert len(result.stderr.splitlines()) == 1


def test_wait_gives_up_at_its_timeout(stack: Stack, noetl: Noetl) -> None:
    result = noetl(
        *at_both(
            stack,
            "add",
            "plugin",
            EXAMPLE,
            "--name",
            "ex-slow",
            "--wait",
            "--timeout",
            "0.01",
        )
    )
    assert result.returncode == 1
    assert "after 0.01 s; see 'noetl status " in result.stderr


async def test_wait_shows_the_callback_delivery(stack: Stack, noetl: Noetl) -> None:
    receiver = Receiver("127.0.0.1", localrun.free_port())
    await receiver.start()
    try:
        args = at_both(
            stack,
            "add",
            "plugin",
            EXAMPLE,
            "--name",
            "ex-cb",
            "--callback",
            receiver.url,
            "--wait",
        )
        result = await asyncio.to_thread(noetl, *args)
        assert result.returncode == 0, result.stderr
        ref_id = result.stdout.splitlines()[0].split()[1]
        callback = await receiver.next(within=30)
    finally:
        await receiver.stop()
    assert (
        f"callback delivered         POST {receiver.url} -> HTTP 200" in result.stdout
    )
    assert callback.idempotency_key == f"{ref_id}:success"
    assert callback.body["state"] == "success" and callback.body["refId"] == ref_id


def test_deadletters_of_the_running_stack(stack: Stack, noetl: Noetl) -> None:
    result = noetl(*at_both(stack, "deadletters"), "-o", "json")
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_demo_round_trip(tmp_path: Path, noetl: Noetl) -> None:
    result = noetl("demo", "--data-dir", str(tmp_path / "demo"), timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    ref_id = next(
        line.split()[1] for line in out.splitlines() if line.startswith("refId ")
    )
    for step in ("1.2", "2.2", "3.2", "3.3", "4.1", "5.1"):
        assert step in steps_of(out), out
    assert f"Idempotency-Key: {ref_id}:success" in out
    assert '"state":"success"' in out
    assert "demo done" in out
