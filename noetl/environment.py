"""Reading a process's settings from the environment, every problem at once.

A misconfigured deployment is fixed in one round when the error names each
bad or missing variable, what it held and what would be accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from noetl.errors import NoetlError

T = TypeVar("T")
N = TypeVar("N", int, float)

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class InvalidSetting(NoetlError):
    """One or more environment variables are missing or hold a bad value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class EnvReader:
    """Reads variables, collecting every problem instead of stopping at one."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def required(self, name: str, parse: Callable[[str], str], accepted: str) -> str:
        if not self.environ.get(name, "").strip():
            self.problems.append(f"{name} is required: {accepted}")
            return ""
        return self.optional(name, parse, accepted, "")

    def optional(
        self, name: str, parse: Callable[[str], T], accepted: str, default: T
    ) -> T:
        raw = self.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            why = f" ({exc})" if str(exc) else ""
            self.problems.append(
                f"{name}={raw!r} is not valid; expected {accepted}{why}"
            )
            return default

    def integer(self, name: str, default: int, least: int = 0) -> int:
        def parse(raw: str) -> int:
            return _at_least(_integer(raw), least)

        return self.optional(name, parse, f"an integer >= {least}", default)

    def seconds(self, name: str, default: float, least: float = 0.0) -> float:
        def parse(raw: str) -> float:
            return _at_least(_finite(raw), least)

        return self.optional(name, parse, f"a number of seconds >= {least:g}", default)

    def done(self) -> None:
        if self.problems:
            raise InvalidSetting(self.problems)


def _at_least(value: N, least: float) -> N:
    if value < least:
        raise ValueError("")
    return value


def _integer(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("") from None


def _finite(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("") from None
    if not math.isfinite(value):
        raise ValueError("")
    return value


def http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("")
    return raw


def log_level(raw: str) -> str:
    if raw.upper() not in LEVELS:
        raise ValueError("")
    return raw.upper()
