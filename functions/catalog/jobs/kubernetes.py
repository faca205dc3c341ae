"""The kubernetes job backend: each run a batch/v1 Job. Not built yet."""

from __future__ import annotations

from functions.catalog.jobs import JobError, JobRunner, Run


class KubernetesBackendNotBuilt(JobError):
    """The kubernetes job backend cannot start runs yet."""

    status = 501


class KubernetesRunner(JobRunner):
    name = "kubernetes"

    async def start(self, run: Run) -> str:
        # TODO: create the run's batch/v1 Job (image = imageUrl, args, env,
        # labels, deadlines, restricted pod security) with the kubernetes
        # client called off the event loop, and learn how it ended from Job
        # events; until then NOETL_JOB_BACKEND=kubernetes registers nothing and
        # every command is retried, then dead-lettered. It can go when this
        # backend creates Jobs and reports their failures.
        raise KubernetesBackendNotBuilt(
            f"cannot run image {run.image_url!r}: the kubernetes job backend is "
            "not built yet; set NOETL_JOB_BACKEND=process to run local stand-ins"
        )
