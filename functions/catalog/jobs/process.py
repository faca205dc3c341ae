"""The process job backend: each run a child process of the catalog.

It runs an image's local stand-in with the args and env a Job would get, at
most ``NOETL_JOB_CONCURRENCY`` at once, each stopped after
``NOETL_JOB_TIMEOUT_SECONDS``. A run gets its own process group, so that
stopping it stops everything it started, as a pod's end would.

Nothing waits in this process's memory. A command that finds every slot
busy is answered 503, and JetStream keeps it until the source delivers it
again. A run writes its output to files, not to pipes, and ``timeout(1)``
bounds it, so a run outlives a catalog that crashes, reports on its own, and
still ends in time.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import os
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import IO, Any

from functions.catalog.jobs import Facts, JobRunner, Run, RunNotStarted, standins
from noetl import logs
from noetl.errors import Unavailable
from noetl.settings import Settings

log = logging.getLogger(__name__)

#: How much of a run's stderr a failure reason quotes.
TAIL_LINES = 20
LINE_CHARS = 500
#: Seconds a command waits for a run slot before it is handed back to
#: JetStream; well inside the source's request timeout.
SLOT_WAIT = 10.0
#: Seconds timeout(1) waits after its TERM before it sends KILL.
KILL_AFTER = 5
#: How timeout(1) exits when it ended the run: TERM obeyed, or KILL needed.
TIMED_OUT = (124, 137)


class ProcessRunner(JobRunner):
    """Runs each image's local stand-in as a subprocess."""

    # TODO: how a run ends is seen by the process that started it only: after
    # a catalog crash a run still reports on its own, but one that fails
    # without reporting waits for its registration's deadline; and with
    # WORKERS > 1 each worker has its own slots. It can go when a run's lease
    # is kept in the registration record; on one machine it costs little.

    name = "process"

    def __init__(self, config: Settings, facts: Facts) -> None:
        super().__init__(config, facts)
        self.standins = standins.load(config.local_plugins)
        self.concurrency = max(1, config.job_concurrency)
        self._slots = asyncio.Semaphore(self.concurrency)
        self._waiting: set[str] = set()
        # Keyed by refId: one run per registration, and every task referenced.
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._groups: set[int] = set()
        atexit.register(self._stop_all)

    async def start(self, run: Run) -> str:
        if run.ref_id in self._tasks or run.ref_id in self._waiting:
            log.info("run already active; not starting another")
            return "run already active"

        command = self.standins.get(run.image_url)
        if command is None:
            raise RunNotStarted(self._no_standin(run.image_url))

        self._waiting.add(run.ref_id)
        try:
            await asyncio.wait_for(self._slots.acquire(), SLOT_WAIT)
        except TimeoutError:
            raise Unavailable(
                f"all {self.concurrency} run slots are busy; the command waits "
                "in JetStream for its next delivery",
                retry_after=SLOT_WAIT,
            ) from None
        finally:
            self._waiting.discard(run.ref_id)
        self._keep(run, self._follow(run, (*command, *run.args)))
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
                reason = await self._execute(run, argv)
            except Exception as exc:
                # A registration must end even when following it went wrong.
                log.exception("could not follow the run")
                reason = f"the catalog could not follow the run: {exc!r}"
            finally:
                self._slots.release()

            if reason is None:
                await self.facts.finished(run)
            else:
                await self.facts.failed(run, reason)

    async def _execute(self, run: Run, argv: tuple[str, ...]) -> str | None:
        """Run ``argv``; the reason the run failed, or None if it exited 0."""
        limit = self.config.job_timeout
        # Under timeout(1) an exec error would read as an exit code; say it
        # as what it is.
        if shutil.which(argv[0]) is None:
            return f"could not start {argv[0]!r}: no such executable"
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            # Read before the spawn: timeout(1)'s clock starts after it, so a
            # run it ended has always lasted the limit by this clock.
            started = time.monotonic()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *_bounded(argv, limit),
                    env={**os.environ, **run.env},
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            except OSError as exc:
                return f"could not start {argv[0]!r}: {exc.strerror or exc}"
            self._groups.add(proc.pid)
            log.info("run started", extra={"pid": proc.pid, "argv": list(argv)})

            timed_out = False
            try:
                # timeout(1) ends the run; this is the bound should it not.
                await asyncio.wait_for(proc.wait(), limit + KILL_AFTER + 5)
            except TimeoutError:
                timed_out = True
            finally:
                # Nothing the run started outlives it, not a child left behind.
                _kill_group(proc.pid)
                self._groups.discard(proc.pid)
            code = await proc.wait()
            elapsed = time.monotonic() - started
            timed_out = timed_out or (code in TIMED_OUT and elapsed >= limit)
            _relay(out, "stdout", None)
            tail: deque[str] = deque(maxlen=TAIL_LINES)
            _relay(err, "stderr", tail)

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
                "seconds": round(elapsed, 2),
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


def _relay(file: IO[bytes], name: str, tail: deque[str] | None) -> None:
    """Log each line a run wrote; keep the last few in ``tail``."""
    file.seek(0)
    for raw in file:
        line = raw.decode(errors="replace").rstrip()[:LINE_CHARS]
        log.debug("plugin %s: %s", name, line)
        if tail is not None:
            tail.append(line)


def _bounded(argv: tuple[str, ...], limit: float) -> tuple[str, ...]:
    """``argv`` under timeout(1), which ends the whole run even if we do not."""
    wrapper = shutil.which("timeout")
    if wrapper is None:
        return argv
    return (wrapper, f"--kill-after={KILL_AFTER}", f"{limit:g}", *argv)


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
