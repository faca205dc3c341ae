"""A stub Kubernetes API server for batch/v1 Jobs: real HTTP on a random port.

The real kubernetes client talks to it through the kubeconfig that
:meth:`KubeStub.kubeconfig` writes. It keeps Jobs in memory with a
resourceVersion each, answers create, get, list, watch and delete on
``/apis/batch/v1/namespaces/{ns}/jobs[/{name}]``, filters by label selector,
streams a watch as JSON lines in chunked encoding as the real server does,
and answers 409 AlreadyExists to a second create of a name.

A test can make it fail (:meth:`fail`, :meth:`delay`), end a Job
(:meth:`complete`, :meth:`failed`: a MODIFIED watch event each), expire old
resourceVersions so that a watch from one gets 410 Gone (:meth:`expire`),
close the open watches (:meth:`drop_watches`), and read what was created
(:attr:`created`) and asked for (:attr:`requests`).

    with KubeStub() as kube:
        os.environ["KUBECONFIG"] = str(kube.kubeconfig(tmp_path))
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

_PATH = re.compile(
    r"/apis/batch/v1(?:/namespaces/(?P<ns>[^/]+))?/jobs(?:/(?P<name>[^/]+))?/?"
)
_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "AlreadyExists",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status(code: int, message: str) -> dict[str, Any]:
    """A meta/v1 Status, the body of every error the API answers."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, "Unknown"),
        "code": code,
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Fault:
    """The next ``times`` requests of ``method`` whose path has ``path`` fail."""

    method: str
    path: str
    times: int
    status: int = 500
    message: str = "injected failure"
    #: Seconds to hold the request first. A held request is never carried
    #: out: it is answered ``status`` after the delay, if anyone still listens.
    delay: float = 0.0


class KubeStub:
    """The server and its state; every method is safe to call from any thread."""

    def __init__(self) -> None:
        self._state = threading.Condition()
        self._jobs: dict[tuple[str, str], dict[str, Any]] = {}
        #: Every change, in order: (resourceVersion, type, object).
        self._events: list[tuple[int, str, dict[str, Any]]] = []
        self._rv = 0
        self._oldest = 0  # a watch from before this resourceVersion gets 410
        self._watch_epoch = 0  # bumped to close the open watches
        self._faults: list[Fault] = []
        self._stopping = False
        #: Bodies of the Jobs created, exactly as the client posted them.
        self.created: list[dict[str, Any]] = []
        #: (method, path and query) of every request, in order.
        self.requests: list[tuple[str, str]] = []
        self.watches_opened = 0
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kubestub", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # Life.

    def start(self) -> KubeStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._state:
            self._stopping = True
            self._state.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> KubeStub:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def kubeconfig(self, directory: Path, namespace: str = "noetl-test") -> Path:
        """Write a kubeconfig whose current context is this server."""
        path = directory / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "stub", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "stub-token"}}],
            "contexts": [
                {
                    "name": "stub",
                    "context": {
                        "cluster": "stub",
                        "user": "tester",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "stub",
        }
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    # What tests make happen.

    def fail(
        self,
        status: int,
        times: int = 1,
        method: str = "POST",
        path: str = "/jobs",
        message: str = "injected failure",
    ) -> None:
        with self._state:
            self._faults.append(Fault(method, path, times, status, message))

    def delay(
        self, seconds: float, times: int = 1, method: str = "POST", path: str = "/jobs"
    ) -> None:
        with self._state:
            self._faults.append(
                Fault(method, path, times, 504, "held by the test", delay=seconds)
            )

    def clear_faults(self) -> None:
        with self._state:
            self._faults.clear()

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store a Job as a POST would (409 aside); returns the stored object."""
        with self._state:
            code, stored = self._create(namespace, body)
        if code != 201:
            raise ValueError(stored["message"])
        return stored

    def complete(self, namespace: str, name: str) -> dict[str, Any]:
        """The Job succeeded: conditions SuccessCriteriaMet and Complete."""
        now = _now()
        return self._set_status(
            namespace,
            name,
            {
                "startTime": now,
                "completionTime": now,
                "succeeded": 1,
                "conditions": [
                    _condition("SuccessCriteriaMet", "CompletionsReached", now),
                    _condition("Complete", "CompletionsReached", now),
                ],
            },
        )

    def failed(
        self, namespace: str, name: str, reason: str, message: str = ""
    ) -> dict[str, Any]:
        """The Job failed with ``reason``: conditions FailureTarget and Failed."""
        now = _now()
        message = message or f"Job failed: {reason}"
        return self._set_status(
            namespace,
            name,
            {
                "startTime": now,
                "failed": 1,
                "conditions": [
                    _condition("FailureTarget", reason, now, message),
                    _condition("Failed", reason, now, message),
                ],
            },
        )

    def label(
        self, namespace: str, name: str, labels: dict[str, str]
    ) -> dict[str, Any]:
        """Add labels to a Job (a MODIFIED event), as ``kubectl label`` would."""
        with self._state:
            job = self._jobs[(namespace, name)]
            job["metadata"].setdefault("labels", {}).update(labels)
            return self._changed("MODIFIED", job)

    def delete(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._state:
            return self._delete(namespace, name)

    def expire(self) -> None:
        """Compact history: a watch from a resourceVersion before now gets 410;
        a list returns the version to watch from again."""
        with self._state:
            self._rv += 1
            self._oldest = self._rv
            self._events.clear()

    def drop_watches(self) -> None:
        """End every open watch, as an API server does at its timeout."""
        with self._state:
            self._watch_epoch += 1
            self._state.notify_all()

    # What tests read.

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._state:
            job = self._jobs.get((namespace, name))
            return copy.deepcopy(job) if job else None

    def jobs(self) -> list[dict[str, Any]]:
        with self._state:
            return [copy.deepcopy(job) for job in self._jobs.values()]

    def count(self, method: str, path_part: str = "/jobs") -> int:
        with self._state:
            return sum(1 for m, p in self.requests if m == method and path_part in p)

    # The state, with self._state held.

    def _create(
        self, namespace: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        metadata = body.get("metadata") or {}
        name = metadata.get("name")
        if not isinstance(name, str) or not name:
            return 422, status(422, "Job.batch is invalid: metadata.name: Required")
        if metadata.get("namespace", namespace) != namespace:
            return 400, status(
                400,
                "the namespace of the provided object does not match the "
                "namespace sent on the request",
            )
        if (namespace, name) in self._jobs:
            return 409, status(409, f'jobs.batch "{name}" already exists')
        self.created.append(copy.deepcopy(body))
        job = copy.deepcopy(body)
        job.setdefault("apiVersion", "batch/v1")
        job.setdefault("kind", "Job")
        job["metadata"] = {
            **metadata,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": _now(),
            "generation": 1,
        }
        job["status"] = {}
        self._jobs[(namespace, name)] = job
        return 201, self._changed("ADDED", job)

    def _set_status(
        self, namespace: str, name: str, job_status: dict[str, Any]
    ) -> dict[str, Any]:
        with self._state:
            job = self._jobs[(namespace, name)]
            job["status"] = job_status
            return self._changed("MODIFIED", job)

    def _delete(self, namespace: str, name: str) -> dict[str, Any] | None:
        job = self._jobs.pop((namespace, name), None)
        if job is None:
            return None
        return self._changed("DELETED", job)

    def _changed(self, kind: str, job: dict[str, Any]) -> dict[str, Any]:
        self._rv += 1
        job["metadata"]["resourceVersion"] = str(self._rv)
        snapshot = copy.deepcopy(job)
        self._events.append((self._rv, kind, snapshot))
        self._state.notify_all()
        return copy.deepcopy(snapshot)

    def _fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.method == method and fault.path in path and fault.times > 0:
                fault.times -= 1
                return fault
        return None


def _condition(kind: str, reason: str, at: str, message: str = "") -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": at,
        "lastTransitionTime": at,
    }


def matches(selector: str, labels: dict[str, str]) -> bool:
    """Whether ``labels`` satisfy an equality-based label selector."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = (part.strip() for part in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (part.strip() for part in term.split("=", 1))
            if labels.get(key) != value.lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (a timeout under test) is no failure


def _handler(stub: KubeStub) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        kube = stub

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    kube: KubeStub

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test's output is the place for failures, not for requests

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        stub = self.kube
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with stub._state:
            if stub._stopping:
                # A server going away answers nothing, kept-alive or not.
                self.close_connection = True
                return
            stub.requests.append((method, self.path))
            fault = stub._fault(method, url.path)
        if fault is not None:
            self._fail(fault)
            return

        match = _PATH.fullmatch(url.path)
        if match is None:
            self._send(404, status(404, f"the server could not find {url.path}"))
            return
        namespace, name = match["ns"], match["name"]
        if method == "POST" and namespace and not name:
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, status(400, "the body is not JSON"))
                return
            with stub._state:
                code, answer = stub._create(namespace, body)
            self._send(code, answer)
        elif method == "GET" and name:
            self._get(namespace, name)
        elif method == "GET" and query.get("watch") in ("true", "1"):
            self._watch(namespace, query)
        elif method == "GET":
            self._list(namespace, query.get("labelSelector", ""))
        elif method == "DELETE" and name:
            with stub._state:
                deleted = stub._delete(namespace, name)
            if deleted is None:
                self._send(404, status(404, f'jobs.batch "{name}" not found'))
            else:
                self._send(200, deleted)
        else:
            self._send(405, status(405, f"{method} is not served on {url.path}"))

    def _fail(self, fault: Fault) -> None:
        if fault.delay:
            deadline = time.monotonic() + fault.delay
            with self.kube._state:
                while not self.kube._stopping and time.monotonic() < deadline:
                    self.kube._state.wait(deadline - time.monotonic())
        with contextlib.suppress(OSError):
            self._send(fault.status, status(fault.status, fault.message))

    def _get(self, namespace: str, name: str) -> None:
        job = self.kube.job(namespace, name)
        if job is None:
            self._send(404, status(404, f'jobs.batch "{name}" not found'))
        else:
            self._send(200, job)

    def _list(self, namespace: str | None, selector: str) -> None:
        with self.kube._state:
            items = [copy.deepcopy(job) for job in self._selected(namespace, selector)]
            version = str(self.kube._rv)
        for item in items:  # the API leaves these out of a list's items
            item.pop("apiVersion", None)
            item.pop("kind", None)
        self._send(
            200,
            {
                "apiVersion": "batch/v1",
                "kind": "JobList",
                "metadata": {"resourceVersion": version},
                "items": items,
            },
        )

    def _selected(
        self, namespace: str | None, selector: str
    ) -> Iterator[dict[str, Any]]:
        for (ns, _), job in self.kube._jobs.items():
            labels = job["metadata"].get("labels") or {}
            if (namespace is None or ns == namespace) and matches(selector, labels):
                yield job

    def _watch(self, namespace: str | None, query: dict[str, str]) -> None:
        stub = self.kube
        selector = query.get("labelSelector", "")
        since = int(query.get("resourceVersion") or 0)
        limit = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + limit

        with stub._state:
            stub.watches_opened += 1
            epoch = stub._watch_epoch
            if since and since < stub._oldest:
                backlog = [("ERROR", status(410, f"too old resource version: {since}"))]
                position = None
            elif since:
                backlog = []
                position = since
            else:
                # No resourceVersion: the current objects first, as ADDED.
                backlog = [
                    ("ADDED", copy.deepcopy(job))
                    for job in self._selected(namespace, selector)
                ]
                position = stub._rv

        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for kind, obj in backlog:
                self._chunk({"type": kind, "object": obj})
            while position is not None:
                with stub._state:
                    pending = [
                        (rv, kind, obj)
                        for rv, kind, obj in stub._events
                        if rv > position and self._wanted(obj, namespace, selector)
                    ]
                    if pending:
                        position = pending[-1][0]
                    elif (
                        stub._stopping
                        or stub._watch_epoch != epoch
                        or time.monotonic() >= deadline
                    ):
                        break
                    else:
                        stub._state.wait(min(0.5, deadline - time.monotonic()))
                for _, kind, obj in pending:
                    self._chunk({"type": kind, "object": obj})
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    @staticmethod
    def _wanted(obj: dict[str, Any], namespace: str | None, selector: str) -> bool:
        metadata = obj["metadata"]
        return (namespace is None or metadata["namespace"] == namespace) and matches(
            selector, metadata.get("labels") or {}
        )

    def _chunk(self, event: dict[str, Any]) -> None:
        line = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        self.wfile.flush()

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
