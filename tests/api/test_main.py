"""The paths the api serves besides GraphQL: the probe, and nothing else."""

from __future__ import annotations

import httpx


async def test_healthz_answers_ok(api: str, client: httpx.AsyncClient) -> None:
    response = await client.get(f"{api}/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_unknown_paths_are_404(api: str, client: httpx.AsyncClient) -> None:
    for path in ("/", "/gql/extra", "/graphiql"):
        response = await client.post(f"{api}{path}", json={"query": "{ plugins }"})
        assert response.status_code == 404, path
        [error] = response.json()["errors"]
        assert error["message"] == f"no such path {path!r}; GraphQL is served at /gql"
