"""``python -m bench.stack ours|peer``: a whole stack under the supervisor.

``ours`` is :func:`noetl.dev.stack.local_stack`, exactly what ``noetl dev``
runs. ``peer`` keeps its NATS and api and replaces the three functions and
their sources with the FastStream services of :mod:`bench.peer`. Both run
under the same :class:`~noetl.dev.supervisor.Supervisor` with the same log
view, print ``ready`` once every part is, and stop on SIGTERM.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path
from types import FrameType

from bench.harness import ROOT
from noetl.dev.logview import LogView
from noetl.dev.probes import Printed
from noetl.dev.stack import SOURCE, Part, Stack, local_stack
from noetl.dev.supervisor import Supervisor

PEER_ROLES = ("dispatcher", "catalog", "notifier")


class _Stop(Exception):
    """SIGTERM or SIGINT arrived."""


def peer_stack(ours: Stack) -> Stack:
    """``ours`` with the FastStream chain in place of functions and sources."""
    nats, api = ours.part("nats"), ours.part("api")
    parts = [nats, api]
    for role in PEER_ROLES:
        parts.append(
            Part(
                name=f"peer-{role}",
                # Stopped first, as a source is: nothing is left half-handled.
                kind=SOURCE,
                command=(sys.executable, "-m", "bench.peer", role),
                probe=Printed("consuming"),
                url=f"FastStream {role}",
                env=dict(api.env),
                after=("nats",),
                cwd=ROOT,
            )
        )
    return dataclasses.replace(ours, parts=tuple(parts))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stack")
    parser.add_argument("shape", choices=("ours", "peer"))
    parser.add_argument("--port-base", type=int, required=True)
    parser.add_argument("--nats-port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()

    stack = local_stack(
        port_base=args.port_base, nats_port=args.nats_port, data_dir=args.data_dir
    )
    if args.shape == "peer":
        stack = peer_stack(stack)

    def stop(number: int, frame: FrameType | None) -> None:
        raise _Stop

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, stop)
    view = LogView(sys.stdout, pretty=False)
    supervisor = Supervisor(stack, view)
    try:
        supervisor.start()
        supervisor.wait_ready(120)
        view.announce("ready")
        supervisor.wait()
    except _Stop:
        pass
    finally:
        supervisor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
