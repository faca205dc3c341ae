"""One function's start and first event in one process, without a server.

``python -m bench.inproc --source FILE --request FILE`` loads the function as
the functions-framework does, hands it one request through ASGI, and prints
JSON: how long the import and the first event took, the answer's status, and
the third-party modules loaded by then (what a bare baseline must import to
pay for the same libraries). With ``--profile OUT`` the first event runs under
pyinstrument and the profile is written to OUT (run it with ``-X
importtime`` for the import's share of each package); with ``--memory`` tracemalloc
attributes what was allocated to the package that allocated it.

Only the standard library is imported before the function (the profilers
too when asked for), so that the modules listed and the time taken are the
function's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import sysconfig
import time
import tracemalloc
from pathlib import Path
from typing import Any

SITE = tuple({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})


def third_party(loaded: dict[str, Any]) -> list[str]:
    """The names of modules installed in site-packages, in import order."""
    names = []
    for name, module in loaded.items():
        where = getattr(module, "__file__", None)
        if where is None:
            paths = list(getattr(module, "__path__", []) or [])
            where = paths[0] if paths else None
        if where and str(where).startswith(SITE):
            names.append(name)
    return names


async def call(app: Any, request: dict[str, Any]) -> tuple[int, bytes]:
    """POST ``request`` to the ASGI ``app``; its status and body."""
    body = request["body"].encode()
    headers = [(k.lower().encode(), v.encode()) for k, v in request["headers"].items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": request["path"],
        "raw_path": request["path"].encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    answer: dict[str, Any] = {"status": 0, "body": b""}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # as a client that keeps the line open
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["body"]


def by_package(snapshot: tracemalloc.Snapshot) -> list[dict[str, Any]]:
    """KiB still allocated, summed per installed package or project folder."""
    from bench.profiles import package_of

    sizes: dict[str, int] = {}
    for stat in snapshot.statistics("filename"):
        package = package_of(stat.traceback[0].filename)
        sizes[package] = sizes.get(package, 0) + stat.size
    ranked = sorted(sizes.items(), key=lambda item: -item[1])[:10]
    return [{"package": name, "kib": round(size / 1024)} for name, size in ranked]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inproc")
    parser.add_argument("--source", required=True, type=Path)
    parser.add_argument("--request", required=True, type=Path)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    request = json.loads(args.request.read_text())

    profiler: Any = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
    if args.memory:
        tracemalloc.start()
    before = set(sys.modules)

    started = time.perf_counter()
    from functions_framework.aio import create_asgi_app

    app = create_asgi_app("handle", str(args.source), None)
    imported = time.perf_counter()
    if profiler is not None:
        # The import is profiled with -X importtime; this is the first event.
        profiler.start()
    status, body = asyncio.run(call(app, request))
    answered = time.perf_counter()

    result: dict[str, Any] = {
        "import_s": imported - started,
        "first_event_s": answered - imported,
        "status": status,
        "body": body[:300].decode(errors="replace"),
        "modules": third_party(
            {k: v for k, v in sys.modules.items() if k not in before}
        ),
    }
    if args.memory:
        result["allocated"] = by_package(tracemalloc.take_snapshot())
    if profiler is not None:
        from bench.profiles import pyinstrument_summary

        profiler.stop()
        args.profile.parent.mkdir(parents=True, exist_ok=True)
        args.profile.write_text(profiler.output_text(unicode=False, color=False))
        result["profile"] = pyinstrument_summary(profiler.last_session.root_frame())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
