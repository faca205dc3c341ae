"""The local stack as data: its parts, their ports, routes and environment.

``noetl dev`` runs what :func:`local_stack` describes; tests may describe a
smaller stack of their own and hand it to the same supervisor.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from noetl import localrun, topology
from noetl.dev.probes import Answers, JetStreamReady, Printed, Probe
from noetl.errors import NoetlError

SERVER = "server"
FUNCTION = "function"
SOURCE = "source"
#: The order parts are stopped in: nothing is fed to a function that is gone.
STOP_ORDER = (SOURCE, FUNCTION, SERVER)

HOST = "127.0.0.1"
#: The label selector of registration Jobs (functions/catalog/jobs/jobspec.py).
JOB_SELECTOR = "app.kubernetes.io/managed-by=noetl"
#: Offsets from the port base; N+4 to N+7 are left for anything else.
FUNCTION_PORTS = {"api": 0, "dispatcher": 1, "catalog": 2, "notifier": 3}
EXTRA_PORTS = 4
SPAN = 8
JOB_BACKENDS = ("process", "kubernetes")


class StackError(NoetlError):
    """The stack cannot be laid out or started as asked."""


@dataclass(frozen=True)
class Route:
    """A JetStream source feeding one function from one stream."""

    function: str
    stream: str
    subjects: tuple[str, ...]

    @property
    def source(self) -> str:
        return f"{self.function}-source"


ROUTES = (
    Route(
        "dispatcher", topology.EVENTS, (topology.SUBJECT_API, topology.SUBJECT_SCHEMA)
    ),
    Route(
        "catalog",
        topology.COMMANDS,
        (topology.SUBJECT_REGISTER, topology.SUBJECT_CHECK),
    ),
    Route("notifier", topology.COMMANDS, (topology.SUBJECT_NOTIFY,)),
)


@dataclass(frozen=True)
class Part:
    """One process of the stack and how to tell it is ready."""

    name: str
    kind: str
    command: tuple[str, ...]
    probe: Probe
    #: Where to reach it, as shown to the user.
    url: str
    port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: Parts that must be ready before this one first starts.
    after: tuple[str, ...] = ()
    cwd: Path | None = None


@dataclass(frozen=True)
class Stack:
    parts: tuple[Part, ...]
    nats_url: str
    api_url: str
    port_base: int
    data_dir: Path
    host: str = HOST

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(name)

    def extra_port(self, index: int) -> int:
        """The ``index``-th port of N+4 to N+7, for anything else served."""
        if not 0 <= index < SPAN - EXTRA_PORTS:
            raise StackError(f"extra port {index} is outside N+4 to N+7")
        return self.port_base + EXTRA_PORTS + index

    def ports(self) -> dict[str, int]:
        return {p.name: p.port for p in self.parts if p.port is not None}


def local_stack(
    *,
    port_base: int = 8080,
    nats_port: int = 4222,
    data_dir: Path = Path(".noetl"),
    job_backend: str = "process",
    host: str = HOST,
) -> Stack:
    """NATS, the four functions and a source per route, on this machine."""
    check_layout(port_base, nats_port)
    if job_backend not in JOB_BACKENDS:
        raise StackError(
            f"job backend {job_backend!r} is not known; expected one of "
            + ", ".join(JOB_BACKENDS)
        )
    data_dir = data_dir.resolve()
    nats_url = f"nats://{host}:{nats_port}"
    common = {
        "NATS_URL": nats_url,
        "NOETL_JOB_BACKEND": job_backend,
        "PYTHONUNBUFFERED": "1",
    }

    parts = [
        Part(
            name="nats",
            kind=SERVER,
            command=tuple(localrun.nats_command(nats_port, data_dir / "jetstream")),
            probe=JetStreamReady(nats_url),
            url=nats_url,
            port=nats_port,
        )
    ]
    for name, offset in FUNCTION_PORTS.items():
        port = port_base + offset
        base = f"http://{host}:{port}"
        probe = Answers(f"{base}/healthz", ok=True)
        parts.append(
            Part(
                name=name,
                kind=FUNCTION,
                command=tuple(localrun.function_command(name, port, host)),
                probe=probe,
                url=f"{base}/gql" if name == "api" else f"{base}/",
                port=port,
                env=dict(common),
                after=("nats",),
                cwd=localrun.ROOT,
            )
        )
    for route in ROUTES:
        sink = f"http://{host}:{port_base + FUNCTION_PORTS[route.function]}/"
        parts.append(
            Part(
                name=route.source,
                kind=SOURCE,
                command=(sys.executable, "-m", "sources.jetstream"),
                probe=Printed("consuming"),
                url=f"{route.stream} [{', '.join(route.subjects)}] -> {sink}",
                env={
                    **common,
                    "K_SINK": sink,
                    "NOETL_SOURCE_STREAM": route.stream,
                    "NOETL_SOURCE_SUBJECTS": ",".join(route.subjects),
                    "NOETL_SOURCE_DURABLE": route.function,
                },
                after=(route.function,),
                cwd=localrun.ROOT,
            )
        )
    if job_backend == "kubernetes":
        # What an ApiServerSource does in a cluster: the labelled Jobs'
        # changes, as CloudEvents, to the catalog. KUBECONFIG and
        # NOETL_K8S_NAMESPACE come from the user's environment.
        sink = f"http://{host}:{port_base + FUNCTION_PORTS['catalog']}/"
        parts.append(
            Part(
                name="apiserver-source",
                kind=SOURCE,
                command=(sys.executable, "-m", "sources.apiserver"),
                probe=Printed("consuming"),
                url=f"Jobs [{JOB_SELECTOR}] -> {sink}",
                env={**common, "K_SINK": sink},
                after=("catalog",),
                cwd=localrun.ROOT,
            )
        )
    return Stack(
        parts=tuple(parts),
        nats_url=nats_url,
        api_url=f"http://{host}:{port_base}/gql",
        port_base=port_base,
        data_dir=data_dir,
        host=host,
    )


def check_layout(port_base: int, nats_port: int) -> None:
    """Ports that fit, and a NATS port outside the base's eight."""
    if not 1 <= port_base <= 65535 - SPAN + 1:
        raise StackError(
            f"port base {port_base} leaves no room for N to N+{SPAN - 1}; "
            f"expected 1 to {65535 - SPAN + 1}"
        )
    if not 1 <= nats_port <= 65535:
        raise StackError(f"NATS port {nats_port} is not a port; expected 1 to 65535")
    if port_base <= nats_port < port_base + SPAN:
        raise StackError(
            f"NATS port {nats_port} falls in the port base's range "
            f"{port_base} to {port_base + SPAN - 1}"
        )


def port_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on ``port`` now."""
    with socket.socket() as sock:
        # Servers set SO_REUSEADDR, so a port in TIME_WAIT is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port_base(host: str = HOST, attempts: int = 200) -> int:
    """A port base whose eight ports are all free now."""
    for _ in range(attempts):
        base = localrun.free_port(host)
        if base + SPAN - 1 <= 65535 and all(
            port_free(base + i, host) for i in range(SPAN)
        ):
            return base
    raise StackError(f"found no {SPAN} free ports in a row on {host}")
