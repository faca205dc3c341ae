"""The GraphQL client: what it sends and how each kind of failure reads."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from noetl import localrun
from noetl.cli.client import Api
from noetl.cli.errors import ApiFailed, ApiUnreachable, GraphQLErrors

URL = "http://api.test/gql"
REF = "0b7c6f0e-5a43-4e5e-9a55-2f8a3a1e9f10"


@respx.mock
async def test_register_sends_only_the_fields_given() -> None:
    route = respx.post(URL).respond(json={"data": {"registerPlugin": {"refId": REF}}})
    async with Api(URL) as api:
        assert await api.register_plugin("localhost/p:1") == REF
        await api.register_plugin(
            "localhost/p:1", plugin_name="p", callback_api="http://c/"
        )
    first, second = (json.loads(call.request.content) for call in route.calls)
    assert first["variables"] == {"input": {"imageUrl": "localhost/p:1"}}
    assert second["variables"]["input"] == {
        "imageUrl": "localhost/p:1",
        "pluginName": "p",
        "callbackApi": "http://c/",
    }
    assert "registerPlugin" in first["query"]


@respx.mock
async def test_a_missing_plugin_is_none() -> None:
    respx.post(URL).respond(json={"data": {"plugin": None}})
    async with Api(URL) as api:
        assert await api.plugin("nope") is None


@respx.mock
async def test_every_graphql_error_message_is_kept() -> None:
    respx.post(URL).respond(
        json={"data": None, "errors": [{"message": "first"}, {"message": "second"}]}
    )
    async with Api(URL) as api:
        with pytest.raises(GraphQLErrors) as raised:
            await api.plugins()
    assert raised.value.messages == ["first", "second"]
    assert str(raised.value) == "first\nsecond"


@respx.mock
async def test_an_answer_that_is_not_graphql() -> None:
    respx.post(URL).respond(502, text="<html>bad gateway</html>")
    async with Api(URL) as api:
        with pytest.raises(ApiFailed, match="answered HTTP 502: <html>bad gateway"):
            await api.plugins()


@respx.mock
async def test_an_answer_without_data() -> None:
    respx.post(URL).respond(json={"hello": "world"})
    async with Api(URL) as api:
        with pytest.raises(ApiFailed, match="not answer with a GraphQL response"):
            await api.plugins()


@respx.mock
async def test_a_slow_api() -> None:
    respx.post(URL).mock(side_effect=httpx.ReadTimeout("slow"))
    async with Api(URL, timeout=0.5) as api:
        with pytest.raises(ApiFailed, match=r"did not answer within 0\.5 s"):
            await api.plugins()


async def test_nothing_listening() -> None:
    url = f"http://127.0.0.1:{localrun.free_port()}/gql"
    async with Api(url) as api:
        with pytest.raises(ApiUnreachable, match=f"cannot reach the API at {url}"):
            await api.plugins()
