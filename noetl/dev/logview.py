"""The supervisor's output: every part's log lines, each with its part's name.

On a terminal a JSON log line is rendered as ``HH:MM:SS part level message
refId=...``; elsewhere JSON lines pass through (the part's name added when
missing) so that a pipe or a log collector still reads JSON. A line that is
not JSON, such as nats-server's own log, is shown or wrapped the same way.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any, TextIO

PART_WIDTH = 17
LEVELS = {
    "debug": "debug",
    "info": "info",
    "warning": "warn",
    "warn": "warn",
    "error": "error",
    "critical": "fatal",
}
# nats-server: "[1234] 2024/05/01 10:00:00.123456 [INF] Server is ready"
_NATS_LINE = re.compile(r"^\[\d+\] \S+ \S+ \[(?P<level>[A-Z]{3})\] (?P<message>.*)$")
_NATS_LEVELS = {
    "DBG": "debug",
    "TRC": "debug",
    "INF": "info",
    "WRN": "warning",
    "ERR": "error",
    "FTL": "critical",
}
_PART_COLOURS = (36, 32, 35, 34, 33, 96, 92, 95, 94)
_LEVEL_COLOURS = {"warn": 33, "error": 31, "fatal": 31, "debug": 90}


def parse(line: str) -> dict[str, Any] | None:
    """The JSON object a log line holds, or None for any other line."""
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def plain_record(part: str, line: str) -> dict[str, Any]:
    """A record for a line that is not JSON, its level read if it has one."""
    level, message = "info", line
    match = _NATS_LINE.match(line)
    if match:
        level = _NATS_LEVELS.get(match["level"], "info")
        message = match["message"]
    return {"time": _now(), "level": level, "part": part, "message": message}


def as_json(part: str, line: str) -> str:
    """The line as a JSON log line that names its part.

    A line that names a part already keeps it; when that is not the name the
    supervisor knows the process by (a source started by hand, say),
    the supervisor's name is added as ``devPart``.
    """
    record = parse(line)
    if record is None:
        return json.dumps(plain_record(part, line))
    if "part" not in record:
        return json.dumps({"part": part, **record})
    if record["part"] != part and "devPart" not in record:
        return json.dumps({**record, "devPart": part})
    return line


def as_text(part: str, line: str, *, colour: bool = False) -> str:
    """The line as ``HH:MM:SS part level message refId=...`` for a person."""
    record = parse(line) or plain_record(part, line)
    level = LEVELS.get(str(record.get("level", "info")).lower(), "info")
    text = f"{record.get('message', '')}"
    if record.get("refId"):
        text += f" refId={record['refId']}"
    exception = record.get("exception")
    if exception:
        text += "\n" + "\n".join("    " + ln for ln in str(exception).splitlines())

    name, shown = f"{part:<{PART_WIDTH}}", f"{level:<5}"
    if colour:
        name = _paint(name, _PART_COLOURS[sum(map(ord, part)) % len(_PART_COLOURS)])
        if level in _LEVEL_COLOURS:
            shown = _paint(shown, _LEVEL_COLOURS[level])
    return f"{_clock(record.get('time'))} {name} {shown} {text}"


def _paint(text: str, code: int) -> str:
    return f"\033[{code}m{text}\033[0m"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clock(stamp: object) -> str:
    """Local wall-clock time of an ISO timestamp; now if there is none."""
    if isinstance(stamp, str):
        try:
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.astimezone().strftime("%H:%M:%S")
    return time.strftime("%H:%M:%S")


class LogView:
    """Writes part lines, the supervisor's own log and its announcements.

    ``pretty`` defaults to whether ``stream`` is a terminal; colour follows it
    unless ``NO_COLOR`` is set. ``quiet`` drops everything: the supervisor keeps
    each part's last lines anyway, for a caller to show when something fails.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        pretty: bool | None = None,
        colour: bool | None = None,
        quiet: bool = False,
    ) -> None:
        self.stream = stream or sys.stdout
        tty = self.stream.isatty()
        self.pretty = tty if pretty is None else pretty
        if colour is None:
            colour = self.pretty and tty and "NO_COLOR" not in os.environ
        self.colour = colour
        self.quiet = quiet
        self._lock = threading.Lock()

    def line(self, part: str, line: str) -> None:
        """A line a part printed."""
        if self.quiet:
            return
        if self.pretty:
            self._write(as_text(part, line, colour=self.colour))
        else:
            self._write(as_json(part, line))

    def log(self, level: str, message: str, **fields: Any) -> None:
        """A line of the supervisor's own, as part ``dev``."""
        record = {
            "time": _now(),
            "level": level,
            "part": "dev",
            "logger": "noetl.dev",
            "message": message,
            **fields,
        }
        self.line("dev", json.dumps(record, default=str))

    def announce(self, text: str) -> None:
        """A plain line meant for whoever runs the stack: URLs, pids, ready."""
        if not self.quiet:
            self._write(text)

    def _write(self, text: str) -> None:
        with self._lock:
            try:
                self.stream.write(text + "\n")
                self.stream.flush()
            except (BrokenPipeError, ValueError):
                # The reader went away (a closed pipe); nothing to tell it.
                pass
