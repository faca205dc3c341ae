"""What the command line prints: tables and details for people, JSON for tools.

Pure functions from data to text; the commands decide where it goes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from noetl.cli.deadletters import DeadLetter
from noetl.cli.watch import Step


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def json_line(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; the last one is not padded."""
    cells = [[_cell(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return str(value)


def state(value: object) -> str:
    """A registration state as people read it: the enum in lower case."""
    return str(value).lower() if value else "-"


def plugins(items: Sequence[dict[str, Any]]) -> str:
    if not items:
        return "no plugins registered"
    rows = [
        (p.get("name"), state(p.get("state")), p.get("imageUrl"), p.get("refId"))
        for p in sorted(items, key=lambda p: str(p.get("name")))
    ]
    return table(("NAME", "STATE", "IMAGE", "REFID"), rows)


def plugin(item: dict[str, Any]) -> str:
    return _details(
        [
            ("name", item.get("name")),
            ("image", item.get("imageUrl")),
            ("state", state(item.get("state"))),
            ("refId", item.get("refId")),
        ],
        item.get("schema"),
    )


def registration(item: dict[str, Any]) -> str:
    return _details(
        [
            ("refId", item.get("refId")),
            ("plugin", item.get("pluginName")),
            ("image", item.get("imageUrl")),
            ("state", state(item.get("state"))),
            ("error", item.get("error")),
            ("callbackApi", item.get("callbackApi")),
            ("updatedAt", item.get("updatedAt")),
        ],
        item.get("schema"),
    )


def _details(pairs: list[tuple[str, object]], schema: object) -> str:
    width = max(len(key) for key, _ in pairs) + 1
    lines = [f"{key + ':':<{width}} {_cell(value)}" for key, value in pairs]
    if schema is None:
        lines.append(f"{'schema:':<{width}} -")
    else:
        lines.append("schema:")
        lines.extend("  " + line for line in to_json(schema).splitlines())
    return "\n".join(lines)


def step(item: Step) -> str:
    """``HH:MM:SS.mmm  1.2    request received   events dispatcher.api ...``"""
    clock = item.at.astimezone().strftime("%H:%M:%S.%f")[:-3] if item.at else " " * 12
    head = f"{clock}  {item.step:<8} {item.title:<17} "
    first, *rest = item.detail.splitlines() or [""]
    # A multi-line detail (a plugin's stderr) stays under its first line.
    lines = [head + first] + [" " * len(head) + line for line in rest]
    return "\n".join(line.rstrip() for line in lines)


def deadletters(items: Sequence[DeadLetter]) -> str:
    if not items:
        return "no dead letters"
    rows = [
        (
            d.sequence,
            d.subject,
            d.header("Noetl-Dead-Status"),
            d.header("Noetl-Dead-Attempts"),
            d.header("Noetl-Dead-Reason"),
        )
        for d in items
    ]
    return table(("SEQ", "SUBJECT", "STATUS", "ATTEMPTS", "REASON"), rows)
