"""``python -m bench [--quick] [--only hop,flow,cold]``: run and write results.

The sections run one after the other, each with the rest of the machine's
benchmark processes stopped: cold start first (it is the most sensitive to
load), then the source hop, then the whole flow with the peer beside ours.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cold, flow, hop, profiles, report
from bench.harness import BENCH, Processes, stage

SECTIONS = ("cold", "hop", "flow")
Runner = Callable[[Processes, Path, Any], Awaitable[dict[str, Any]]]


PLANS: dict[bool, dict[str, Any]] = {
    # --quick: about two minutes, for checking the harness, not for figures.
    True: {
        "cold": cold.Plan(rounds=1),
        "hop": hop.Plan(concurrencies=(1, 10, 50), warmup=0.5, measure=2.5, repeats=1),
        "flow": flow.Plan(rates=(1.0, 3.0), window=4.0, drain=10.0),
    },
    False: {
        # Nine rounds: one start varies by a fifth on this machine, and with
        # five, the medians of identical code differed by up to 0.18.
        "cold": cold.Plan(rounds=9),
        "hop": hop.Plan(concurrencies=(1, 10, 50), warmup=1.0, measure=4.0, repeats=3),
        "flow": flow.Plan(
            rates=(0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0), window=10.0, drain=15.0
        ),
    },
}


async def measure(
    sections: list[str], quick: bool, work: Path, before: Path | None
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    plans = dict(PLANS[quick])
    for name in ("cold", "hop"):
        plans[name] = dataclasses.replace(plans[name], before=before)
    runners: dict[str, Runner] = {"cold": cold.run, "hop": hop.run, "flow": flow.run}
    for section in sections:
        with stage(section), Processes(work / section) as procs:
            results[section] = await runners[section](procs, work, plans[section])
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short check run")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"sections, of {SECTIONS}"
    )
    parser.add_argument("--out", type=Path, default=BENCH, help="where results go")
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    parser.add_argument(
        "--before",
        type=Path,
        help="a copy of the checkout before a change (git worktree add DIR REV): "
        "its code runs beside ours in the cold and hop sections",
    )
    args = parser.parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"no section {', '.join(sorted(unknown))}; sections: {SECTIONS}")

    profiles.DIR = args.out.resolve() / "profiles"
    shutil.rmtree(profiles.DIR, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="noetl-bench-"))
    started = time.time()
    meta = {
        "mode": "quick" if args.quick else "full",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load": round(os.getloadavg()[0], 2),
        "python": sys.version.split()[0],
        "before": _commit(args.before) if args.before else None,
    }
    try:
        before = args.before.resolve() if args.before else None
        results = asyncio.run(measure(sections, args.quick, work, before))
    except BaseException:
        print(f"bench: failed; the logs are in {work}", file=sys.stderr)
        raise
    meta["seconds"] = round(time.time() - started, 1)
    results = {"meta": meta, **results}

    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(results, args.out / "results.json")
    (args.out / "results.md").write_text(report.markdown(report.clean(results)))
    report.chart(report.clean(results), args.out / "results.png")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"bench: wrote {args.out / 'results.md'} in {meta['seconds']:.0f} s")
    return 0


def _commit(tree: Path) -> str:
    """``tree``'s commit as ``abc1234 (its subject)``, or its path if not a clone."""
    found = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h (%s)"],
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() if found.returncode == 0 else str(tree)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
