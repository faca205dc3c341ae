"""JSON-lines logging that carries the unit of work's refId and event id.

Every line a process writes while it handles an event carries the event's
`refId` and CloudEvent `id`, bound once with :func:`bound` and picked up by
the formatter from context variables, so call sites only say what happened.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "noetl_log_fields", default=None
)


def current() -> dict[str, Any]:
    """The fields bound in the current context."""
    return _fields.get() or {}


# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add fields to every log line written inside the block."""
    merged = {**current(), **{k: v for k, v in fields.items() if v is not None}}
    token = _fields.set(merged)
    try:
        yield
    finally:
        _fields.reset(token)


def bind(**fields: Any) -> None:
    """Add fields to the rest of the current context (a request's task)."""
    _fields.set({**current(), **{k: v for k, v in fields.items() if v}})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then fields."""

    def __init__(self, part: str) -> None:
        super().__init__()
        self.part = part

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "part": self.part,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(current())
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup(part: str, level: str = "INFO") -> None:
    """Send this process's logs to stderr as JSON lines, once."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(part))
    root.handlers = [handler]
    root.setLevel(level.upper())
    # Library chatter at INFO would drown the one line per event.
    for noisy in ("httpx", "httpcore", "nats", "aiohttp.access", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
