"""Reading profiles: where the time went, by package and by our own functions.

Two profilers, each where it fits: py-spy samples a running process from the
outside (the source and a function under load); pyinstrument runs inside one
(a function's import and first event). Both are boiled down the same way:
the share of samples whose innermost frame is in each package, and the
functions of ours that the most time was spent in or under.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Nothing of the project is imported here: bench.inproc loads this module in
# the process it measures.
BENCH = Path(__file__).resolve().parent
#: Where profiles are written; ``python -m bench --out`` moves it beside the
#: results.
DIR = BENCH / "profiles"


def shown(path: Path) -> str:
    """``path`` as the report names it: from the checkout's root if inside."""
    try:
        return str(path.relative_to(BENCH.parent))
    except ValueError:
        return str(path)


SITE = tuple({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
STDLIB = sysconfig.get_paths()["stdlib"]
OURS = ("noetl", "functions", "sources", "plugins")


def package_of(path: str | None) -> str:
    """The installed package, our folder, or "stdlib" a source file belongs to."""
    if not path:
        return "(native)"
    for site in SITE:
        if path.startswith(site):
            top = path[len(site) :].strip("/").split("/")[0]
            return top.removesuffix(".py")
    if path.startswith(STDLIB):
        return "stdlib"
    parts = Path(path).parts
    for ours in OURS:
        if ours in parts:
            return f"{ours} (ours)"
    if "samples" in parts:
        return "bench sample"
    return Path(path).name


def is_ours(path: str | None) -> bool:
    return package_of(path).endswith("(ours)")


def shares(weights: Iterable[tuple[str, float]], top: int = 8) -> list[dict[str, Any]]:
    """Each name's share of the total weight, largest first."""
    totals: dict[str, float] = {}
    for name, weight in weights:
        totals[name] = totals.get(name, 0.0) + weight
    whole = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:top]
    return [{"name": name, "percent": round(100 * w / whole, 1)} for name, w in ranked]


# py-spy's raw format: one line per distinct stack, frames outermost first,
# "function (file:line);function (file:line) count".


def _frames(stack: str) -> list[tuple[str, str | None]]:
    frames = []
    for frame in stack.split(";"):
        name, _, where = frame.rpartition(" (")
        path = where.rstrip(")").rsplit(":", 1)[0] if where else None
        frames.append((name or frame, path))
    return frames


def _stacks(raw: str) -> Iterator[tuple[list[tuple[str, str | None]], int]]:
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield _frames(stack), int(count)


def pyspy_summary(raw: str) -> dict[str, Any]:
    """Self time by package and inclusive time of our functions, in percent."""
    by_package: list[tuple[str, float]] = []
    by_leaf: list[tuple[str, float]] = []
    ours: dict[str, int] = {}
    samples = 0
    for frames, count in _stacks(raw):
        samples += count
        leaf, path = frames[-1]
        by_package.append((package_of(path), count))
        by_leaf.append((f"{leaf} [{package_of(path)}]", count))
        # A function that recurses or appears twice on one stack counts once;
        # a module's top level is not a function worth naming.
        for name in {
            f"{n} [{package_of(p)}]"
            for n, p in frames
            if is_ours(p) and n != "<module>"
        }:
            ours[name] = ours.get(name, 0) + count
    top = sorted(ours.items(), key=lambda item: -item[1])[:10]
    whole = samples or 1
    return {
        "samples": samples,
        "self_by_package": shares(by_package),
        "self_by_function": shares(by_leaf, top=10),
        "ours_inclusive": [
            {"name": name, "percent": round(100 * count / whole, 1)}
            for name, count in top
        ],
    }


def pyinstrument_summary(root: Any) -> dict[str, Any]:
    """The same summary from a pyinstrument frame tree (milliseconds)."""
    by_package: list[tuple[str, float]] = []
    ours: dict[str, float] = {}

    def walk(frame: Any, owner: str, inside: frozenset[str]) -> None:
        # Synthetic frames ([self], [await]) have no file: they are their parent's.
        package = package_of(frame.file_path) if frame.file_path else owner
        own = frame.time - sum(child.time for child in frame.children)
        by_package.append((package, own))
        name = f"{frame.function} [{package}]"
        counted = name in inside or frame.function == "<module>"
        if is_ours(frame.file_path) and not counted:
            ours[name] = ours.get(name, 0.0) + frame.time
            inside = inside | {name}
        for child in frame.children:
            walk(child, package, inside)

    walk(root, "(root)", frozenset())
    top = sorted(ours.items(), key=lambda item: -item[1])[:10]
    return {
        "total_ms": round(root.time * 1000, 1),
        "self_by_package": shares(by_package),
        "ours_inclusive_ms": [{"name": n, "ms": round(t * 1000, 1)} for n, t in top],
    }


def importtime_summary(stderr: str, top: int = 8) -> dict[str, Any]:
    """Import time by top-level package, from ``python -X importtime`` output."""
    totals: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        fields = line.split("|")
        self_us = int(fields[0].split(":")[1])
        top_level = fields[2].strip().split(".")[0]
        totals[top_level] = totals.get(top_level, 0.0) + self_us / 1000
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    ours = sum(ms for name, ms in totals.items() if name in OURS)
    return {
        "total_ms": round(sum(totals.values()), 1),
        "ours_ms": round(ours, 1),
        "by_package_ms": [{"name": n, "ms": round(t, 1)} for n, t in ranked[:top]],
    }
