"""The kubernetes job backend: each run a batch/v1 Job.

Starting a run creates its Job (:mod:`jobspec` builds the body), and that is
all this backend does: how the Job ends reaches the catalog later as
ApiServerSource events (:mod:`functions.catalog.jobevents`), so no process
has to stay and watch it. A redelivered command meets 409 AlreadyExists and
counts as started. A refusal (403 and the other 4xx) fails the registration
at once; an API that answers 5xx or not at all is tried a few times with
backoff first.

The client library is imported on the first start, in a worker thread (see
:mod:`cluster`), so that creating this backend costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from functions.catalog.jobs import (
    Facts,
    JobError,
    JobRunner,
    Run,
    RunNotStarted,
    jobspec,
)
from noetl.settings import Settings

if TYPE_CHECKING:
    from functions.catalog.jobs.cluster import Cluster

log = logging.getLogger(__name__)


class NoCluster(JobError):
    """No cluster configuration could be loaded: no kubeconfig, no service account."""


class ApiRefused(JobError):
    """The API refused a request, and would refuse it again (a 4xx but 409)."""

    def __init__(self, status: int, message: str) -> None:
        self.http_status = status
        super().__init__(message)


class ApiUnavailable(JobError):
    """The API answered 5xx, 408 or 429, or did not answer in time."""


#: What to do about a refusal, by status; ``{namespace}`` is filled in.
HINTS = {
    401: "the API did not accept the catalog's credentials",
    403: (
        "the catalog's service account may not create Jobs in namespace "
        "{namespace}: bind it to a Role that allows create on jobs.batch"
    ),
    404: "namespace {namespace} may not exist (NOETL_K8S_NAMESPACE)",
    400: "the API refused the Job as invalid; check the NOETL_K8S_* settings",
    422: "the API refused the Job as invalid; check the NOETL_K8S_* settings",
}


class KubernetesRunner(JobRunner):
    """Creates a Job per run; learns how it ended from Job events."""

    name = "kubernetes"

    def __init__(self, config: Settings, facts: Facts) -> None:
        super().__init__(config, facts)
        self._cluster: Cluster | None = None
        self._connecting = asyncio.Lock()

    async def start(self, run: Run) -> str:
        cluster = await self._connected()
        body = jobspec.job_for(run, self.config, cluster.namespace)
        where = f"Job {cluster.namespace}/{body['metadata']['name']}"

        try:
            created = await self._create(cluster, body, where)
        except ApiRefused as exc:
            hint = HINTS.get(exc.http_status, "").format(namespace=cluster.namespace)
            raise RunNotStarted(
                f"cannot create {where}: {exc}" + (f"; {hint}" if hint else "")
            ) from exc
        except ApiUnavailable as exc:
            raise RunNotStarted(
                f"cannot create {where}: {exc}; gave up after {self._attempts} attempts"
            ) from exc

        if not created:
            log.info("%s exists already: a redelivered command", where)
            return f"{where} exists already"
        log.info("created %s", where)
        return f"created {where}"

    @property
    def _attempts(self) -> int:
        return max(1, self.config.k8s_create_attempts)

    async def _create(self, cluster: Cluster, body: dict[str, Any], where: str) -> bool:
        """Create the Job, trying again with backoff while the API is away."""
        timeout = self.config.k8s_request_timeout
        for attempt in range(1, self._attempts):
            try:
                return await asyncio.to_thread(cluster.create_job, body, timeout)
            except ApiUnavailable as exc:
                delay = self.config.k8s_create_backoff * 2 ** (attempt - 1)
                log.warning(
                    "creating %s failed (attempt %d of %d): %s; trying again in %.1f s",
                    where,
                    attempt,
                    self._attempts,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
        # The last attempt's error is the caller's.
        return await asyncio.to_thread(cluster.create_job, body, timeout)

    async def _connected(self) -> Cluster:
        """The cluster, connected on first use; a failed connection is retried
        by the next start."""
        async with self._connecting:
            if self._cluster is None:
                try:
                    self._cluster = await asyncio.to_thread(
                        _connect, self.config.k8s_namespace
                    )
                except NoCluster as exc:
                    raise RunNotStarted(
                        f"no Kubernetes cluster to run on: {exc}"
                    ) from exc
                log.info(
                    "using the Kubernetes API at %s from %s",
                    self._cluster.host,
                    self._cluster.origin,
                    extra={"namespace": self._cluster.namespace},
                )
            return self._cluster


def _connect(namespace: str) -> Cluster:
    """Import the client and connect; runs in a worker thread."""
    from functions.catalog.jobs import cluster

    return cluster.connect(namespace)
