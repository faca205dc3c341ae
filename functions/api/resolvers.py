"""The root fields of the schema: registerPlugin, plugin, plugins, registration.

Each resolver answers with plain dicts keyed by the schema's field names. A
failure the package knows becomes a GraphQL error whose message names the
problem and whose ``extensions.code`` says what kind it is; an unexpected one
is logged with its traceback and answered without internals.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from graphql import GraphQLError, GraphQLResolveInfo

from functions.api import backend, registration
from noetl import buckets, connection, logs, records, topology, validation
from noetl.errors import InvalidInput, NoetlError, RegistrationNotFound, Unavailable

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Context:
    """One request's context: what its log line says beyond method and path."""

    #: The operation's type and root fields, such as ``mutation registerPlugin``.
    operation: str | None = None
    ref_id: str | None = None


def answers(resolve: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Wrap a resolver so that every failure is a GraphQL error worth reading."""

    @functools.wraps(resolve)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await resolve(*args, **kwargs)
        except NoetlError as exc:
            raise graphql_error(exc) from exc
        except Exception as exc:
            log.exception("%s failed", resolve.__name__)
            raise GraphQLError(
                "internal error; the api's log has the details",
                extensions={"code": "INTERNAL"},
            ) from exc

    return run


#: The ``extensions.code`` of each kind of failure; anything else is INTERNAL.
CODES: tuple[tuple[type[NoetlError], str], ...] = (
    (InvalidInput, "BAD_USER_INPUT"),
    (registration.InvalidRequest, "BAD_USER_INPUT"),
    (Unavailable, "UNAVAILABLE"),
    (RegistrationNotFound, "NOT_FOUND"),
)


def graphql_error(exc: NoetlError) -> GraphQLError:
    """The GraphQL error a requester gets for ``exc``."""
    code = next((code for cls, code in CODES if isinstance(exc, cls)), "INTERNAL")
    extensions: dict[str, Any] = {"code": code}
    problems = [exc] if isinstance(exc, InvalidInput) else getattr(exc, "problems", [])
    if problems:
        extensions["problems"] = [
            {"field": p.field, "value": p.value, "accepted": p.accepted}
            for p in problems
        ]
    ref_id = getattr(exc, "ref_id", None)
    if ref_id is not None:
        extensions["refId"] = ref_id
    return GraphQLError(str(exc), extensions=extensions)


@answers
async def resolve_register_plugin(
    _root: None, info: GraphQLResolveInfo, input: dict[str, Any]
) -> dict[str, Any]:
    event = registration.requested(input)
    info.context.ref_id = event.ref_id
    with logs.bound(refId=event.ref_id):
        await registration.register(event)
    return {"refId": event.ref_id}


@answers
async def resolve_registration(
    _root: None, info: GraphQLResolveInfo, refId: str
) -> dict[str, Any] | None:
    ref_id = validation.ref_id(refId).lower()
    info.context.ref_id = ref_id
    with backend.answering("read the registration"):
        kv = await connection.bucket(topology.REGISTRATIONS)
        record = await records.get(kv, ref_id)
    if record is None:
        return None
    return {
        "refId": record.ref_id,
        "pluginName": record.plugin_name,
        "imageUrl": record.image_url,
        "callbackApi": record.callback_api,
        "state": record.state.upper(),
        "error": record.error,
        "schema": record.schema,
        "updatedAt": record.updated_at,
    }


@answers
async def resolve_plugin(
    _root: None, info: GraphQLResolveInfo, name: str
) -> dict[str, Any] | None:
    validation.plugin_name(name, field="name")
    with backend.answering("read the plugin"):
        plugins = await connection.bucket(topology.PLUGINS)
        entry = await records.get_plugin(plugins, name)
        if entry is None:
            return None
        found = await _latest(entry)
    if found is None:
        raise RegistrationNotFound(entry.ref_id)
    info.context.ref_id = entry.ref_id
    return found


@answers
async def resolve_plugins(
    _root: None, info: GraphQLResolveInfo
) -> list[dict[str, Any]]:
    """Every plugin, by name; one whose registration has no record is left out."""
    with backend.answering("read the plugins"):
        js = await connection.jetstream()
        names = sorted(await buckets.keys(js, topology.PLUGINS))
        kv = await connection.bucket(topology.PLUGINS)
        entries = await asyncio.gather(*(records.get_plugin(kv, n) for n in names))
        found = await asyncio.gather(*(_latest(e) for e in entries if e is not None))
    return [plugin for plugin in found if plugin is not None]


async def _latest(entry: records.Plugin) -> dict[str, Any] | None:
    """A plugin with the state and schema of the registration that wrote it."""
    kv = await connection.bucket(topology.REGISTRATIONS)
    record = await records.get(kv, entry.ref_id)
    if record is None:
        log.warning(
            "plugin %s names refId %s, which has no record", entry.name, entry.ref_id
        )
        return None
    return {
        "name": entry.name,
        "imageUrl": entry.image_url,
        "refId": entry.ref_id,
        "state": record.state.upper(),
        "schema": record.schema,
    }


#: The resolver of each root field, by type and field name.
ROOT: dict[str, dict[str, Callable[..., Awaitable[Any]]]] = {
    "Mutation": {"registerPlugin": resolve_register_plugin},
    "Query": {
        "plugin": resolve_plugin,
        "plugins": resolve_plugins,
        "registration": resolve_registration,
    },
}
