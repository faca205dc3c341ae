"""plugin, plugins and registration, read from the buckets the flow writes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from nats.js import JetStreamContext

from noetl import records, topology

Gql = Callable[..., Awaitable[httpx.Response]]

PLUGIN = "plugin(name: $name) { name imageUrl refId state schema }"
SCHEMA = {"type": "object", "properties": {"url": {"type": "string"}}}


async def _registered(
    js: JetStreamContext, name: str, image: str, state: str, **fields: Any
) -> records.Registration:
    """A registration record and the plugin entry it wrote, as the flow leaves them."""
    record = records.Registration(
        ref_id=str(uuid.uuid4()),
        plugin_name=name,
        image_url=image,
        state=state,
        **fields,
    )
    await records.create(await js.key_value(topology.REGISTRATIONS), record)
    plugin = records.Plugin(name=name, image_url=image, ref_id=record.ref_id)
    await records.put_plugin(await js.key_value(topology.PLUGINS), plugin)
    return record


async def test_plugin_shows_the_latest_registration(
    gql: Gql, js: JetStreamContext
) -> None:
    await _registered(js, "http-request", "localhost/http-request:1", records.FAILED)
    latest = await _registered(
        js, "http-request", "localhost/http-request:2", records.SUCCESS, schema=SCHEMA
    )

    response = await gql(
        f"query($name: String!) {{ {PLUGIN} }}", {"name": "http-request"}
    )

    assert response.json() == {
        "data": {
            "plugin": {
                "name": "http-request",
                "imageUrl": "localhost/http-request:2",
                "refId": latest.ref_id,
                "state": "SUCCESS",
                "schema": SCHEMA,
            }
        }
    }


async def test_plugin_that_does_not_exist_is_null(gql: Gql) -> None:
    response = await gql(f"query($name: String!) {{ {PLUGIN} }}", {"name": "absent"})
    assert response.json() == {"data": {"plugin": None}}


async def test_plugin_with_a_name_that_is_not_valid_is_an_error(gql: Gql) -> None:
    response = await gql(f"query($name: String!) {{ {PLUGIN} }}", {"name": "a*b"})

    body = response.json()
    assert body["data"] == {"plugin": None}
    [error] = body["errors"]
    assert error["message"].startswith("name: 'a*b' is not valid; expected 1 to 63")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_plugin_whose_registration_has_no_record_is_an_error(
    gql: Gql, js: JetStreamContext
) -> None:
    ref_id = str(uuid.uuid4())
    plugin = records.Plugin(name="orphan", image_url="localhost/o:1", ref_id=ref_id)
    await records.put_plugin(await js.key_value(topology.PLUGINS), plugin)

    response = await gql(f"query($name: String!) {{ {PLUGIN} }}", {"name": "orphan"})

    body = response.json()
    assert body["data"] == {"plugin": None}
    [error] = body["errors"]
    assert error["message"] == f"no registration with refId {ref_id!r}"
    assert error["extensions"] == {"code": "NOT_FOUND", "refId": ref_id}


async def test_plugins_lists_every_plugin_by_name(
    gql: Gql, js: JetStreamContext
) -> None:
    assert (await gql("{ plugins { name } }")).json() == {"data": {"plugins": []}}
    second = await _registered(js, "second", "localhost/second:1", records.RECEIVED)
    first = await _registered(
        js, "first", "localhost/first:1", records.SUCCESS, schema=SCHEMA
    )
    orphan = records.Plugin(name="orphan", image_url="localhost/o:1", ref_id="x")
    await records.put_plugin(await js.key_value(topology.PLUGINS), orphan)

    response = await gql("{ plugins { name imageUrl refId state schema } }")

    assert response.json() == {
        "data": {
            "plugins": [
                {
                    "name": "first",
                    "imageUrl": "localhost/first:1",
                    "refId": first.ref_id,
                    "state": "SUCCESS",
                    "schema": SCHEMA,
                },
                {
                    "name": "second",
                    "imageUrl": "localhost/second:1",
                    "refId": second.ref_id,
                    "state": "RECEIVED",
                    "schema": None,
                },
            ]
        }
    }


async def test_plugins_leaves_out_a_deleted_plugin(
    gql: Gql, js: JetStreamContext
) -> None:
    await _registered(js, "kept", "localhost/kept:1", records.SUCCESS)
    await _registered(js, "gone", "localhost/gone:1", records.SUCCESS)
    await (await js.key_value(topology.PLUGINS)).delete("gone")

    response = await gql("{ plugins { name } }")

    assert response.json() == {"data": {"plugins": [{"name": "kept"}]}}


REGISTRATION = """
query($refId: ID!) {
  registration(refId: $refId) {
    refId pluginName imageUrl callbackApi state error schema updatedAt
  }
}
"""


async def test_registration_shows_the_record(gql: Gql, js: JetStreamContext) -> None:
    record = await _registered(
        js,
        "broken",
        "localhost/broken:1",
        records.FAILED,
        callback_api="http://127.0.0.1:9/cb",
        error="the run exited with 1",
    )

    response = await gql(REGISTRATION, {"refId": record.ref_id})

    assert response.json() == {
        "data": {
            "registration": {
                "refId": record.ref_id,
                "pluginName": "broken",
                "imageUrl": "localhost/broken:1",
                "callbackApi": "http://127.0.0.1:9/cb",
                "state": "FAILED",
                "error": "the run exited with 1",
                "schema": None,
                "updatedAt": record.updated_at,
            }
        }
    }


async def test_registration_after_register_plugin_is_received(gql: Gql) -> None:
    mutation = (
        'mutation { registerPlugin(input: {imageUrl: "localhost/p:1"}) { refId } }'
    )
    ref_id = (await gql(mutation)).json()["data"]["registerPlugin"]["refId"]

    response = await gql(REGISTRATION, {"refId": ref_id.upper()})

    registration = response.json()["data"]["registration"]
    assert registration["refId"] == ref_id
    assert registration["pluginName"] == "p-1"
    assert registration["state"] == "RECEIVED"
    assert registration["callbackApi"] is None


async def test_registration_that_does_not_exist_is_null(gql: Gql) -> None:
    response = await gql(REGISTRATION, {"refId": str(uuid.uuid4())})
    assert response.json() == {"data": {"registration": None}}


async def test_registration_with_a_ref_id_that_is_not_valid_is_an_error(
    gql: Gql,
) -> None:
    response = await gql(REGISTRATION, {"refId": "not-a-uuid"})

    body = response.json()
    assert body["data"] == {"registration": None}
    [error] = body["errors"]
    assert error["message"] == (
        "refId: 'not-a-uuid' is not valid; expected a UUID4 in its 36-character form"
    )
    assert error["path"] == ["registration"]
