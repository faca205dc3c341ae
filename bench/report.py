"""Writing the results: JSON as measured, a Markdown table, a PNG chart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

PEER_BUYS = (
    "What the HTTP hop buys: each function is a Knative Service that scales "
    "to zero and out on its own (per-function concurrency targets), behind "
    "an always-on source that holds the durable consumer, so an idle function "
    "costs nothing and a slow one slows only its own subjects; retries are "
    "redeliveries with backoff decided by HTTP status, with a dead-letter "
    "stream. The peer's services must stay up to hold their consumers and "
    "scale only as whole processes."
)


def clean(value: Any) -> Any:
    """``value`` with NaN as null, which JSON has and NaN is not."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(clean(results), indent=2) + "\n")


def _n(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _lat(row: dict[str, Any]) -> str:
    return " / ".join(_n(row.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms"))


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def hop_md(hop: dict[str, Any]) -> list[str]:
    lines = [
        "## 1. Source hop",
        "",
        "Events/s through JetStream → consumer → HTTP → function → publish → "
        "ack, and latency (ms, p50 / p95 / p99) from publish to the onward "
        "message; CPU per event of the consumer process and of the sink's "
        "gunicorn worker, read from /proc. *limit*: a bare loop and a bare "
        "ASGI app on the same server "
        "stack; *framework*: the bare loop feeding the real functions-framework "
        "function; *ours*: `python -m sources.jetstream` feeding it. Target: "
        f"ours/limit ≥ {hop['target']}.",
        "",
    ]
    rows = []
    for row in hop["rows"]:
        rows.append(
            [
                str(row["concurrency"]),
                _n(row["limit"]["events_per_s"], 0),
                _n(row["framework"]["events_per_s"], 0),
                _n(row["ours"]["events_per_s"], 0),
                f"**{_n(row['ratio'], 2)}**",
                _n(row["framework_ratio"], 2),
                "met" if row["met"] else "**missed**",
                _lat(row["limit"]),
                _lat(row["ours"]),
                " / ".join(_n(row[v]["consumer_cpu_us"], 0) for v in ("limit", "ours")),
                " / ".join(_n(row[v]["sink_cpu_us"], 0) for v in ("limit", "ours")),
            ]
        )
    head = ["concurrency", "limit ev/s", "framework ev/s", "ours ev/s"]
    head += ["ours/limit", "framework/limit", "target", "limit ms", "ours ms"]
    head += ["consumer CPU µs/ev loop / source", "sink CPU µs/ev bare / function"]
    before = [row for row in hop["rows"] if "before" in row]
    if before:
        head += ["before ev/s", "before/limit", "before consumer CPU µs/ev"]
        for cells, row in zip(rows, hop["rows"], strict=True):
            cells += [
                _n(row["before"]["events_per_s"], 0),
                f"**{_n(row['before_ratio'], 2)}**",
                _n(row["before"]["consumer_cpu_us"], 0),
            ]
    lines += _table(head, rows)
    if "profile" in hop:
        lines += _pyspy_md(hop["profile"])
    return lines


def _pyspy_md(profile: dict[str, Any]) -> list[str]:
    lines = [f"py-spy at concurrency {profile['concurrency']}, share of samples:", ""]
    for name in ("source", "function"):
        found = profile[name]
        packages = ", ".join(
            f"{p['name']} {p['percent']}%" for p in found["self_by_package"][:6]
        )
        ours = ", ".join(
            f"{p['name'].split(' [')[0]} {p['percent']}%"
            for p in found["ours_inclusive"][:6]
        )
        lines.append(f"- {name} (`{found['file']}`): self time by package: {packages}")
        if ours:
            lines.append(f"  - in or under our functions: {ours}")
    return [*lines, ""]


def flow_md(flow: dict[str, Any]) -> list[str]:
    lines = [
        "## 2. End to end",
        "",
        "Registrations of the example plugin offered at a fixed rate, mutation "
        "to callback (ms, p50 / p95 / p99). *plugin run*: the record's "
        "`registering` to the plugin's 4.1 report (it includes waiting for one "
        "of the catalog's `NOETL_JOB_CONCURRENCY` run slots); *pipeline*: the "
        "rest, what the stack itself adds. CPU: milliseconds per registration "
        "used by the chain's processes (for ours the three functions and their "
        "sources; for the peer its three services), and by the plugin runs.",
        "",
    ]
    rows = []
    for shape, found in flow.items():
        for level in found["levels"]:
            cpu = level["cpu_ms_per_registration"]
            chain = chain_cpu(level)
            rows.append(
                [
                    shape,
                    _n(level["offered_per_s"], 1),
                    _n(level["achieved_per_s"], 2),
                    f"{level['completed']}/{level['submitted']}",
                    _lat(level["latency"]),
                    _n(level["plugin_run"]["p50_ms"]),
                    _lat(level["pipeline"]),
                    _n(chain),
                    _n(cpu.get("plugin runs")),
                    "**yes**" if level["saturated"] else "no",
                ]
            )
    head = ["stack", "offered/s", "achieved/s", "called back"]
    head += ["mutation→callback ms", "plugin run p50", "pipeline ms"]
    head += ["chain CPU ms/reg", "plugin CPU ms/reg", "saturated"]
    lines += _table(head, rows)

    lines += [
        "Time of each step (ms, p50 / p95) at the highest load that did not "
        "saturate either stack:",
        "",
    ]
    common = _common_level(flow)
    names: list[str] = []
    cells: dict[str, dict[str, str]] = {}
    for shape, found in flow.items():
        level = next(lv for lv in found["levels"] if lv["offered_per_s"] == common)
        cells[shape] = {
            name: f"{_n(p50)} / {_n(level['steps_p95_ms'].get(name))}"
            for name, p50 in level["steps_p50_ms"].items()
        }
        names += [name for name in level["steps_p50_ms"] if name not in names]
    rows = [[name, *(cells[s].get(name, "-") for s in cells)] for name in names]
    lines += _table([f"step at {_n(common)}/s", *cells], rows)
    return lines


def _common_level(flow: dict[str, Any]) -> float:
    """The highest offered rate at which no stack saturated (else the lowest)."""
    rates = None
    for found in flow.values():
        calm = {lv["offered_per_s"] for lv in found["levels"] if not lv["saturated"]}
        rates = calm if rates is None else rates & calm
    if rates:
        return max(rates)
    return min(lv["offered_per_s"] for f in flow.values() for lv in f["levels"])


def cold_md(cold: dict[str, Any]) -> list[str]:
    lines = [
        "## 3. Cold start and memory",
        "",
        "Milliseconds from process start to the first 2xx of a real event "
        "(median of the rounds), and the gunicorn worker's resident memory "
        "(MB) once it is answered. *bare*: a bare aio function; *+imports*: "
        "the same importing every third-party module our function has loaded "
        "by then; *ours*: the function from a byte-compiled tree, as the "
        "images have it; *checkout*: from this checkout, where nothing writes "
        f"bytecode. Target: ours / +imports ≤ {cold['target']}.",
        "",
    ]
    rows = []
    for name, found in cold["functions"].items():
        k, r = found["kinds"], found["ratios"]
        rows.append(
            [
                name,
                _n(k["bare"]["first_ms"], 0),
                _n(k["imports"]["first_ms"], 0),
                _n(k["ours"]["first_ms"], 0),
                f"**{_n(r['first_vs_imports'], 2)}**",
                _n(r["first_vs_bare"], 2),
                _n(k["checkout"]["first_ms"], 0),
                " / ".join(
                    _n(k[x]["worker_rss_mb"]) for x in ("bare", "imports", "ours")
                ),
                f"**{_n(r['rss_vs_imports'], 2)}**",
                _n(r["rss_vs_bare"], 2),
                _n(k["ours"]["master_rss_mb"]),
                _n(r["pss_vs_imports"], 2),
                ", ".join(
                    f"{what} {'met' if ok else '**missed**'}"
                    for what, ok in found["met"].items()
                ),
            ]
        )
    head = ["function", "bare ms", "+imports ms", "ours ms", "ours/+imp"]
    head += ["ours/bare", "checkout ms", "worker RSS MB bare / +imp / ours"]
    head += ["RSS ours/+imp", "RSS ours/bare", "master RSS MB", "PSS ours/+imp"]
    head += ["targets"]
    before = [f for f in cold["functions"].values() if "before" in f["kinds"]]
    if before:
        head += ["before ms", "before/ours", "before RSS MB"]
        for cells, found in zip(rows, cold["functions"].values(), strict=True):
            k, r = found["kinds"], found["ratios"]
            cells += [
                _n(k["before"]["first_ms"], 0),
                f"**{_n(r['before_first_vs_ours'], 2)}**",
                _n(k["before"]["worker_rss_mb"]),
            ]
    lines += _table(head, rows)

    lines += [
        "In one process, without a server (`bench/inproc.py`): milliseconds "
        "to import the function and to handle its first event.",
        "",
    ]
    rows = []
    for name, found in cold["functions"].items():
        p = found["inproc"]
        rows.append(
            [
                name,
                str(p["modules_imported"]),
                *(
                    f"{_n(p[x]['import_ms'], 0)} + {_n(p[x]['first_event_ms'], 0)}"
                    for x in ("bare", "imports", "ours")
                ),
            ]
        )
    head = ["function", "third-party modules", "bare", "+imports", "ours"]
    lines += _table(head, rows)

    for name, found in cold["functions"].items():
        if "profile" not in found:
            continue
        lines.append(f"Profile of {name}, in one process (`bench/inproc.py`):")
        lines.append("")
        for kind, prof in found["profile"].items():
            imports = prof["imports"]
            by = ", ".join(f"{p['name']} {p['ms']}" for p in imports["by_package_ms"])
            lines.append(
                f"- {kind}: import {prof['import_ms']} ms (-X importtime, self ms "
                f"by package: {by}; ours {imports['ours_ms']})"
            )
            first = prof["first_event"]
            packages = ", ".join(
                f"{p['name']} {p['percent']}%" for p in first["self_by_package"][:6]
            )
            lines.append(
                f"  - first event {prof['first_event_ms']} ms (pyinstrument, "
                f"`{prof['file']}`): {packages}"
            )
            ours = ", ".join(
                f"{p['name'].split(' [')[0]} {p['ms']}"
                for p in first["ours_inclusive_ms"][:6]
            )
            if ours:
                lines.append(f"  - in or under our functions (ms): {ours}")
            memory = ", ".join(
                f"{a['package']} {a['kib']}" for a in prof["allocated"][:6]
            )
            lines.append(f"  - allocated by package (tracemalloc, KiB): {memory}")
        lines.append("")
    return lines


def peer_md(flow: dict[str, Any]) -> list[str]:
    if not {"ours", "peer"} <= flow.keys():
        return []
    ours, peer = flow["ours"], flow["peer"]
    common = _common_level(flow)

    def at(found: dict[str, Any]) -> dict[str, Any]:
        return next(lv for lv in found["levels"] if lv["offered_per_s"] == common)

    def calm(found: dict[str, Any], key: str) -> float:
        values = [lv["pipeline"][key] for lv in found["levels"] if not lv["saturated"]]
        return median_of(values)

    def best(found: dict[str, Any]) -> float:
        rates = [lv["achieved_per_s"] for lv in found["levels"]]
        return max((r for r in rates if r is not None), default=math.nan)

    rows = [
        [
            f"pipeline p50 ms at {common:g}/s",
            *(at(f)["pipeline"]["p50_ms"] for f in (ours, peer)),
        ],
        [
            f"pipeline p95 ms at {common:g}/s",
            *(at(f)["pipeline"]["p95_ms"] for f in (ours, peer)),
        ],
        [
            "pipeline p50 ms, median of unsaturated levels",
            calm(ours, "p50_ms"),
            calm(peer, "p50_ms"),
        ],
        ["highest achieved registrations/s", best(ours), best(peer)],
        [
            f"chain CPU ms per registration at {common:g}/s",
            chain_cpu(at(ours)),
            chain_cpu(at(peer)),
        ],
        [
            "chain processes",
            ours["footprint"]["processes"],
            peer["footprint"]["processes"],
        ],
        ["chain RSS MB", ours["footprint"]["rss_mb"], peer["footprint"]["rss_mb"]],
        ["chain PSS MB", ours["footprint"]["pss_mb"], peer["footprint"]["pss_mb"]],
        [
            "always-on PSS MB (functions scaled to zero)",
            ours["footprint"]["always_on"]["pss_mb"],
            peer["footprint"]["always_on"]["pss_mb"],
        ],
    ]
    table = [
        [name, _n(float(o)), _n(float(p)), _n(_div(o, p), 2)] for name, o, p in rows
    ]
    lines = ["## 4. The peer: FastStream handlers on JetStream", ""]
    lines += _table(["", "ours", "peer", "ours/peer"], table)
    return [*lines, PEER_BUYS, ""]


def chain_cpu(level: dict[str, Any]) -> float:
    """CPU per registration of the chain's processes: not the api, NATS, runs."""
    cpu = level["cpu_ms_per_registration"]
    chain = ("dispatcher", "catalog", "notifier")
    return float(
        sum(
            v
            for k, v in cpu.items()
            if k.startswith(("source:", "peer:")) or k in chain
        )
    )


def median_of(values: list[float]) -> float:
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return math.nan
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _div(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) and not math.isnan(a) else math.nan


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        "# Benchmark results",
        "",
        f"{meta['mode']} run of {meta['started']}, {meta['seconds']:.0f} s, on "
        f"{meta['cores']} cores (load average {meta['load']} at the start). "
        "Absolute times drift on this shared machine; the ratios are taken "
        "in the same run. Chart: `bench/results.png`.",
        "",
    ]
    if meta.get("before"):
        lines += [
            f"*before*: the code of {meta['before']}, run beside ours in the "
            "same windows (hop) and rounds (cold start): the columns headed "
            "*before* are what this change replaced.",
            "",
        ]
    if "hop" in results:
        lines += hop_md(results["hop"])
    if "flow" in results:
        lines += flow_md(results["flow"])
    if "cold" in results:
        lines += cold_md(results["cold"])
    if "flow" in results:
        lines += peer_md(results["flow"])
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    if "hop" in results:
        _hop_chart(axes[0][0], results["hop"])
    if "flow" in results:
        _flow_chart(axes[0][1], results["flow"])
    if "cold" in results:
        _cold_chart(axes[1][0], results["cold"], "first_ms", "ms to first 2xx")
        _cold_chart(axes[1][1], results["cold"], "worker_rss_mb", "worker RSS, MB")
    figure.suptitle(f"NoETL plugin catalog benchmarks ({results['meta']['mode']} run)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _bars(axis: Any, groups: list[str], series: dict[str, list[float]]) -> None:
    width = 0.8 / len(series)
    for index, (name, values) in enumerate(series.items()):
        xs = [g + (index - (len(series) - 1) / 2) * width for g in range(len(groups))]
        axis.bar(xs, values, width, label=name)
    axis.set_xticks(range(len(groups)), groups)
    axis.legend(fontsize=8)


def _hop_chart(axis: Any, hop: dict[str, Any]) -> None:
    rows = hop["rows"]
    series = {
        v: [row[v]["events_per_s"] for row in rows]
        for v in ("limit", "framework", "ours")
    }
    _bars(axis, [f"c={row['concurrency']}" for row in rows], series)
    for index, row in enumerate(rows):
        axis.annotate(
            f"{row['ratio']:.2f}",
            (index + 0.27, row["ours"]["events_per_s"]),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    axis.set_title(f"Source hop: events/s (ours/limit above; target ≥ {hop['target']})")
    axis.set_ylabel("events/s")


def _flow_chart(axis: Any, flow: dict[str, Any]) -> None:
    for shape, found in flow.items():
        levels = found["levels"]
        rates = [lv["offered_per_s"] for lv in levels]
        axis.plot(
            rates,
            [lv["latency"]["p50_ms"] for lv in levels],
            "o-",
            label=f"{shape}: total p50",
        )
        axis.plot(
            rates,
            [lv["pipeline"]["p50_ms"] for lv in levels],
            "s--",
            label=f"{shape}: pipeline p50",
        )
        axis.plot(
            rates,
            [lv["pipeline"]["p95_ms"] for lv in levels],
            "^:",
            label=f"{shape}: pipeline p95",
        )
    axis.set_title("End to end: mutation → callback vs offered load")
    axis.set_xlabel("offered registrations/s")
    axis.set_ylabel("ms")
    axis.set_yscale("log")
    axis.legend(fontsize=7)


def _cold_chart(axis: Any, cold: dict[str, Any], key: str, label: str) -> None:
    names = list(cold["functions"])
    series = {
        kind: [cold["functions"][n]["kinds"][kind][key] for n in names]
        for kind in ("bare", "imports", "ours", "checkout")
    }
    _bars(axis, names, series)
    axis.set_title(f"Cold start: {label} (target ours ≤ {cold['target']}x +imports)")
    axis.set_ylabel(label)
