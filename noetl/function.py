"""What every CloudEvent function shares: serving, logging, error mapping.

A handler decorated with :func:`cloud_event` runs with the event's ``refId``
and ``id`` bound to every log line, logs one INFO line when it is done, and
turns the package's errors into the HTTP status the JetStream source acts on:
4xx means the message can never succeed and is dead-lettered, 503 means try
again later.

:func:`serve` is the HTTP side. The functions are served by the
functions-framework in its ``http`` signature rather than ``cloudevent``,
because the latter routes only POST and so leaves no path for a readiness
probe: ``GET /healthz`` answers here without invoking the function, and
every other request is read as a binary or structured CloudEvent.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable

from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent, from_http
from nats.errors import Error as NatsError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from noetl import logs, settings
from noetl.errors import NoetlError, Unavailable

log = logging.getLogger("noetl.function")

Handler = Callable[[CloudEvent], Awaitable[str | None]]


def cloud_event(
    part: str,
) -> Callable[[Handler], Callable[[CloudEvent], Awaitable[None]]]:
    """Wrap a handler of function ``part``; the handler returns what it did."""

    def decorate(handler: Handler) -> Callable[[CloudEvent], Awaitable[None]]:
        @functools.wraps(handler)
        async def run(event: CloudEvent) -> None:
            logs.setup(part, settings.load().log_level)
            data = event.get_data()
            ref_id = data.get("refId") if isinstance(data, dict) else None
            started = time.perf_counter()
            with logs.bound(refId=ref_id, ceId=event["id"], ceType=event["type"]):
                try:
                    outcome = await handler(event)
                except (NatsError, OSError, TimeoutError) as exc:
                    raise _http(Unavailable(f"NATS: {exc!r}"), started) from exc
                except NoetlError as exc:
                    raise _http(exc, started) from exc
                log.info(
                    "handled %s: %s",
                    event["type"],
                    outcome or "done",
                    extra={"ms": round((time.perf_counter() - started) * 1000, 1)},
                )

        return run

    return decorate


def _http(exc: NoetlError, started: float) -> HTTPException:
    """The HTTP answer for ``exc``, logged once."""
    level = logging.WARNING if exc.status >= 500 else logging.ERROR
    log.log(
        level,
        "rejected (%d): %s",
        exc.status,
        exc,
        extra={"ms": round((time.perf_counter() - started) * 1000, 1)},
    )
    headers = {}
    if isinstance(exc, Unavailable) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return HTTPException(exc.status, str(exc), headers)


HEALTH = "/healthz"


async def serve(
    request: Request, handler: Callable[[CloudEvent], Awaitable[None]]
) -> Response:
    """Answer one HTTP request to a CloudEvent function."""
    if request.url.path == HEALTH and request.method in ("GET", "HEAD"):
        return JSONResponse({"status": "ok"})
    if request.method != "POST":
        return JSONResponse(
            {"error": f"{request.method} is not served; POST a CloudEvent"},
            405,
            headers={"Allow": "POST"},
        )

    body = await request.body()
    try:
        event = from_http(dict(request.headers), body)
    except (GenericException, ValueError, TypeError) as exc:
        return JSONResponse({"error": f"not a CloudEvent: {exc}"}, 400)

    try:
        await handler(event)
    except HTTPException as exc:
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)
    return JSONResponse({"status": "done"})
