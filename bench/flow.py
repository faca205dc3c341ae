"""End to end: registrations from mutation to callback, at rising offered load.

Each stack runs under the supervisor (:mod:`bench.stack`), ours and the
FastStream peer side by side, each on its own NATS and ports; they take turns
at each load level so that drift favours neither. A level submits
registrations of the example plugin at a fixed rate (open loop: a slow answer
does not slow the next submission), each with a callback to this process.

The time from mutation to callback is split by what this process sees on
NATS and in the record: the api (mutation to 1.2), each hop of a source or
subscriber, and the plugin run, from the record's ``registering`` to the
plugin's 4.1 report. What the pipeline itself adds is the total less the
plugin run. A level saturates when some registration is not called back in
time, fewer than 85 % of the offered rate complete, or the pipeline's median
grows past three times its first level's; the stack's load stops rising then.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from bench.harness import (
    PYTHON,
    Arrivals,
    Proc,
    Processes,
    cmdline,
    cpu_seconds,
    descendants,
    environ,
    pss_kib,
    rss_kib,
)
from bench.receiver import Receiver
from bench.stats import median, ms, percentile, ratio
from noetl import localrun, records, topology
from noetl.dev.stack import SPAN, free_port_base

SHAPES = ("ours", "peer")
EXAMPLE = "localhost/noetl/example-plugin:1.0"
STEPS = {
    "1.2": topology.SUBJECT_API,
    "2.2": topology.SUBJECT_REGISTER,
    "4.1": topology.SUBJECT_SCHEMA,
    "5.1": topology.SUBJECT_NOTIFY,
}
MUTATION = (
    "mutation ($input: PluginRegistrationRequest!) "
    "{ registerPlugin(input: $input) { refId } }"
)
#: Seconds a saturated level's backlog may take to clear before the next.
SETTLE = 60.0
PIPELINE = ("dispatcher", "catalog", "notifier")


@dataclass(frozen=True)
class Plan:
    rates: tuple[float, ...]
    window: float
    drain: float


@dataclass
class Submitted:
    ref_id: str
    submitted: float
    answered: float


@dataclass
class Running:
    """One stack under test: its supervisor process and what is seen of it."""

    shape: str
    proc: Proc
    api_url: str
    nc: Client
    steps: dict[str, Arrivals] = field(default_factory=dict)
    levels: list[dict[str, Any]] = field(default_factory=list)
    saturated: bool = False
    baseline_pipeline: float = math.inf


async def start(procs: Processes, work: Path, shape: str) -> Running:
    base = free_port_base()
    nats_port = localrun.free_port()
    while base <= nats_port < base + SPAN:
        nats_port = localrun.free_port()
    command = [PYTHON, "-m", "bench.stack", shape, "--port-base", str(base)]
    command += ["--nats-port", str(nats_port), "--data-dir", str(work / shape)]
    proc = procs.start(f"stack-{shape}", command)
    await asyncio.to_thread(proc.wait_for_text, "\nready\n", 120)
    nc = await nats.connect(f"nats://127.0.0.1:{nats_port}")
    running = Running(shape, proc, f"http://127.0.0.1:{base}/gql", nc)
    for step, subject in STEPS.items():
        arrivals = running.steps[step] = Arrivals()
        await nc.subscribe(subject, cb=_observer(arrivals))
    return running


def _observer(arrivals: Arrivals) -> Any:
    async def seen(msg: Msg) -> None:
        now = time.time()
        with contextlib.suppress(ValueError, AttributeError):
            arrivals.add(str(json.loads(msg.data).get("refId")), now)

    return seen


async def submit(
    session: aiohttp.ClientSession, api_url: str, name: str, callback: str
) -> Submitted:
    fields = {"imageUrl": EXAMPLE, "pluginName": name, "callbackApi": callback}
    body = {"query": MUTATION, "variables": {"input": fields}}
    began = time.time()
    async with session.post(api_url, json=body) as response:
        answer = await response.json()
    if "errors" in answer:
        raise RuntimeError(f"the api refused a registration: {answer['errors']}")
    ref_id = answer["data"]["registerPlugin"]["refId"]
    return Submitted(ref_id, began, time.time())


async def level(
    stack: Running,
    receiver: Receiver,
    session: aiohttp.ClientSession,
    rate: float,
    plan: Plan,
) -> dict[str, Any]:
    """Offer ``rate`` registrations per second for the plan's window."""
    count = max(3, round(rate * plan.window))
    before = cpu_by_part(stack.proc.pid)
    began = time.monotonic()
    tasks = []
    for index in range(count):
        await asyncio.sleep(max(0.0, began + index / rate - time.monotonic()))
        name = f"bench-{stack.shape}-{rate:g}-{index}".replace(".", "-")
        tasks.append(
            asyncio.create_task(submit(session, stack.api_url, name, receiver.url))
        )
    sent = list(await asyncio.gather(*tasks))

    ref_ids = {s.ref_id for s in sent}
    await receiver.arrivals.wait_for(ref_ids, plan.drain)
    on_time = {r: receiver.arrivals.at[r] for r in ref_ids if r in receiver.arrivals.at}
    after = cpu_by_part(stack.proc.pid)
    # A backlog left behind would load the other stack's next level.
    await receiver.arrivals.wait_for(ref_ids, SETTLE)

    registering = await _registering(stack.nc, ref_ids)
    return _measure(stack, rate, sent, on_time, registering, before, after)


async def _registering(nc: Client, ref_ids: set[str]) -> dict[str, float]:
    """When each registration's record went ``registering``, from its history."""
    kv = await nc.jetstream().key_value(topology.REGISTRATIONS)
    found = {}
    for ref_id in ref_ids:
        record = await records.get(kv, ref_id)
        for change in record.history if record else []:
            if change["state"] == records.REGISTERING:
                found[ref_id] = datetime.fromisoformat(change["at"]).timestamp()
    return found


def _measure(
    stack: Running,
    rate: float,
    sent: list[Submitted],
    called: dict[str, float],
    registering: dict[str, float],
    before: dict[str, float],
    after: dict[str, float],
) -> dict[str, Any]:
    done = [s for s in sent if s.ref_id in called]
    total = [called[s.ref_id] - s.submitted for s in done]
    steps: dict[str, list[float]] = {}
    plugin: list[float] = []
    pipeline: list[float] = []
    for s in done:
        at = {step: arr.at.get(s.ref_id) for step, arr in stack.steps.items()}
        at["registering"] = registering.get(s.ref_id)
        at["callback"] = called[s.ref_id]
        chain = [("mutation", s.submitted), *((k, at[k]) for k in _ORDER)]
        for (a, t_a), (b, t_b) in itertools.pairwise(chain):
            if t_a is not None and t_b is not None:
                steps.setdefault(f"{a}→{b}", []).append(t_b - t_a)
        if at["registering"] is not None and at["4.1"] is not None:
            run = at["4.1"] - at["registering"]
            plugin.append(run)
            pipeline.append(called[s.ref_id] - s.submitted - run)

    times = sorted(called[s.ref_id] for s in done)
    achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 else math.nan
    cpu = {part: after.get(part, 0.0) - before.get(part, 0.0) for part in after}
    per = max(1, len(done))
    result: dict[str, Any] = {
        "offered_per_s": rate,
        "submitted": len(sent),
        "completed": len(done),
        "achieved_per_s": round(achieved, 2),
        "latency": ms(total),
        "plugin_run": ms(plugin),
        "pipeline": ms(pipeline),
        "steps_p50_ms": {k: round(median(v) * 1000, 1) for k, v in steps.items()},
        "steps_p95_ms": {
            k: round(percentile(v, 95) * 1000, 1) for k, v in steps.items()
        },
        "cpu_ms_per_registration": {
            part: round(seconds * 1000 / per, 1)
            for part, seconds in sorted(cpu.items())
        },
    }
    result["saturated"] = (
        len(done) < len(sent)
        or not achieved >= 0.85 * rate
        or ratio(result["pipeline"]["p50_ms"], stack.baseline_pipeline) > 3
    )
    if not result["saturated"]:
        # The quickest level so far: one slow level does not raise the bar.
        stack.baseline_pipeline = min(
            stack.baseline_pipeline, result["pipeline"]["p50_ms"]
        )
    return result


_ORDER = ("1.2", "2.2", "registering", "4.1", "5.1", "callback")


def classify(pid: int) -> str | None:
    """Which part of a stack a process is, by its command line."""
    argv = cmdline(pid)
    joined = " ".join(argv)
    if not argv:
        return None
    if argv[0].endswith("nats-server"):
        return "nats"
    if "functions-framework" in joined:
        return argv[argv.index("--source") + 1].split("/")[-2]
    if "sources.jetstream" in joined:
        return "source:" + environ(pid).get("NOETL_SOURCE_DURABLE", "?")
    if "bench.peer" in joined:
        return "peer:" + argv[-1]
    if "plugins." in joined:
        return "plugin runs"
    return None


def cpu_by_part(root: int) -> dict[str, float]:
    """CPU seconds used so far by each part of the stack below ``root``."""
    used: dict[str, float] = {"supervisor": cpu_seconds(root)[0]}
    for pid in descendants(root):
        part = classify(pid)
        if part is None:
            continue
        own, children = cpu_seconds(pid)
        used[part] = used.get(part, 0.0) + own
        # The catalog waits for its plugin runs, so their CPU lands here.
        if part in ("catalog", "peer:catalog"):
            used["plugin runs"] = used.get("plugin runs", 0.0) + children
    return used


def footprint(root: int) -> dict[str, Any]:
    """Processes and memory of the parts that carry the chain (not api, NATS).

    Split into what is always on (our sources, the peer's services) and what
    Knative may scale to zero (our functions, master and worker).
    """
    found: dict[str, Any] = {"processes": 0, "rss_mb": 0.0, "pss_mb": 0.0}
    always = {"processes": 0, "rss_mb": 0.0, "pss_mb": 0.0}
    for pid in descendants(root):
        part = classify(pid) or ""
        if part not in PIPELINE and not part.startswith(("source:", "peer:")):
            continue
        rss, pss = rss_kib(pid) / 1024, pss_kib(pid) / 1024
        for into in (found, always) if part not in PIPELINE else (found,):
            into["processes"] += 1
            into["rss_mb"] += rss
            into["pss_mb"] += pss
    for into in (found, always):
        into["rss_mb"] = round(into["rss_mb"], 1)
        into["pss_mb"] = round(into["pss_mb"], 1)
    return {**found, "always_on": always}


async def run(procs: Processes, work: Path, plan: Plan) -> dict[str, Any]:
    stacks = [await start(procs, work, shape) for shape in SHAPES]
    receiver = Receiver()
    await receiver.start()
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            for stack in stacks:
                # The first events connect and provision; they are not measured.
                warm = [
                    await submit(
                        session, stack.api_url, f"warm-{stack.shape}-{i}", receiver.url
                    )
                    for i in range(2)
                ]
                await receiver.arrivals.wait_for({w.ref_id for w in warm}, SETTLE)
            for rate in plan.rates:
                for stack in stacks:
                    if stack.saturated:
                        continue
                    print(f"bench: flow {stack.shape} at {rate:g}/s", flush=True)
                    result = await level(stack, receiver, session, rate, plan)
                    stack.levels.append(result)
                    stack.saturated = result["saturated"]
                if all(stack.saturated for stack in stacks):
                    break
            return {
                stack.shape: {
                    "levels": stack.levels,
                    "footprint": footprint(stack.proc.pid),
                }
                for stack in stacks
            }
        finally:
            await receiver.stop()
            for stack in stacks:
                await stack.nc.close()
