"""Steps 1.1 and 1.2: a registration request, recorded and published.

The requester gets its refId only once JetStream has acknowledged the 1.2
event. Anything that goes wrong before that is answered with an error, and
the record, if one was written, is ended as `failed`: no registration is left
behind that nothing will ever move forward.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from nats.js.kv import KeyValue

from functions.api import backend
from noetl import connection, records, topology, validation
from noetl.errors import InvalidInput, NoetlError, Unavailable
from noetl.messages import publish
from noetl.models import RegistrationRequested

log = logging.getLogger(__name__)

FUNCTION = "api"
REQUEST_SOURCE = {"gateway": "API"}


class InvalidRequest(NoetlError):
    """A registration request with one or more fields that are not accepted."""

    status = 400

    def __init__(self, problems: list[InvalidInput]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(problem) for problem in problems))


class RequestNotAccepted(Unavailable):
    """The request could not be recorded or published; nothing will run for it."""

    def __init__(self, ref_id: str, message: str) -> None:
        self.ref_id = ref_id
        super().__init__(message)


def requested(fields: Mapping[str, Any]) -> RegistrationRequested:
    """The 1.2 event for a request's input; every bad field is named at once."""
    problems: list[InvalidInput] = []

    def valid(rule: Callable[[Any], str], value: Any) -> str | None:
        try:
            return rule(value)
        except InvalidInput as exc:
            problems.append(exc)
            return None

    image_url = valid(validation.image_url, fields.get("imageUrl"))
    plugin_name = fields.get("pluginName")
    if plugin_name is not None:
        plugin_name = valid(validation.plugin_name, plugin_name)
    elif image_url is not None:
        plugin_name = valid(validation.default_plugin_name, image_url)
    callback_api = fields.get("callbackApi")
    if callback_api is not None:
        callback_api = valid(validation.callback_api, callback_api)
    if problems:
        raise InvalidRequest(problems)

    assert plugin_name is not None and image_url is not None
    return RegistrationRequested(
        ref_id=str(uuid.uuid4()),
        plugin_name=plugin_name,
        image_url=image_url,
        request_source=dict(REQUEST_SOURCE),
        callback_api=callback_api,
    )


async def register(event: RegistrationRequested) -> None:
    """Record the registration and publish ``event``; return once it is acked."""
    with backend.answering("record the registration request"):
        kv = await connection.bucket(topology.REGISTRATIONS)
        js = await connection.jetstream()

    record = records.Registration(
        ref_id=event.ref_id,
        plugin_name=event.plugin_name,
        image_url=event.image_url,
        callback_api=event.callback_api,
        request_source=event.request_source,
    )
    try:
        await records.create(kv, record)
    except backend.NATS_ERRORS as exc:
        # A create that timed out may have been stored all the same.
        raise await _not_accepted(kv, event.ref_id, "record", "recorded", exc) from exc

    try:
        await publish(js, topology.SUBJECT_API, event, FUNCTION)
    except backend.NATS_ERRORS as exc:
        raise await _not_accepted(
            kv, event.ref_id, "publish", "published", exc
        ) from exc


async def _not_accepted(
    kv: KeyValue, ref_id: str, verb: str, participle: str, exc: Exception
) -> RequestNotAccepted:
    """End the record as `failed`, if there is one, and say what to answer."""
    error = f"the registration request could not be {participle}: "
    error += backend.describe(exc)
    log.warning("registration failed: %s", error)
    try:
        await records.advance(kv, ref_id, records.FAILED, error=error)
    except backend.NATS_ERRORS as again:
        # Then the record stays `received` until its deadline ends it.
        log.error("could not mark the registration failed: %s", backend.describe(again))
    return RequestNotAccepted(
        ref_id, f"could not {verb} the registration request; try again"
    )
