"""Job events from a Knative ApiServerSource: how a registration Job ended.

An ApiServerSource in Resource mode sends each change of a watched Job as a
CloudEvent whose data is the Job itself, so the catalog learns how every run
ended without a long-lived watcher of its own. ``add`` and ``update`` events
are read; ``delete`` is not (a finished Job is removed by its TTL, and one
deleted before it ended is caught by its registration's deadline timer, which
the dispatcher sets).

A failed Job is a failure fact at once. A complete one starts the grace
period: a timer delivers a CheckRegistration after it (:mod:`checks`), and
a registration still not final by then has failed.

ApiServerSource gives every send a new random id and sends again on every
change of a Job, so a repeat is caught by the registration record (a final
one is left alone), by the Failed event's message id ``<refId>:4.1:failed``
and by the dispatcher's compare-and-set, never by the event id. A Job
without our labels, or whose refId has no registration, is acknowledged and
ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from cloudevents.http import CloudEvent

from functions.catalog import facts
from functions.catalog.jobs import jobspec
from noetl import connection, logs, records, settings, timers, topology, validation
from noetl.errors import InvalidInput, InvalidPayload
from noetl.models import CheckRegistration

log = logging.getLogger(__name__)

PREFIX = "dev.knative.apiserver.resource."
ADD = PREFIX + "add"
UPDATE = PREFIX + "update"
DELETE = PREFIX + "delete"

FAILED = "Failed"
COMPLETE = "Complete"

#: What a Failed condition's reason means for the registration. Filled in
#: with ``job`` ("Job <namespace>/<name>"), ``image``, ``deadline``, ``limit``.
FAILURES = {
    "PodFailurePolicy": "the plugin exited non-zero in {job}",
    "BackoffLimitExceeded": (
        "the plugin's pod in {job} failed more often than its backoffLimit "
        "({limit}) allows"
    ),
    "DeadlineExceeded": (
        "{job} did not finish within its activeDeadlineSeconds ({deadline} s) "
        "and was stopped; an image that cannot be pulled shows this way too, so "
        "check that {image} exists and that the cluster can pull it "
        "(imagePullSecrets)"
    ),
}
OTHER_FAILURE = "{job} failed"


async def changed(event: CloudEvent) -> str:
    """A Job was added or changed: report it if it ended."""
    job = _job(event.get_data())
    where = _where(job)
    ref_id = _ref_id(job)
    if ref_id is None:
        log.info("not a registration Job: %s", where)
        return f"ignored: {where} is not a registration Job"
    logs.bind(refId=ref_id)

    ended = _ended(job)
    if ended is None:
        return f"ignored: {where} has not ended"
    kv = await connection.bucket(topology.REGISTRATIONS)
    record = await records.get(kv, ref_id)
    if record is None:
        log.info("%s names refId %s, which has no registration", where, ref_id)
        return "ignored: no registration with this refId"
    if record.final:
        return f"ignored: registration already {record.state}"

    if ended["type"] == FAILED:
        reason = failure_reason(job, ended, record.image_url)
        await facts.publish_failed(facts.failure(record, reason))
        return f"{where} failed: reported"

    grace = settings.load().report_grace
    check = CheckRegistration(
        ref_id=record.ref_id,
        plugin_name=record.plugin_name,
        image_url=record.image_url,
        reason="grace",
        error=facts.silence(grace),
    )
    at = await timers.schedule(
        await connection.jetstream(), check, after=grace, function=facts.FUNCTION
    )
    return f"{where} complete: checking for the report at {at:%H:%M:%S}"


async def deleted(event: CloudEvent) -> str:
    """A Job was deleted: how it ended was told by the events before this one."""
    return f"ignored: {_where(_job(event.get_data()))} was deleted"


def failure_reason(job: dict[str, Any], condition: dict[str, Any], image: str) -> str:
    """Why the registration failed, from the Job's Failed condition."""
    # TODO: the reason does not quote the plugin's last lines of output, as
    # the process backend's does, so a plugin author must read the pod's
    # status or logs; quoting them needs a pod lookup per failure and list on
    # pods in the RBAC. It can go when the catalog reads the terminated
    # container's message, which FallbackToLogsOnError fills with those lines.
    spec = job.get("spec") or {}
    reason = str(condition.get("reason") or "no reason given")
    text = FAILURES.get(reason, OTHER_FAILURE).format(
        job=_where(job),
        image=image,
        deadline=spec.get("activeDeadlineSeconds", "?"),
        limit=spec.get("backoffLimit", "?"),
    )
    message = str(condition.get("message") or "").strip()
    return f"{text} ({reason}: {message})" if message else f"{text} ({reason})"


def _job(data: object) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
        raise InvalidPayload("a Job event's data must be the Job as a JSON object")
    return data


def _where(job: dict[str, Any]) -> str:
    metadata = job["metadata"]
    return f"Job {metadata.get('namespace', '?')}/{metadata.get('name', '?')}"


def _ref_id(job: dict[str, Any]) -> str | None:
    """The refId of a Job we labelled, else None."""
    labels = job["metadata"].get("labels") or {}
    if labels.get(jobspec.LABEL_MANAGED_BY) != jobspec.MANAGED_BY:
        return None
    try:
        return validation.ref_id(labels.get(jobspec.LABEL_REF_ID))
    except InvalidInput:
        return None


def _ended(job: dict[str, Any]) -> dict[str, Any] | None:
    """The Job's Failed or Complete condition, if it holds."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if (
            isinstance(condition, dict)
            and condition.get("type") in (FAILED, COMPLETE)
            and condition.get("status") == "True"
        ):
            return condition
    return None
