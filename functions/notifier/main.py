"""Step 5.1: the notifier, the core `http-request` plugin.

Fed by the JetStream source with the `plugin.noetl-http-request` commands. It
POSTs the report to the registration's callbackApi once per outcome; a
registration without one is noted as having nobody to call.
"""

from __future__ import annotations

import functions_framework.aio
from cloudevents.http import CloudEvent
from starlette.requests import Request
from starlette.responses import Response

from functions.notifier import callback
from noetl import connection, function, records, topology
from noetl.errors import RegistrationNotFound
from noetl.messages import expect
from noetl.models import ReportPluginRegistration


@function.cloud_event("notifier")
async def on_event(event: CloudEvent) -> str:
    report = expect(event, ReportPluginRegistration)
    kv = await connection.bucket(topology.REGISTRATIONS)
    record = await records.get(kv, report.ref_id)
    if record is None:
        raise RegistrationNotFound(report.ref_id)
    if callback.delivered(record, report.state):
        return f"skipped: {report.state} was called back already"

    if not record.callback_api:
        await records.update(
            kv, report.ref_id, callback.mark(report.state, None, "none")
        )
        return "no callbackApi: nobody to call"

    status = await callback.deliver(record.callback_api, report)
    await records.update(
        kv, report.ref_id, callback.mark(report.state, status, "delivered")
    )
    return f"called back {record.callback_api}: {status}"


@functions_framework.aio.http
async def handle(request: Request) -> Response:
    return await function.serve(request, on_event)
