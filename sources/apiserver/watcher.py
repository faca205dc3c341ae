"""List, then watch, the labelled Jobs, and hand each change on.

The loop an informer runs: list the Jobs (each one an ``add``, so that a
change missed while nobody watched is still told), watch from the list's
resourceVersion, and when the watch ends open it again from the last
version seen. A version the API has forgotten (410 Gone) means listing
again; an API that is away means trying again with backoff. Synchronous, as
the client is: it runs in a thread of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from functions.catalog.jobs.cluster import Cluster
from sources.apiserver.config import Config

log = logging.getLogger("sources.apiserver")

#: Seconds between tries while the API is away, doubled up to the limit.
RETRY_FIRST, RETRY_LIMIT = 0.5, 10.0
#: How much longer than a watch's own timeout its read may take.
READ_MARGIN = 30.0
GONE = 410

Deliver = Callable[[str, dict[str, Any]], None]


class Watcher:
    """Feeds ``deliver(change, job)`` until :meth:`stop`; calls ``on_open``
    when the first watch is open."""

    def __init__(
        self,
        config: Config,
        cluster: Cluster,
        deliver: Deliver,
        on_open: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.cluster = cluster
        self.deliver = deliver
        self.on_open = on_open
        self.api = client.BatchV1Api(cluster.api)
        self._stopping = threading.Event()
        self._watch: watch.Watch | None = None
        self._opened = False

    def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()

    def run(self) -> None:
        version: str | None = None
        failures = 0
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._list()
                version = self._follow(version)
                failures = 0
            except ApiException as exc:
                if exc.status == GONE:
                    log.info("resourceVersion %s is gone; listing again", version)
                    version = None
                    continue
                failures += 1
                self._pause(failures, f"the API answered {exc.status} {exc.reason}")
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                failures += 1
                self._pause(failures, f"the API at {self.cluster.host}: {exc!r}")
            except Exception as exc:
                # A fault of our own on one answer: start over from a list
                # rather than die, and slowly, lest it repeat at full speed.
                log.exception("watching Jobs failed")
                failures += 1
                version = None
                self._pause(failures, repr(exc))

    def _list(self) -> str:
        """Deliver every Job as ``ADDED``; the list's resourceVersion."""
        response: Any = self.api.list_namespaced_job(
            self.cluster.namespace,
            label_selector=self.config.selector,
            _request_timeout=self.config.request_timeout,
            _preload_content=False,
        )
        try:
            listing = response.json()
        finally:
            response.release_conn()
        for job in listing.get("items") or []:
            self.deliver("ADDED", job)
        return str(listing["metadata"]["resourceVersion"])

    def _follow(self, version: str) -> str:
        """Watch from ``version`` until the watch ends; the last version seen."""

        def request(*args: Any, **kwargs: Any) -> Any:
            # The stream is open once its response's headers are in: from
            # here on, no change is missed.
            response = self.api.list_namespaced_job(*args, **kwargs)
            if not self._opened:
                self._opened = True
                self.on_open()
            return response

        self._watch = watching = watch.Watch()
        if self._stopping.is_set():
            return version
        for event in watching.stream(
            # ``request`` declares no model to return, so the events stay the
            # API's JSON, which is what the CloudEvents carry: no round trip
            # through a model that a newer server's fields could trip up.
            request,
            self.cluster.namespace,
            label_selector=self.config.selector,
            resource_version=version,
            timeout_seconds=int(self.config.watch_seconds),
            allow_watch_bookmarks=True,
            _request_timeout=(
                self.config.request_timeout,
                self.config.watch_seconds + READ_MARGIN,
            ),
        ):
            job = event["raw_object"]
            version = str(job["metadata"]["resourceVersion"])
            if event["type"] != "BOOKMARK":
                self.deliver(event["type"], job)
        return version

    def _pause(self, failures: int, problem: str) -> None:
        wait = min(RETRY_FIRST * 2 ** (failures - 1), RETRY_LIMIT)
        log.warning(
            "cannot watch Jobs: %s; trying again in %.1f s",
            problem,
            wait,
            extra={"failures": failures},
        )
        self._stopping.wait(wait)
