"""GraphQL over HTTP: methods, bodies, media types and request errors."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import httpx
import pytest

from functions.api import transport

Gql = Callable[..., Awaitable[httpx.Response]]

MUTATION = 'mutation { registerPlugin(input: {imageUrl: "localhost/p:1"}) { refId } }'


@pytest.mark.parametrize("path", ["/gql", "/graphql"])
async def test_get_answers_queries(
    api: str, client: httpx.AsyncClient, path: str
) -> None:
    params = {
        "query": "query Named($name: String!) { plugin(name: $name) { name } }",
        "variables": json.dumps({"name": "absent"}),
        "operationName": "Named",
    }
    response = await client.get(f"{api}{path}", params=params)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"data": {"plugin": None}}


async def test_get_refuses_a_mutation(
    api: str, client: httpx.AsyncClient, untouched: Callable[[], Awaitable[None]]
) -> None:
    response = await client.get(f"{api}/gql", params={"query": MUTATION})

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    [error] = response.json()["errors"]
    assert error["message"] == "a mutation must be sent with POST"
    await untouched()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not JSON: "),
        (b"\xff\xfe", "the body is not JSON: "),
        (b"[]", "the body must be a JSON object with a query"),
        (b"{}", "the request has no query"),
        (b'{"query": ""}', "the request has no query"),
        (b'{"query": 42}', "query must be a string, not int"),
        (b'{"query": "{ plugins { name } }", "variables": [1]}', "variables must be"),
        (b'{"query": "{ plugins { name } }", "operationName": 1}', "operationName"),
    ],
)
async def test_a_body_that_is_no_graphql_request_is_400(
    api: str,
    client: httpx.AsyncClient,
    untouched: Callable[[], Awaitable[None]],
    body: bytes,
    message: str,
) -> None:
    headers = {"content-type": "application/json"}
    response = await client.post(f"{api}/gql", content=body, headers=headers)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    [error] = response.json()["errors"]
    assert error["message"].startswith(message)
    await untouched()


async def test_get_without_query_is_400(api: str, client: httpx.AsyncClient) -> None:
    response = await client.get(f"{api}/gql")

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "the request has no query"}]}


async def test_other_methods_are_405(api: str, client: httpx.AsyncClient) -> None:
    response = await client.put(f"{api}/gql", json={"query": "{ plugins { name } }"})

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert "errors" in response.json()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{ plugins { name }", "Syntax Error: Expected Name, found <EOF>."),
        ("{ nope }", "Cannot query field 'nope' on type 'Query'."),
        ("{ plugins }", "Field 'plugins' of type '[Plugin!]!' must have a selection"),
    ],
    ids=["does not parse", "unknown field", "does not validate"],
)
async def test_a_query_that_cannot_run_is_an_error_list(
    gql: Gql, query: str, message: str
) -> None:
    response = await gql(query)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert "data" not in body
    [error] = body["errors"]
    assert error["message"].startswith(message)
    assert error["locations"]


async def test_graphql_response_media_type_when_accept_asks(gql: Gql) -> None:
    accept = {"accept": "application/graphql-response+json, application/json;q=0.9"}

    ok = await gql("{ plugins { name } }", headers=accept)
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "application/graphql-response+json"
    assert ok.json() == {"data": {"plugins": []}}

    # That media type answers a request it cannot run with a 400 (GraphQL
    # over HTTP), but a field error, with data, with 200.
    bad = await gql("{ nope }", headers=accept)
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/graphql-response+json"
    assert "errors" in bad.json()
    field_error = await gql('{ registration(refId: "x") { state } }', headers=accept)
    assert field_error.status_code == 200
    assert field_error.json()["data"] == {"registration": None}


@pytest.mark.parametrize(
    ("operation_name", "message"),
    [
        (None, "Must provide operation name"),
        ("C", "Unknown operation named 'C'."),
    ],
)
async def test_an_operation_that_cannot_be_chosen_is_an_error_list(
    api: str, client: httpx.AsyncClient, operation_name: str | None, message: str
) -> None:
    query = "query A { plugins { name } } query B { plugins { name } }"
    body = {"query": query, "operationName": operation_name}
    response = await client.post(f"{api}/gql", json=body)

    assert response.status_code == 200
    assert "data" not in response.json()
    [error] = response.json()["errors"]
    assert error["message"].startswith(message)


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (None, transport.JSON),
        ("", transport.JSON),
        ("*/*", transport.JSON),
        ("application/json", transport.JSON),
        ("text/html", transport.JSON),
        ("application/graphql-response+json", transport.GRAPHQL_RESPONSE),
        ("application/graphql-response+json, */*", transport.GRAPHQL_RESPONSE),
        (
            "application/json, application/graphql-response+json;q=0.5",
            transport.JSON,
        ),
        (
            "application/json;q=0.9, Application/GraphQL-Response+JSON",
            transport.GRAPHQL_RESPONSE,
        ),
        ("application/graphql-response+json;q=0", transport.JSON),
        ("application/graphql-response+json;q=oops", transport.JSON),
    ],
)
def test_media_type(accept: str | None, media: str) -> None:
    assert transport.media_type(accept) == media


def test_from_params_reads_variables_as_json() -> None:
    request = transport.from_params(
        {"query": "{ x }", "variables": '{"a": 1}', "operationName": "Op"}
    )
    assert request == transport.GraphQLRequest("{ x }", {"a": 1}, "Op")
    with pytest.raises(transport.BadRequest, match="variables is not JSON"):
        transport.from_params({"query": "{ x }", "variables": "{"})


def test_from_body_takes_null_variables_and_operation_name() -> None:
    body = b'{"query": "{ x }", "variables": null, "operationName": null}'
    assert transport.from_body(body) == transport.GraphQLRequest("{ x }")
