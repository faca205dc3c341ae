"""The GraphQL API fuzzed with hypothesis against the whole stack.

A fixed seed and a bounded number of examples keep the run repeatable. Any
input gets an answer below 500, and every registration the API accepted is
final once its deadline has passed: images without a local stand-in fail at
once, and the short deadline ends whatever else is left.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noetl import records, topology
from noetl.dev.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

DEADLINE = 8.0
STACK_ENV = {"NOETL_REGISTRATION_DEADLINE_SECONDS": str(DEADLINE)}
ACCEPTED: list[str] = []

texts = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"[a-z0-9][a-z0-9._/:@-]{0,60}", fullmatch=True),
    st.sampled_from(
        [
            "localhost/noetl/failing-plugin:1.0",
            "registry.example/team/plugin:1.0",
            "http://127.0.0.1:9/cb",
            "x" * 300,
        ]
    ),
)
inputs = st.fixed_dictionaries(
    {"imageUrl": st.one_of(texts, st.integers(), st.none())},
    optional={
        "pluginName": st.one_of(texts, st.none()),
        "callbackApi": st.one_of(texts, st.none()),
        "extra": texts,
    },
)
MUTATION = (
    "mutation ($input: PluginRegistrationRequest!) "
    "{ registerPlugin(input: $input) { refId } }"
)
bodies = st.one_of(
    st.builds(lambda i: {"query": MUTATION, "variables": {"input": i}}, inputs),
    st.builds(lambda q: {"query": q}, texts),
    st.builds(
        lambda name: {
            "query": "query ($n: String!) { plugin(name: $n) { name state } }",
            "variables": {"n": name},
        },
        st.one_of(texts, st.integers()),
    ),
    st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10)),
    st.lists(st.integers(), max_size=3),
)


@settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_no_input_gets_a_5xx(stack: Stack, body: Any) -> None:
    response = httpx.post(stack.api_url, content=json.dumps(body), timeout=30)
    assert response.status_code < 500, response.text
    answer = response.json()
    if response.status_code == 200 and "errors" not in answer:
        data = answer.get("data") or {}
        if data.get("registerPlugin"):
            ACCEPTED.append(data["registerPlugin"]["refId"])


def test_no_registration_outlives_its_deadline(stack: Stack) -> None:
    assert ACCEPTED, "the fuzzing accepted no registration at all"
    time.sleep(DEADLINE + 2)
    left = asyncio.run(_not_final(stack.nats_url, ACCEPTED, within=60))
    assert left == []


async def _not_final(nats_url: str, ref_ids: list[str], within: float) -> list[str]:
    client = await nats.connect(nats_url)
    try:
        kv = await client.jetstream().key_value(topology.REGISTRATIONS)
        deadline = time.monotonic() + within
        while True:
            left = []
            for ref_id in ref_ids:
                record = await records.get(kv, ref_id)
                if record is None or not record.final:
                    left.append(ref_id)
            if not left or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.5)
    finally:
        await client.close()
