"""POSTing an event to ``K_SINK`` as a binary-mode HTTP CloudEvent.

Tried a few times with backoff while the sink is away or answers 5xx, 408
or 429, then given up and logged, as an ApiServerSource gives up after its
delivery retries; a 4xx is given up at once.
"""

from __future__ import annotations

import logging
import threading

import httpx
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from sources.apiserver.config import Config

log = logging.getLogger("sources.apiserver")

RETRYABLE = {408, 429}
BACKOFF_FIRST, BACKOFF_LIMIT = 0.5, 5.0


class Sink:
    def __init__(self, config: Config, stopping: threading.Event) -> None:
        self.config = config
        self.stopping = stopping
        # A proxy from the environment has no business with a local sink.
        self.http = httpx.Client(timeout=config.request_timeout, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def post(self, event: CloudEvent) -> int | None:
        """POST ``event``; the status that settled it, None if none did."""
        headers, body = to_binary(event)
        for attempt in range(1, self.config.attempts + 1):
            try:
                response = self.http.post(
                    self.config.sink, headers=headers, content=body
                )
            except httpx.HTTPError as exc:
                problem = f"POST to the sink failed: {exc!r}"
            else:
                status = response.status_code
                if status < 300:
                    return status
                if status < 500 and status not in RETRYABLE:
                    log.error(
                        "the sink refused %s: %d %s",
                        event["type"],
                        status,
                        " ".join(response.text.split())[:300],
                    )
                    return status
                problem = f"the sink answered {status}"
            if attempt == self.config.attempts or self.stopping.is_set():
                log.error(
                    "giving up on %s after %d attempts: %s",
                    event["type"],
                    attempt,
                    problem,
                )
                return None
            wait = min(BACKOFF_FIRST * 2 ** (attempt - 1), BACKOFF_LIMIT)
            log.warning("%s; trying again in %.1f s", problem, wait)
            self.stopping.wait(wait)
        return None
