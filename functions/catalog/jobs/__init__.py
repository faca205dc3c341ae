"""The job-runner interface: how the catalog starts a plugin's registration run.

A run is what a Kubernetes Job would be: the plugin's image started with the
args ``--registration`` and an environment telling it who it is and where to
report. A backend starts runs and, if it follows them, tells :class:`Facts`
how each one ended (with the kubernetes backend the catalog learns that
from Job events instead); it neither decides outcomes (the dispatcher does)
nor writes the record.

The backend is chosen by ``NOETL_JOB_BACKEND`` and imported only when chosen,
so that no function pays for a client library it does not use.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

from noetl.errors import NoetlError
from noetl.settings import Settings

ARGS = ("--registration",)
BACKENDS = ("kubernetes", "process")


class JobError(NoetlError):
    """A job backend cannot take runs as configured."""


class UnknownJobBackend(JobError):
    """``NOETL_JOB_BACKEND`` names no backend."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"NOETL_JOB_BACKEND={name!r} is not a job backend; "
            f"expected one of: {', '.join(BACKENDS)}"
        )


class RunNotStarted(JobError):
    """A run could not be started and will not be: its registration fails.

    The message is the reason the registration fails with, so it names what
    was tried, what answered and what to do about it.
    """


@dataclass(frozen=True)
class Run:
    """One registration run, with exactly the args and env a Job would get."""

    ref_id: str
    plugin_name: str
    image_url: str
    args: tuple[str, ...]
    env: Mapping[str, str]

    @classmethod
    def of(cls, ref_id: str, plugin_name: str, image_url: str, nats_url: str) -> Run:
        """The run of a registration; ``nats_url`` is the one a plugin can reach."""
        return cls(
            ref_id=ref_id,
            plugin_name=plugin_name,
            image_url=image_url,
            args=ARGS,
            env={
                "NATS_URL": nats_url,
                "PLUGIN_NAME": plugin_name,
                "REF_ID": ref_id,
                "IMAGE_URL": image_url,
            },
        )


class Facts(Protocol):
    """Where a backend reports how a run ended."""

    async def failed(self, run: Run, reason: str) -> None:
        """The run cannot succeed: it did not start, failed, or was stopped."""

    async def finished(self, run: Run) -> None:
        """The run ended without error; its plugin's report may still be coming."""


class JobRunner(abc.ABC):
    """A backend that starts registration runs."""

    name: ClassVar[str]

    def __init__(self, config: Settings, facts: Facts) -> None:
        self.config = config
        self.facts = facts

    @abc.abstractmethod
    async def start(self, run: Run) -> str:
        """Start or queue ``run`` and return at once, saying which it did.

        Starting a run whose refId is already active is a no-op, so that a
        redelivered command leads to one run. A run that cannot start raises
        :class:`RunNotStarted` with the reason; the caller reports it.
        """


def create(config: Settings, facts: Facts) -> JobRunner:
    """The backend ``config.job_backend`` names."""
    if config.job_backend == "process":
        from functions.catalog.jobs.process import ProcessRunner

        return ProcessRunner(config, facts)
    if config.job_backend == "kubernetes":
        from functions.catalog.jobs.kubernetes import KubernetesRunner

        return KubernetesRunner(config, facts)
    raise UnknownJobBackend(config.job_backend)
