"""The catalog's registration runs: the image's local stand-in, as a process.

At most ``NOETL_JOB_CONCURRENCY`` run at once, the rest wait, as with our
process backend. A run that cannot start or exits non-zero is reported as
the 4.1 Failed event. Unlike ours, a run that exits 0 without reporting is
left to the registration's deadline rather than a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Protocol

from functions.catalog.jobs import Run, standins
from noetl import topology
from noetl.models import Payload, RegisterPluginImage, SchemaRegistrationFailed
from noetl.settings import Settings

#: How much of a failed run's stderr its reason quotes.
TAIL_BYTES = 2000


class Publisher(Protocol):
    async def publish(self, subject: str, payload: Payload) -> None: ...


class Registered(Protocol):
    @property
    def ref_id(self) -> str: ...
    @property
    def plugin_name(self) -> str: ...
    @property
    def image_url(self) -> str: ...


class Runs:
    def __init__(self, config: Settings, chain: Publisher) -> None:
        self.config = config
        self.chain = chain
        self.standins = standins.load(config.local_plugins)
        self._slots = asyncio.Semaphore(max(1, config.job_concurrency))
        self._active: dict[str, asyncio.Task[None]] = {}

    async def start(self, command: RegisterPluginImage) -> bool:
        """Start or queue the run; False when it cannot start (reported)."""
        if command.ref_id in self._active:
            return True
        argv = self.standins.get(command.image_url)
        if argv is None:
            await self.failed(command, f"image {command.image_url!r} has no stand-in")
            return False
        run = Run.of(
            ref_id=command.ref_id,
            plugin_name=command.plugin_name,
            image_url=command.image_url,
            nats_url=self.config.plugin_nats_url,
        )
        task = asyncio.create_task(self._follow(run, (*argv, *run.args)))
        self._active[run.ref_id] = task
        task.add_done_callback(lambda _: self._active.pop(run.ref_id, None))
        return True

    async def failed(self, of: Registered, reason: str) -> None:
        event = SchemaRegistrationFailed(
            ref_id=of.ref_id,
            plugin_name=of.plugin_name,
            image_url=of.image_url,
            error=reason,
        )
        await self.chain.publish(topology.SUBJECT_SCHEMA, event)

    async def _follow(self, run: Run, argv: tuple[str, ...]) -> None:
        async with self._slots:
            reason = await self._execute(run, argv)
        if reason is not None:
            await self.failed(run, reason)

    async def _execute(self, run: Run, argv: tuple[str, ...]) -> str | None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env={**os.environ, **run.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return f"could not start {argv[0]!r}: {exc}"
        try:
            _, stderr = await asyncio.wait_for(
                proc.communicate(), self.config.job_timeout
            )
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            return f"plugin run exceeded {self.config.job_timeout:g} s"
        if proc.returncode == 0:
            return None
        tail = stderr[-TAIL_BYTES:].decode(errors="replace")
        return f"plugin exited with code {proc.returncode}: {tail}"
