"""Cold start and memory: from process start to the first 2xx of a real event.

Each function is started as Knative starts it, by the functions-framework
CLI, against a real nats-server, and sent a real event of its type (the api a
GraphQL query) until it answers 2xx. The CLI's gunicorn master imports the
function and binds the port, then forks the worker that serves; a request
sent meanwhile waits in the listen backlog, so the time to the first 2xx is
what the first event after scale-to-zero waits for. Resident memory is read
from /proc for the master and the worker once that event is answered.

Two baselines are started the same way: a bare aio function, and the same
bare function importing every third-party module our function has loaded by
the end of its first event. Our functions run from a byte-compiled copy of
the tree, as the images compile theirs; ``checkout`` is the tree as it is
here, where nothing writes bytecode.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from bench import profiles
from bench.harness import (
    PYTHON,
    ROOT,
    SAMPLES,
    Arrivals,
    BenchError,
    Proc,
    Processes,
    port_open,
    pss_kib,
    rss_kib,
)
from bench.receiver import Receiver
from bench.stats import median, ratio
from noetl import binding, localrun, records, topology
from noetl.messages import event_for
from noetl.models import (
    Payload,
    RegisterPluginImage,
    RegistrationRequested,
    ReportPluginRegistration,
)

FUNCTIONS = ("api", "dispatcher", "catalog", "notifier")
KINDS = ("bare", "imports", "ours", "checkout")
EXAMPLE = "localhost/noetl/example-plugin:1.0"
TARGET = 1.2
#: Seconds a start may take before it counts as failed.
START_LIMIT = 30.0
QUERY = "query ($refId: ID!) { registration(refId: $refId) { state } }"


@dataclass(frozen=True)
class Plan:
    rounds: int
    #: The code before a change, a copy of the checkout, started in the same
    #: rounds as ``before``.
    before: Path | None = None


@dataclass(frozen=True)
class Request:
    """One real event for a function, as an HTTP request."""

    path: str
    headers: dict[str, str]
    body: str
    ref_id: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "headers": self.headers, "body": self.body}


@dataclass
class Start:
    """One cold start's readings: seconds from process start, KiB of memory."""

    listen_s: float
    first_s: float
    warm_s: float
    attempts: int
    worker_rss: int
    master_rss: int
    worker_pss: int
    master_pss: int


@dataclass
class Variant:
    function: str
    kind: str
    source: Path
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    starts: list[Start] = field(default_factory=list)

    @property
    def strict(self) -> bool:
        """Whether the answer must be our function's real one, not any 2xx."""
        return self.kind in ("ours", "checkout", "before")


class Events:
    """Fresh real events, with whatever records they need already stored."""

    def __init__(self, kv: KeyValue, callback: str) -> None:
        self.kv = kv
        self.callback = callback
        self.count = 0

    async def request(self, function: str) -> Request:
        self.count += 1
        ref_id = str(uuid.uuid4())
        name = f"cold-{function}-{self.count}"
        if function in ("api", "notifier"):
            await records.create(
                self.kv,
                records.Registration(
                    ref_id=ref_id,
                    plugin_name=name,
                    image_url=EXAMPLE,
                    callback_api=self.callback,
                    request_source={"gateway": "API"},
                ),
            )
        if function == "api":
            body = {"query": QUERY, "variables": {"refId": ref_id}}
            headers = {"Content-Type": "application/json"}
            return Request("/gql", headers, json.dumps(body), ref_id)
        payload = _payload(function, ref_id, name)
        headers, data = binding.to_binary(event_for(payload, "bench", "bench"))
        headers.pop(binding.MSG_ID)
        return Request("/", headers, data.decode(), ref_id)


def _payload(function: str, ref_id: str, name: str) -> Payload:
    source = {"gateway": "API"}
    if function == "dispatcher":
        return RegistrationRequested(
            ref_id=ref_id, plugin_name=name, image_url=EXAMPLE, request_source=source
        )
    if function == "catalog":
        return RegisterPluginImage(
            ref_id=ref_id, plugin_name=name, image_url=EXAMPLE, request_source=source
        )
    return ReportPluginRegistration(ref_id=ref_id, plugin_name=name, state="success")


def answered(variant: Variant, status: int, body: bytes) -> bool:
    if not 200 <= status < 300:
        return False
    if variant.strict and variant.function == "api":
        data = json.loads(body)
        return "errors" not in data and data["data"]["registration"] is not None
    return True


def compiled_tree(tree: Path, origin: Path) -> Path:
    """A copy of the code and the samples with bytecode, as an image has it."""
    skip = shutil.ignore_patterns("__pycache__")
    for name in ("noetl", "functions", "sources", "plugins"):
        shutil.copytree(origin / name, tree / name, ignore=skip, dirs_exist_ok=True)
    shutil.copytree(SAMPLES, tree / "samples", ignore=skip, dirs_exist_ok=True)
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(tree)], check=True)
    return tree


class ColdStarts:
    """Starts every variant in turn and keeps what each start measured."""

    def __init__(
        self, procs: Processes, work: Path, nats_url: str, before: Path | None
    ) -> None:
        self.procs = procs
        self.work = work
        self.nats_url = nats_url
        self.tree = compiled_tree(work / "tree", ROOT)
        # What a change replaced, measured in the same rounds as the change.
        self.before = None
        self.kinds: tuple[str, ...] = KINDS
        if before is not None:
            self.before = compiled_tree(work / "before", before)
            self.kinds = (*KINDS, "before")
        self.variants: dict[tuple[str, str], Variant] = {}
        self.inproc: dict[str, dict[str, Any]] = {}
        self.reports = Arrivals()

    def variant(self, function: str, kind: str) -> Variant:
        base = {"NATS_URL": self.nats_url}
        sample = (
            self.tree
            / "samples"
            / ("bare_http.py" if function == "api" else "bare_event.py")
        )
        compiled = {**base, "PYTHONPATH": str(self.tree)}
        if kind == "ours":
            source = self.tree / "functions" / function / "main.py"
            return Variant(function, kind, source, self.tree, compiled)
        if kind == "checkout":
            source = ROOT / "functions" / function / "main.py"
            return Variant(function, kind, source, ROOT, dict(base))
        if kind == "before":
            assert self.before is not None
            source = self.before / "functions" / function / "main.py"
            env = {**base, "PYTHONPATH": str(self.before)}
            return Variant(function, kind, source, self.before, env)
        env = dict(compiled)
        if kind == "imports":
            env["BENCH_IMPORTS_FILE"] = str(self.work / f"imports-{function}.txt")
        return Variant(function, kind, sample, self.tree, env)

    async def run(self, plan: Plan) -> dict[str, Any]:
        client = await nats.connect(self.nats_url)
        js = client.jetstream()
        await topology.provision(js)
        kv = await js.key_value(topology.REGISTRATIONS)
        sub = await client.subscribe(topology.SUBJECT_SCHEMA, cb=self._reported)
        receiver = Receiver()
        await receiver.start()
        events = Events(kv, receiver.url)
        try:
            for function in FUNCTIONS:
                await self._discover(function, events)
                for kind in self.kinds:
                    self.variants[function, kind] = self.variant(function, kind)
            for turn in range(plan.rounds):
                for function in FUNCTIONS:
                    # A different order each round, so no kind always goes first.
                    shift = turn % len(self.kinds)
                    for kind in self.kinds[shift:] + self.kinds[:shift]:
                        variant = self.variants[function, kind]
                        variant.starts.append(await self._start(variant, events, turn))
            return self._results()
        finally:
            await sub.unsubscribe()
            await receiver.stop()
            await client.close()

    async def _reported(self, msg: Msg) -> None:
        self.reports.add(json.loads(msg.data).get("refId", ""))

    async def _discover(self, function: str, events: Events) -> None:
        """Which modules the function loads, and its import and first-event time."""
        bare = self.variant(function, "bare")
        ours = self.variant(function, "ours")
        found = {}
        for variant in (bare, ours):
            found[variant.kind] = await self.inproc_run(variant, events)
        loaded_bare = set(found["bare"]["modules"])
        listing = [m for m in found["ours"]["modules"] if m not in loaded_bare]
        (self.work / f"imports-{function}.txt").write_text("\n".join(listing))
        found["imports"] = await self.inproc_run(
            self.variant(function, "imports"), events
        )
        self.inproc[function] = {
            kind: {
                "import_ms": round(run["import_s"] * 1000, 1),
                "first_event_ms": round(run["first_event_s"] * 1000, 1),
                "status": run["status"],
            }
            for kind, run in found.items()
        }
        self.inproc[function]["modules_imported"] = len(listing)
        if found["ours"]["status"] >= 300:
            raise BenchError(f"{function} refused its event: {found['ours']['body']}")

    async def inproc_run(
        self, variant: Variant, events: Events, *extra: str, imports: bool = False
    ) -> dict[str, Any]:
        request = await events.request(variant.function)
        path = self.work / f"request-{variant.function}-{events.count}.json"
        path.write_text(json.dumps(request.to_json()))
        flags = ["-X", "importtime"] if imports else []
        command = [PYTHON, *flags, "-m", "bench.inproc"]
        command += ["--source", str(variant.source)]
        command += ["--request", str(path), *extra]
        # The copy's packages first; bench itself is only in the checkout.
        paths = [variant.env["PYTHONPATH"]] if "PYTHONPATH" in variant.env else []
        env = {**variant.env, "PYTHONPATH": ":".join([*paths, str(ROOT)])}
        done = await asyncio.to_thread(
            subprocess.run,
            command,
            env={**os.environ, **env},
            cwd=variant.cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise BenchError(f"bench.inproc failed for {variant.function}:\n{done}")
        result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        if imports:
            result["imports"] = profiles.importtime_summary(done.stderr)
        return result

    async def _start(self, variant: Variant, events: Events, turn: int) -> Start:
        request = await events.request(variant.function)
        port = localrun.free_port()
        command = localrun.function_command("x", port)
        command[command.index("--source") + 1] = str(variant.source)
        name = f"cold-{variant.function}-{variant.kind}-{turn}"

        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True)
        ) as session:
            proc = self.procs.start(name, command, env=variant.env, cwd=variant.cwd)
            try:
                start = await self._measure(proc, port, variant, request, session)
                await self._let_runs_finish(variant, request)
                second = await events.request(variant.function)
                began = time.perf_counter()
                status, body = await _post(session, port, second)
                start.warm_s = time.perf_counter() - began
                if not answered(variant, status, body):
                    raise BenchError(f"{name}: second event answered {status}")
                await self._let_runs_finish(variant, second)
            finally:
                self.procs.stop(proc)
        return start

    async def _measure(
        self,
        proc: Proc,
        port: int,
        variant: Variant,
        request: Request,
        session: aiohttp.ClientSession,
    ) -> Start:
        listen = None
        attempts = 0
        while True:
            now = time.perf_counter() - proc.started
            if now > START_LIMIT or not proc.alive():
                raise BenchError(f"{proc.name} gave no 2xx:\n{proc.tail()}")
            if listen is None:
                if not await asyncio.to_thread(port_open, port):
                    await asyncio.sleep(0.005)
                    continue
                listen = time.perf_counter() - proc.started
            attempts += 1
            try:
                status, body = await _post(session, port, request)
            except aiohttp.ClientError:
                await asyncio.sleep(0.01)
                continue
            if answered(variant, status, body):
                break
            await asyncio.sleep(0.02)
        first = time.perf_counter() - proc.started

        pids = proc.members()
        master, workers = pids[0], pids[1:]
        return Start(
            listen_s=listen,
            first_s=first,
            warm_s=float("nan"),
            attempts=attempts,
            worker_rss=sum(rss_kib(pid) for pid in workers),
            master_rss=rss_kib(master),
            worker_pss=sum(pss_kib(pid) for pid in workers),
            master_pss=pss_kib(master),
        )

    async def _let_runs_finish(self, variant: Variant, request: Request) -> None:
        """Wait for a plugin run the catalog started, so it loads no later start."""
        if variant.function != "catalog" or not variant.strict:
            return
        await self.reports.wait_for({request.ref_id}, within=5)

    def _results(self) -> dict[str, Any]:
        table: dict[str, Any] = {}
        for function in FUNCTIONS:
            kinds = {
                kind: _summary(self.variants[function, kind]) for kind in self.kinds
            }
            ours, imports, bare = kinds["ours"], kinds["imports"], kinds["bare"]
            ratios = {
                "first_vs_imports": ratio(ours["first_ms"], imports["first_ms"]),
                "first_vs_bare": ratio(ours["first_ms"], bare["first_ms"]),
                "rss_vs_imports": ratio(
                    ours["worker_rss_mb"], imports["worker_rss_mb"]
                ),
                "rss_vs_bare": ratio(ours["worker_rss_mb"], bare["worker_rss_mb"]),
                "pss_vs_imports": ratio(ours["pss_mb"], imports["pss_mb"]),
            }
            if "before" in kinds:
                before = kinds["before"]
                ratios["before_first_vs_ours"] = ratio(
                    before["first_ms"], ours["first_ms"]
                )
                ratios["before_first_vs_imports"] = ratio(
                    before["first_ms"], imports["first_ms"]
                )
                ratios["before_rss_vs_ours"] = ratio(
                    before["worker_rss_mb"], ours["worker_rss_mb"]
                )
            table[function] = {
                "kinds": kinds,
                "ratios": ratios,
                "met": {
                    "cold_start": ratios["first_vs_imports"] <= TARGET,
                    "memory": ratios["rss_vs_imports"] <= TARGET,
                },
                "inproc": self.inproc[function],
            }
        return {"target": TARGET, "functions": table}

    async def profile_misses(self, results: dict[str, Any]) -> None:
        """Profile each function that missed a target, beside its baseline.

        The function nearest its cold-start target is profiled too, so that
        a run where every target is met still shows where the time goes.
        """
        nearest = max(
            results["functions"],
            key=lambda name: results["functions"][name]["ratios"]["first_vs_imports"],
        )
        client = await nats.connect(self.nats_url)
        receiver = Receiver()
        await receiver.start()
        try:
            kv = await client.jetstream().key_value(topology.REGISTRATIONS)
            events = Events(kv, receiver.url)
            for function, row in results["functions"].items():
                if all(row["met"].values()) and function != nearest:
                    continue
                row["profile"] = await self._profile(function, events)
        finally:
            await receiver.stop()
            await client.close()

    async def _profile(self, function: str, events: Events) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for kind in ("imports", "ours"):
            variant = self.variant(function, kind)
            text = profiles.DIR / f"cold-{function}-{kind}.txt"
            run = await self.inproc_run(
                variant, events, "--profile", str(text), imports=True
            )
            memory = await self.inproc_run(variant, events, "--memory")
            found[kind] = {
                "import_ms": round(run["import_s"] * 1000, 1),
                "first_event_ms": round(run["first_event_s"] * 1000, 1),
                "file": profiles.shown(text),
                "imports": run["imports"],
                "first_event": run["profile"],
                "allocated": memory["allocated"],
            }
        return found


async def _post(
    session: aiohttp.ClientSession, port: int, request: Request
) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{port}{request.path}"
    async with session.post(
        url,
        data=request.body.encode(),
        headers=request.headers,
        timeout=aiohttp.ClientTimeout(total=START_LIMIT),
    ) as response:
        return response.status, await response.read()


def _summary(variant: Variant) -> dict[str, Any]:
    starts = variant.starts

    def mid(read: Callable[[Start], float], scale: float = 1.0) -> float:
        return round(median([read(s) for s in starts]) * scale, 1)

    return {
        "n": len(starts),
        "listen_ms": mid(lambda s: s.listen_s, 1000),
        "first_ms": mid(lambda s: s.first_s, 1000),
        "warm_ms": mid(lambda s: s.warm_s, 1000),
        "worker_rss_mb": mid(lambda s: s.worker_rss, 1 / 1024),
        "master_rss_mb": mid(lambda s: s.master_rss, 1 / 1024),
        "rss_sum_mb": mid(lambda s: s.worker_rss + s.master_rss, 1 / 1024),
        "pss_mb": mid(lambda s: s.worker_pss + s.master_pss, 1 / 1024),
        "first_ms_all": [round(s.first_s * 1000) for s in starts],
    }


async def run(procs: Processes, work: Path, plan: Plan) -> dict[str, Any]:
    """The section: every function and its baselines, then profiles of misses."""
    _, nats_url = procs.nats("cold-nats", work / "cold-jetstream")
    starts = ColdStarts(procs, work, nats_url, plan.before)
    results = await starts.run(plan)
    await starts.profile_misses(results)
    return results
