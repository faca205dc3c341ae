"""GraphQL over HTTP: reading a request, running it, writing the answer.

A request that is not a GraphQL request at all (a body that is not JSON, no
query) is a 400. One that is, but cannot be run (it does not parse or
validate, its variables do not fit) gets an ``errors`` list with 200, as
``application/json`` clients expect; a client that asks for
``application/graphql-response+json`` gets the 400 that media type defines
(GraphQL over HTTP, section "application/graphql-response+json"). A mutation
over GET is refused with 405, since GET must be safe to repeat.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    validate,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.api.resolvers import Context
from functions.api.schema import SCHEMA
from noetl.errors import NoetlError

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"


class BadRequest(NoetlError):
    """The HTTP request does not carry a GraphQL request."""

    status = 400


@dataclass(frozen=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None = None
    operation_name: str | None = None


@dataclass(frozen=True)
class Answer:
    """A GraphQL response body, and whether the request could not be run."""

    body: dict[str, Any]
    rejected: bool = False
    #: A status the answer needs whatever the media type; else 200 or 400.
    status: int | None = None


async def endpoint(request: Request, context: Context) -> Response:
    """The GraphQL endpoint: ``POST`` any operation, ``GET`` queries only."""
    media = media_type(request.headers.get("accept"))
    if request.method not in ("GET", "POST"):
        return _errors(405, f"{request.method} is not allowed", media, "GET, POST")
    try:
        if request.method == "GET":
            graphql_request = from_params(request.query_params)
        else:
            graphql_request = from_body(await request.body())
    except BadRequest as exc:
        return _errors(400, str(exc), media)

    answer = await run(graphql_request, context, read_only=request.method == "GET")
    status = answer.status or (
        400 if answer.rejected and media == GRAPHQL_RESPONSE else 200
    )
    headers = {"Allow": "POST"} if status == 405 else None
    return JSONResponse(answer.body, status, headers, media_type=media)


def from_body(body: bytes) -> GraphQLRequest:
    """The GraphQL request of a ``POST`` body: a JSON object with a query."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object with a query")
    return _request(data.get("query"), data.get("variables"), data.get("operationName"))


def from_params(params: Mapping[str, str]) -> GraphQLRequest:
    """The GraphQL request of a ``GET``: query, variables as JSON, operationName."""
    raw = params.get("variables")
    try:
        variables = json.loads(raw) if raw else None
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"variables is not JSON: {exc}") from None
    return _request(params.get("query"), variables, params.get("operationName"))


def _request(query: Any, variables: Any, operation_name: Any) -> GraphQLRequest:
    if query is None or query == "":
        raise BadRequest("the request has no query")
    if not isinstance(query, str):
        raise BadRequest(f"query must be a string, not {type(query).__name__}")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("variables must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadRequest("operationName must be a string")
    return GraphQLRequest(query, variables, operation_name)


async def run(request: GraphQLRequest, context: Context, read_only: bool) -> Answer:
    """Parse, validate and execute ``request`` against the schema."""
    try:
        document = parse(request.query)
    except GraphQLError as exc:
        return _rejected([exc])
    errors = validate(SCHEMA, document)
    if errors:
        return _rejected(errors)

    operation = get_operation_ast(document, request.operation_name)
    if operation is not None:
        context.operation = _describe(operation)
    if read_only and operation and operation.operation != OperationType.QUERY:
        error = GraphQLError(f"a {operation.operation.value} must be sent with POST")
        return _rejected([error], status=405)

    result = execute(
        SCHEMA,
        document,
        context_value=context,
        variable_values=request.variables,
        operation_name=request.operation_name,
    )
    if inspect.isawaitable(result):
        result = await result
    assert isinstance(result, ExecutionResult)
    # Errors without a path come before execution started: the variables do
    # not fit, or no operation has the name asked for.
    errors = result.errors or []
    if result.data is None and errors and all(e.path is None for e in errors):
        return _rejected(errors)
    return Answer(dict(result.formatted))


def _describe(operation: OperationDefinitionNode) -> str:
    fields = (
        selection.name.value
        for selection in operation.selection_set.selections
        if isinstance(selection, FieldNode)
    )
    return f"{operation.operation.value} {','.join(fields)}"


def _rejected(errors: list[GraphQLError], status: int | None = None) -> Answer:
    # A request that could not be run has no data, not even null.
    return Answer({"errors": [e.formatted for e in errors]}, True, status)


def _errors(
    status: int, message: str, media: str, allow: str | None = None
) -> Response:
    headers = {"Allow": allow} if allow else None
    return JSONResponse({"errors": [{"message": message}]}, status, headers, media)


def media_type(accept: str | None) -> str:
    """``application/graphql-response+json`` when ``Accept`` prefers it.

    Without an Accept header, or when it prefers ``application/json`` or
    accepts anything, the answer is ``application/json``, which every
    client before the GraphQL-over-HTTP media type understands.
    """
    quality = {GRAPHQL_RESPONSE: 0.0, JSON: 0.0}
    for media_range in (accept or "").split(","):
        name, *params = (part.strip() for part in media_range.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        name = name.lower()
        if name == GRAPHQL_RESPONSE:
            quality[GRAPHQL_RESPONSE] = max(quality[GRAPHQL_RESPONSE], q)
        elif name in (JSON, "application/*", "*/*"):
            quality[JSON] = max(quality[JSON], q)
    best = quality[GRAPHQL_RESPONSE]
    return GRAPHQL_RESPONSE if best > 0 and best >= quality[JSON] else JSON
