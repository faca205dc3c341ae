"""Entry point: ``python -m sources.apiserver``.

Exits 0 when stopped by SIGTERM or SIGINT, 2 on bad configuration, 1 when
no cluster configuration can be loaded.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from functions.catalog.jobs import jobspec
from functions.catalog.jobs.cluster import connect
from functions.catalog.jobs.kubernetes import NoCluster
from noetl import logs
from noetl.environment import InvalidSetting
from sources.apiserver.config import Config
from sources.apiserver.events import event_for
from sources.apiserver.sink import Sink
from sources.apiserver.watcher import Watcher

PART = "source-apiserver"
log = logging.getLogger("sources.apiserver")


def main() -> int:
    try:
        config = Config.from_env()
    except InvalidSetting as exc:
        logs.setup(PART)
        log.error("bad configuration: %s", exc)
        return 2
    logs.setup(PART, config.log_level)
    try:
        cluster = connect(config.namespace)
    except NoCluster as exc:
        log.error("cannot watch Jobs: %s", exc)
        return 1

    stopping = threading.Event()
    sink = Sink(config, stopping)

    def deliver(change: str, job: dict[str, Any]) -> None:
        event = event_for(change, job, cluster.host)
        labels = job.get("metadata", {}).get("labels") or {}
        with logs.bound(refId=labels.get(jobspec.LABEL_REF_ID), ceId=event["id"]):
            status = sink.post(event)
            log.info(
                "posted %s for %s",
                event["type"],
                event["subject"],
                extra={"status": status},
            )

    def opened() -> None:
        log.info(
            "consuming",
            extra={
                "api": cluster.host,
                "namespace": cluster.namespace,
                "selector": config.selector,
                "sink": config.sink,
            },
        )

    watcher = Watcher(config, cluster, deliver, on_open=opened)

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        watcher.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    # The watch blocks in the client; the main thread stays free for signals.
    thread = threading.Thread(target=watcher.run, name="watch", daemon=True)
    thread.start()
    while not stopping.wait(1.0):
        if not thread.is_alive():
            log.error("the watch ended unexpectedly")
            return 1
    thread.join(timeout=5)
    sink.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
