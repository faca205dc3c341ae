"""The process job backend: each run a child process of the catalog.

It runs an image's local stand-in with the args and env a Job would get, at
most ``NOETL_JOB_CONCURRENCY`` at once and the rest queued, each stopped
after ``NOETL_JOB_TIMEOUT_SECONDS``. A run gets its own process group, so
that stopping it stops everything it started, as a pod's end would.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import Any

from functions.catalog.jobs import Facts, JobRunner, Run, RunNotStarted, standins
from noetl import logs
from noetl.settings import Settings

log = logging.getLogger(__name__)

#: How much of a run's stderr a failure reason quotes.
TAIL_LINES = 20
LINE_CHARS = 500
#: How long to wait for a run's output once it exited (a child may hold it).
DRAIN_SECONDS = 5.0


class ProcessRunner(JobRunner):
    """Runs each image's local stand-in as a subprocess."""

    # TODO: runs are known to this process only: a catalog that restarts
    # forgets its runs (their registrations wait for their deadline), and
    # with WORKERS > 1 each worker has its own limit and its own set of active
    # refIds. It can go when a run's lease is kept outside the process, in the
    # registration record; on one machine with one worker it costs nothing.

    name = "process"

    def __init__(self, config: Settings, facts: Facts) -> None:
        super().__init__(config, facts)
        self.standins = standins.load(config.local_plugins)
        self.concurrency = max(1, config.job_concurrency)
        self._slots = asyncio.Semaphore(self.concurrency)
        self._wanting = 0  # runs holding a slot or waiting for one
        # Keyed by refId: one run per registration, and every task referenced.
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._groups: set[int] = set()
        atexit.register(self._stop_all)

    async def start(self, run: Run) -> str:
        if run.ref_id in self._tasks:
            log.info("run already active; not starting another")
            return "run already active"

        command = self.standins.get(run.image_url)
        if command is None:
            raise RunNotStarted(self._no_standin(run.image_url))

        self._wanting += 1
        self._keep(run, self._follow(run, (*command, *run.args)))
        position = self._wanting - self.concurrency
        if position > 0:
            log.info("run queued", extra={"position": position})
            return "run queued"
        return "run starting"

    def _keep(self, run: Run, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"run {run.ref_id}")
        self._tasks[run.ref_id] = task
        task.add_done_callback(functools.partial(self._forget, run.ref_id))

    def _forget(self, ref_id: str, task: asyncio.Task[None]) -> None:
        self._tasks.pop(ref_id, None)
        if task.cancelled():
            log.warning("run of %s was cancelled", ref_id)
        elif (exc := task.exception()) is not None:
            log.error("run of %s crashed", ref_id, exc_info=exc)

    async def _follow(self, run: Run, argv: tuple[str, ...]) -> None:
        """Wait for a slot, run ``argv`` to its end, and report how it ended."""
        with logs.bound(refId=run.ref_id, pluginName=run.plugin_name):
            try:
                async with self._slots:
                    reason = await self._execute(run, argv)
            except Exception as exc:
                # A registration must end even when following it went wrong.
                log.exception("could not follow the run")
                reason = f"the catalog could not follow the run: {exc!r}"
            finally:
                self._wanting -= 1

            if reason is None:
                await self.facts.finished(run)
            else:
                await self.facts.failed(run, reason)

    async def _execute(self, run: Run, argv: tuple[str, ...]) -> str | None:
        """Run ``argv``; the reason the run failed, or None if it exited 0."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env={**os.environ, **run.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return f"could not start {argv[0]!r}: {exc.strerror or exc}"
        started = time.monotonic()
        self._groups.add(proc.pid)
        log.info("run started", extra={"pid": proc.pid, "argv": list(argv)})

        tail: deque[str] = deque(maxlen=TAIL_LINES)
        readers = [
            asyncio.create_task(_relay(proc.stdout, "stdout", None)),
            asyncio.create_task(_relay(proc.stderr, "stderr", tail)),
        ]
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), self.config.job_timeout)
        except TimeoutError:
            timed_out = True
        finally:
            # Nothing the run started outlives it: not on timeout, not when
            # the catalog shuts down mid-run, not a child left behind.
            _kill_group(proc.pid)
            self._groups.discard(proc.pid)
        code = await proc.wait()
        await _drain(readers)

        if timed_out:
            reason: str | None = _with_tail(
                f"plugin run exceeded {self.config.job_timeout:g} s and was stopped",
                tail,
            )
        else:
            reason = _exit_reason(code, tail)
        log.info(
            "run ended",
            extra={
                "exitCode": code,
                "timedOut": timed_out,
                "seconds": round(time.monotonic() - started, 2),
            },
        )
        return reason

    def _no_standin(self, image: str) -> str:
        return (
            f"image {image!r} has no local stand-in, so the process job backend "
            f"cannot run it; images with one: {', '.join(sorted(self.standins))} "
            "(NOETL_LOCAL_PLUGINS adds more)"
        )

    def _stop_all(self) -> None:
        for pid in list(self._groups):
            _kill_group(pid)


async def _relay(
    stream: asyncio.StreamReader | None, name: str, tail: deque[str] | None
) -> None:
    """Log each line a run writes; keep the last few in ``tail``."""
    if stream is None:
        return
    while True:
        try:
            raw = await stream.readline()
        except ValueError:
            # Longer than the reader's limit: the reader dropped what it held.
            raw = b"[an overlong line was cut]\n"
        if not raw:
            return
        line = raw.decode(errors="replace").rstrip()[:LINE_CHARS]
        log.debug("plugin %s: %s", name, line)
        if tail is not None:
            tail.append(line)


async def _drain(readers: list[asyncio.Task[None]]) -> None:
    _, pending = await asyncio.wait(readers, timeout=DRAIN_SECONDS)
    for reader in pending:
        reader.cancel()


def _exit_reason(code: int, tail: Iterable[str]) -> str | None:
    if code == 0:
        return None
    if code < 0:
        return _with_tail(
            f"plugin was killed by signal {-code} (exit code {code})", tail
        )
    return _with_tail(f"plugin exited with code {code}", tail)


def _with_tail(reason: str, tail: Iterable[str]) -> str:
    lines = list(tail)
    if not lines:
        return f"{reason}; it wrote nothing to stderr"
    return f"{reason}; the last lines of its stderr:\n" + "\n".join(lines)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
