"""Fixtures of the api's tests: the function served over real HTTP, a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from noetl import topology

Gql = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
def api(serve: Callable[..., str], js: JetStreamContext) -> str:
    """The base URL of the api, its streams and buckets provisioned."""
    return serve("api")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # Longer than the api's own deadline for NATS, so that its answer arrives.
    async with httpx.AsyncClient(timeout=30) as http:
        yield http


@pytest.fixture
def gql(api: str, client: httpx.AsyncClient) -> Gql:
    """POST a GraphQL request to ``/gql``: ``await gql(query, variables)``."""

    async def post(
        query: str, variables: dict[str, Any] | None = None, **options: Any
    ) -> httpx.Response:
        body = {"query": query, "variables": variables}
        return await client.post(f"{api}/gql", json=body, **options)

    return post


@pytest.fixture
def untouched(js: JetStreamContext) -> Callable[[], Awaitable[None]]:
    """``await untouched()`` checks that nothing was published or recorded."""

    async def check() -> None:
        events = await js.stream_info(topology.EVENTS)
        assert events.state.messages == 0, "an event was published"
        records = await js.stream_info(f"KV_{topology.REGISTRATIONS}")
        assert records.state.messages == 0, "a registration was recorded"

    return check
