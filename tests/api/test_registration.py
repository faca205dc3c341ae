"""registerPlugin: recorded, published as 1.2, answered after the ack; or refused."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from functions.api import registration
from noetl import buckets, localrun, records, topology

Gql = Callable[..., Awaitable[httpx.Response]]

REGISTER = """
mutation Register($input: PluginRegistrationRequest!) {
  registerPlugin(input: $input) { refId }
}
"""
IMAGE = "localhost/noetl/example-plugin:1.0"
CALLBACK = "http://127.0.0.1:9/callback"


async def test_registration_is_recorded_and_published(
    gql: Gql, js: JetStreamContext
) -> None:
    request = {"pluginName": "example", "imageUrl": IMAGE, "callbackApi": CALLBACK}
    response = await gql(REGISTER, {"input": request})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "errors" not in response.json()
    ref_id = response.json()["data"]["registerPlugin"]["refId"]
    assert str(uuid.UUID(ref_id, version=4)) == ref_id

    kv = await js.key_value(topology.REGISTRATIONS)
    record = await records.get(kv, ref_id)
    assert record is not None
    assert record.state == records.RECEIVED
    assert (record.plugin_name, record.image_url) == ("example", IMAGE)
    assert record.callback_api == CALLBACK
    assert record.request_source == {"gateway": "API"}

    events = await js.stream_info(topology.EVENTS)
    assert events.state.messages == 1
    message = await js.get_last_msg(topology.EVENTS, topology.SUBJECT_API)
    headers = message.headers or {}
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-id"] == f"{ref_id}:1.2"
    assert headers["Nats-Msg-Id"] == f"{ref_id}:1.2"
    assert headers["ce-source"] == "/noetl/api"
    assert headers["ce-type"] == "io.noetl.event.PluginImageRegistrationRequestReceived"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(message.data or b"") == {
        "eventType": "PluginImageRegistrationRequestReceived",
        "pluginName": "example",
        "requestSource": {"gateway": "API"},
        "refId": ref_id,
        "imageUrl": IMAGE,
        "callbackApi": CALLBACK,
    }


async def test_name_defaults_to_one_derived_from_the_image(
    gql: Gql, js: JetStreamContext
) -> None:
    response = await gql(REGISTER, {"input": {"imageUrl": IMAGE}})

    ref_id = response.json()["data"]["registerPlugin"]["refId"]
    record = await records.get(await js.key_value(topology.REGISTRATIONS), ref_id)
    assert record is not None and record.plugin_name == "example-plugin-1.0"
    assert record.callback_api is None
    message = await js.get_last_msg(topology.EVENTS, topology.SUBJECT_API)
    data = json.loads(message.data or b"")
    assert data["pluginName"] == "example-plugin-1.0"
    assert "callbackApi" not in data


BAD_INPUT = [
    ({"pluginName": "Example Plugin", "imageUrl": IMAGE}, "pluginName"),
    ({"pluginName": "-example", "imageUrl": IMAGE}, "pluginName"),
    ({"pluginName": "", "imageUrl": IMAGE}, "pluginName"),
    ({"imageUrl": "localhost/Noetl/Example:1.0"}, "imageUrl"),
    ({"imageUrl": "not an image"}, "imageUrl"),
    ({"imageUrl": IMAGE, "callbackApi": "ftp://example.com/x"}, "callbackApi"),
    ({"imageUrl": IMAGE, "callbackApi": "/relative/path"}, "callbackApi"),
]


@pytest.mark.parametrize(("request_", "field"), BAD_INPUT)
async def test_bad_input_is_named_and_nothing_happens(
    gql: Gql,
    untouched: Callable[[], Awaitable[None]],
    request_: dict[str, str],
    field: str,
) -> None:
    response = await gql(REGISTER, {"input": request_})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    value = request_[field]
    assert error["message"].startswith(f"{field}: {value!r} is not valid; expected ")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    [problem] = error["extensions"]["problems"]
    assert (problem["field"], problem["value"]) == (field, value)
    await untouched()


async def test_a_derived_name_that_is_not_valid_asks_for_one(
    gql: Gql, untouched: Callable[[], Awaitable[None]]
) -> None:
    # The tag makes a name that ends in "_", which no plugin name may.
    response = await gql(REGISTER, {"input": {"imageUrl": "localhost/plugin:1.0_"}})

    [error] = response.json()["errors"]
    assert error["message"].startswith("pluginName: 'plugin-1.0_' is not valid")
    assert error["message"].endswith("so give pluginName")
    await untouched()


async def test_every_bad_field_is_named_at_once(
    gql: Gql, untouched: Callable[[], Awaitable[None]]
) -> None:
    request = {"pluginName": "A", "imageUrl": "B", "callbackApi": "C"}
    response = await gql(REGISTER, {"input": request})

    [error] = response.json()["errors"]
    problems = error["extensions"]["problems"]
    assert [p["field"] for p in problems] == ["imageUrl", "pluginName", "callbackApi"]
    for name in request:
        assert f"{name}: {request[name]!r} is not valid" in error["message"]
    await untouched()


@pytest.mark.parametrize(
    ("query", "variables", "expected"),
    [
        (REGISTER, {"input": {"pluginName": "x"}}, "required field 'imageUrl'"),
        (
            'mutation { registerPlugin(input: {pluginName: "x"}) { refId } }',
            None,
            "required field 'imageUrl'",
        ),
        (
            "mutation { registerPlugin(input: "
            '{imageUrl: "localhost/p:1", colour: "red"}) { refId } }',
            None,
            "'colour'",
        ),
        (REGISTER, None, "'$input'"),
    ],
    ids=["variables lack imageUrl", "literal lacks imageUrl", "unknown field", "none"],
)
async def test_missing_or_unknown_field_is_named_and_nothing_happens(
    gql: Gql,
    untouched: Callable[[], Awaitable[None]],
    query: str,
    variables: dict[str, Any] | None,
    expected: str,
) -> None:
    response = await gql(query, variables)

    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    [error] = body["errors"]
    assert expected in error["message"]
    await untouched()


async def test_failed_publish_is_an_error_and_ends_the_record(
    gql: Gql, js: JetStreamContext
) -> None:
    # Connect the api first: it provisions streams only when it connects.
    assert (await gql("{ plugins { name } }")).json() == {"data": {"plugins": []}}
    await js.delete_stream(topology.EVENTS)

    response = await gql(REGISTER, {"input": {"imageUrl": IMAGE}})

    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == "could not publish the registration request; try again"
    assert error["extensions"]["code"] == "UNAVAILABLE"
    kv = await js.key_value(topology.REGISTRATIONS)
    record = await records.get(kv, error["extensions"]["refId"])
    assert record is not None and record.state == records.FAILED
    assert record.error is not None
    assert record.error.startswith("the registration request could not be published")
    assert await buckets.keys(js, topology.REGISTRATIONS) == [record.ref_id]


async def test_nats_away_is_an_error_and_nothing_is_recorded(
    serve: Callable[..., str],
    client: httpx.AsyncClient,
    untouched: Callable[[], Awaitable[None]],
) -> None:
    nowhere = f"nats://127.0.0.1:{localrun.free_port()}"
    api = serve("api", NATS_URL=nowhere)

    body = {"query": REGISTER, "variables": {"input": {"imageUrl": IMAGE}}}
    response = await client.post(f"{api}/gql", json=body)

    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["message"] == "could not record the registration request; try again"
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert (await client.get(f"{api}/healthz")).json() == {"status": "ok"}
    await untouched()


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("localhost/noetl/example-plugin:1.0", "example-plugin-1.0"),
        ("registry.example:5000/team/http-request:2.1", "http-request-2.1"),
        ("registry.example/team/plugin:latest", "plugin"),
        ("plugin", "plugin"),
        ("plugin:V2@sha256:" + "a" * 64, "plugin-v2"),
    ],
)
def test_requested_derives_the_default_name(image: str, name: str) -> None:
    event = registration.requested({"imageUrl": image, "pluginName": None})
    assert event.plugin_name == name
    assert event.request_source == {"gateway": "API"}
    assert event.callback_api is None


def test_requested_gives_a_new_ref_id_each_time() -> None:
    first, second = (registration.requested({"imageUrl": IMAGE}) for _ in range(2))
    assert first.ref_id != second.ref_id
    assert uuid.UUID(first.ref_id).version == 4
