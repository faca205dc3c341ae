"""Calling the requester back: one POST per outcome, retried by redelivery.

The notifier never loops on a failing endpoint. A callback that could not be
delivered answers the JetStream source with 503 (and the requester's
``Retry-After``), so the source naks the 5.1 command with a backoff and the
retry survives a restart of this process. A 4xx from the requester will not
get better and dead-letters the command at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx

from noetl import records, settings
from noetl.errors import CallbackRefused, Unavailable
from noetl.models import ReportPluginRegistration

log = logging.getLogger(__name__)

# Statuses after which the same POST may succeed later.
RETRYABLE = {408, 425, 429}

#: The process's clients, one per scheme, each created on first use.
_clients: dict[str, httpx.AsyncClient] = {}


def client(url: str) -> httpx.AsyncClient:
    """The client for ``url``: one for plain HTTP, one for HTTPS.

    Loading the CA bundle for TLS takes about 30 ms, a tenth of the
    notifier's cold start, and a callback inside the cluster over http://
    never needs it: the plain-HTTP client is made without one. It follows no
    redirects, so it never reaches an https:// URL unverified.
    """
    scheme = "https" if url.lower().startswith("https:") else "http"
    found = _clients.get(scheme)
    if found is None:
        timeout = httpx.Timeout(settings.load().callback_timeout)
        found = httpx.AsyncClient(timeout=timeout, verify=scheme == "https")
        _clients[scheme] = found
    return found


async def close() -> None:
    """Close every client: for tests, as a process simply exits."""
    while _clients:
        await _clients.popitem()[1].aclose()


def idempotency_key(report: ReportPluginRegistration) -> str:
    return f"{report.ref_id}:{report.state}"


async def deliver(url: str, report: ReportPluginRegistration) -> int:
    """POST ``report`` to ``url``; the status on success, else raises."""
    headers = {"Idempotency-Key": idempotency_key(report)}
    try:
        response = await client(url).post(url, json=report.to_data(), headers=headers)
    except httpx.HTTPError as exc:
        raise Unavailable(f"callback {url} could not be reached: {exc!r}") from exc

    if response.is_success:
        return response.status_code
    if response.status_code in RETRYABLE or response.status_code >= 500:
        raise Unavailable(
            f"callback {url} answered {response.status_code}",
            retry_after=_retry_after(response),
        )
    raise CallbackRefused(url, response.status_code)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def delivered(record: records.Registration, state: str) -> bool:
    """Whether this outcome's callback is done already."""
    done = record.callback or {}
    return bool(done.get("state") == state and done.get("done"))


def mark(
    state: str, status: int | None, note: str
) -> Callable[[records.Registration], bool]:
    """A record change that notes the callback as done for ``state``."""

    def change(record: records.Registration) -> bool:
        if delivered(record, state):
            return False
        record.callback = {
            "state": state,
            "status": status,
            "done": True,
            "note": note,
            "at": records.now(),
        }
        return True

    return change
