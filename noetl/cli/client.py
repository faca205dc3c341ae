"""The catalog's GraphQL API, as the command line calls it over httpx."""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from noetl.cli.errors import ApiFailed, ApiUnreachable, BadUsage, GraphQLErrors

REGISTER = """
mutation Register($input: PluginRegistrationRequest!) {
  registerPlugin(input: $input) { refId }
}
"""
PLUGIN_FIELDS = "name imageUrl refId state schema"
PLUGIN = f"query Plugin($name: String!) {{ plugin(name: $name) {{ {PLUGIN_FIELDS} }} }}"
PLUGINS = f"query Plugins {{ plugins {{ {PLUGIN_FIELDS} }} }}"
REGISTRATION = """
query Registration($refId: ID!) {
  registration(refId: $refId) {
    refId pluginName imageUrl callbackApi state error schema updatedAt
  }
}
"""


class Api:
    """A GraphQL client for one endpoint; use it as an async context manager."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadUsage(f"API URL {url!r} is not an http or https URL")
        self.url = url
        self.timeout = timeout
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def execute(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The ``data`` of a GraphQL response; its errors raise GraphQLErrors."""
        try:
            response = await self._http.post(
                self.url,
                json={"query": query, "variables": variables},
                headers={"Accept": "application/json"},
            )
        except httpx.TimeoutException:
            raise ApiFailed(
                self.url, f"did not answer within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise ApiUnreachable(self.url, _reason(exc)) from None

        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("errors"):
            raise GraphQLErrors([_message(error) for error in body["errors"]])
        if not response.is_success:
            snippet = " ".join(response.text.split())[:200]
            raise ApiFailed(
                self.url, f"answered HTTP {response.status_code}: {snippet}"
            )
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise ApiFailed(self.url, "did not answer with a GraphQL response")
        return body["data"]

    async def register_plugin(
        self,
        image_url: str,
        *,
        plugin_name: str | None = None,
        callback_api: str | None = None,
    ) -> str:
        """Submit a registration; its refId once the API accepted it."""
        request: dict[str, Any] = {"imageUrl": image_url}
        if plugin_name:
            request["pluginName"] = plugin_name
        if callback_api:
            request["callbackApi"] = callback_api
        data = await self.execute(REGISTER, {"input": request})
        return str(data["registerPlugin"]["refId"])

    async def plugin(self, name: str) -> dict[str, Any] | None:
        data = await self.execute(PLUGIN, {"name": name})
        return data.get("plugin")

    async def plugins(self) -> list[dict[str, Any]]:
        data = await self.execute(PLUGINS, {})
        return list(data.get("plugins") or [])

    async def registration(self, ref_id: str) -> dict[str, Any] | None:
        data = await self.execute(REGISTRATION, {"refId": ref_id})
        return data.get("registration")


def _message(error: object) -> str:
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(error)


def _reason(exc: httpx.HTTPError) -> str:
    # httpx wraps the OS error; its own text is often just the errno.
    cause = exc.__cause__ or exc.__context__
    text = str(exc) or type(exc).__name__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({cause})"
    return text
