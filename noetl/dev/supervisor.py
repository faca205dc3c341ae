"""Running a stack's parts in the foreground: start, keep alive, stop.

One thread, the keeper, owns every child: it starts each part once the
parts it comes after are ready, probes it until it is ready, starts it again
on the same port and data when it dies (waiting a little longer after each
quick death), and on stop sends SIGTERM to each part's process group, sources
first and NATS last, then SIGKILL to whatever is left.

    with Supervisor(local_stack(port_base=18080, nats_port=14222)) as running:
        ...  # every part answers here
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType

from noetl.dev.logview import LogView
from noetl.dev.process import TAIL, Child
from noetl.dev.stack import STOP_ORDER, Part, Stack, StackError, port_free
from noetl.errors import NoetlError

TICK = 0.1
PROBE_EVERY = 0.25
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
#: A part that ran this long before dying is restarted without delay growth.
STABLE_AFTER = 30.0


class NotReady(NoetlError):
    """Some parts did not become ready in time."""


@dataclass
class _Run:
    """What the keeper knows of one part."""

    part: Part
    child: Child | None = None
    ready: bool = False
    starts: int = 0
    failures: int = 0
    next_start: float = 0.0
    next_probe: float = 0.0
    last_exit: str | None = None
    #: The last lines printed, kept across restarts.
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL))


class Supervisor:
    """Runs the parts of a :class:`Stack`; reusable by ``noetl demo`` and tests."""

    def __init__(
        self,
        stack: Stack,
        view: LogView | None = None,
        *,
        stop_grace: float = 10.0,
    ) -> None:
        self.stack = stack
        self.view = view or LogView()
        self.stop_grace = stop_grace
        self._runs = {part.name: _Run(part) for part in stack.parts}
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._keeper: threading.Thread | None = None
        self._failure: BaseException | None = None

    # The life of the stack.

    def start(self) -> None:
        """Check the ports are free and begin starting the parts."""
        if self._keeper is not None:
            return
        for name, port in self.stack.ports().items():
            if not port_free(port, self.stack.host):
                raise StackError(
                    f"port {port} for {name} is in use; choose other ports "
                    "(--port-base, --nats-port) or stop what listens there"
                )
        self.stack.data_dir.mkdir(parents=True, exist_ok=True)
        self._keeper = threading.Thread(target=self._keep, name="noetl-dev-keeper")
        self._keeper.start()

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until every part is ready; NotReady says which are not."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not all(run.ready for run in self._runs.values()):
                if self._failure is not None:
                    raise NotReady(f"the supervisor failed: {self._failure!r}")
                if self._keeper is None or self._done.is_set():
                    raise NotReady("the supervisor is not running")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NotReady(self._not_ready(timeout))
                self._changed.wait(min(left, 0.5))

    def wait(self) -> None:
        """Block until the supervisor stops (it runs until :meth:`stop`)."""
        # An event, not Thread.join: a signal handler that raises inside
        # join() makes Python 3.11 take the thread for finished while it runs.
        if self._keeper is not None:
            while not self._done.wait(1.0):
                pass

    def stop(self) -> None:
        """Stop every part and wait until none is left; safe to call twice."""
        self._stopping.set()
        if self._keeper is not None:
            self._done.wait()
            self._keeper.join()

    def __enter__(self) -> Supervisor:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # What the stack looks like now.

    def pid(self, name: str) -> int | None:
        child = self._runs[name].child
        return child.pid if child is not None else None

    def pids(self) -> dict[str, int]:
        return {name: pid for name in self._runs if (pid := self.pid(name))}

    def is_ready(self, name: str) -> bool:
        return self._runs[name].ready

    def starts(self, name: str) -> int:
        """How many times the part was started."""
        return self._runs[name].starts

    def tail(self, name: str) -> list[str]:
        """The last lines the part printed, whether it runs now or not."""
        return list(self._runs[name].tail)

    def _not_ready(self, timeout: float) -> str:
        lines = [f"not ready after {timeout:g} s:"]
        for name, run in self._runs.items():
            if run.ready:
                continue
            if run.child is None and run.starts == 0:
                waiting = ", ".join(d for d in run.part.after if not self.is_ready(d))
                lines.append(f"  {name}: not started, waiting for {waiting}")
                continue
            state = f"started {run.starts} time(s)"
            if run.last_exit:
                state += f", last {run.last_exit}"
            lines.append(
                f"  {name}: {state}; waiting until {run.part.probe.describe()}"
            )
            lines.extend(f"    | {line}" for line in self.tail(name)[-5:])
        return "\n".join(lines)

    # The keeper thread.

    def _keep(self) -> None:
        try:
            while not self._stopping.is_set():
                self._tend(time.monotonic())
                self._stopping.wait(TICK)
        except BaseException as exc:
            self._failure = exc
            self.view.log("error", f"supervisor failed: {exc!r}")
        finally:
            self._shutdown()
            self._done.set()
            with self._changed:
                self._changed.notify_all()

    def _tend(self, now: float) -> None:
        for run in self._runs.values():
            if self._stopping.is_set():
                return
            if run.child is None:
                first = run.starts == 0
                if now >= run.next_start and (not first or self._after_ready(run)):
                    self._spawn(run)
                continue
            code = run.child.poll()
            if code is not None:
                self._died(run, code, time.monotonic())
            elif not run.ready and now >= run.next_probe:
                run.next_probe = now + PROBE_EVERY
                if run.part.probe.check(run.child):
                    self._became_ready(run)

    def _after_ready(self, run: _Run) -> bool:
        return all(self._runs[name].ready for name in run.part.after)

    def _spawn(self, run: _Run) -> None:
        part = run.part
        try:
            run.child = Child(
                part.command,
                env=part.env,
                cwd=part.cwd,
                markers=part.probe.markers(),
                on_line=lambda line: self._line(run, line),
            )
        except OSError as exc:
            run.starts += 1
            self._backoff(run, f"could not start: {exc}", time.monotonic())
            return
        run.starts += 1
        run.next_probe = 0.0
        if run.starts > 1:
            self.view.log("info", f"started {part.name} again", pid=run.child.pid)
        self.view.announce(f"{part.name} pid={run.child.pid}")

    def _line(self, run: _Run, line: str) -> None:
        run.tail.append(line)
        self.view.line(run.part.name, line)

    def _became_ready(self, run: _Run) -> None:
        with self._changed:
            run.ready = True
            self._changed.notify_all()
        again = " again" if run.starts > 1 else ""
        self.view.log("info", f"{run.part.name} is ready{again}")

    def _died(self, run: _Run, code: int, now: float) -> None:
        assert run.child is not None
        uptime = run.child.uptime()
        run.child.reap()
        with self._changed:
            run.child = None
            run.ready = False
            self._changed.notify_all()
        how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited {code}"
        if uptime >= STABLE_AFTER:
            run.failures = 0
        self._backoff(run, f"{how} after {uptime:.1f} s", now)

    def _backoff(self, run: _Run, what: str, now: float) -> None:
        run.failures += 1
        run.last_exit = what
        delay = min(BACKOFF_FIRST * 2 ** (run.failures - 1), BACKOFF_MAX)
        run.next_start = now + delay
        self.view.log(
            "warning",
            f"{run.part.name} {what}; starting it again in {delay:g} s "
            f"on the same port and data",
        )

    def _shutdown(self) -> None:
        """SIGTERM each kind of part in turn, then SIGKILL what is left."""
        for kind in STOP_ORDER:
            runs = [r for r in self._runs.values() if r.part.kind == kind and r.child]
            for run in runs:
                assert run.child is not None
                if run.child.poll() is None:
                    run.child.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + self.stop_grace
            for run in runs:
                assert run.child is not None
                left = max(0.0, deadline - time.monotonic())
                if not run.child.wait(left):
                    self.view.log(
                        "warning",
                        f"{run.part.name} did not stop in {self.stop_grace:g} s; "
                        "killing it",
                    )
                run.child.reap()
                with self._changed:
                    run.child = None
                    run.ready = False
        self.view.log("info", "stopped every part")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
