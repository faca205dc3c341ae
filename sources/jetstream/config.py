"""The source's configuration, read from the environment in one place.

The variables are the ones a Knative ContainerSource gives its container
(``K_SINK``, ``K_CE_OVERRIDES``) and the source's own (``NOETL_SOURCE_*``).
Every bad or missing variable is named in one error, so a misconfigured
deployment is fixed in one round.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from noetl import settings
from noetl.errors import NoetlError
from sources.jetstream.delivery import Policy

T = TypeVar("T")
N = TypeVar("N", int, float)

# JetStream names: no whitespace, and none of the subject tokens . * >
# nor the path separators a file store would trip over.
_NAME = re.compile(r"[^\s.*>/\\]+")
# CloudEvents 1.0, "Attribute Naming Convention": lower-case letters and digits.
_EXTENSION = re.compile(r"[a-z0-9]+")
# Attributes an override may not replace: they identify the event or say
# how its data is encoded.
_RESERVED = frozenset(
    {"id", "source", "type", "specversion", "datacontenttype", "data", "time"}
)
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class InvalidSetting(NoetlError):
    """One or more environment variables are missing or hold a bad value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Config:
    """What one source process consumes, where it delivers, and how hard it tries."""

    sink: str
    stream: str
    durable: str
    nats_url: str = settings.DEFAULT_NATS_URL
    subjects: tuple[str, ...] = ()  # empty: the whole stream
    extensions: Mapping[str, str] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    ack_wait: float = 30.0
    max_inflight: int = 16
    request_timeout: float = 60.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read every setting, or raise :class:`InvalidSetting` naming each bad one.

        An unset or empty variable takes the field's default.
        """
        env = _Reader(os.environ if environ is None else environ)
        config = cls(
            sink=env.required("K_SINK", _url, "an absolute http or https URL"),
            stream=env.required("NOETL_SOURCE_STREAM", _name, "a stream name"),
            durable=env.required(
                "NOETL_SOURCE_DURABLE", _name, "a consumer name without . * > or spaces"
            ),
            nats_url=env.optional("NATS_URL", str, "a nats:// URL", cls.nats_url),
            subjects=env.optional(
                "NOETL_SOURCE_SUBJECTS", _subjects, "comma-separated subjects", ()
            ),
            extensions=env.optional(
                "K_CE_OVERRIDES",
                _overrides,
                'JSON like {"extensions": {"name": "value"}}',
                {},
            ),
            policy=Policy(
                max_deliver=env.integer(
                    "NOETL_SOURCE_MAX_DELIVER", Policy.max_deliver, least=1
                ),
                backoff=env.seconds("NOETL_SOURCE_BACKOFF_SECONDS", Policy.backoff),
                backoff_max=env.seconds(
                    "NOETL_SOURCE_BACKOFF_MAX_SECONDS", Policy.backoff_max
                ),
            ),
            ack_wait=env.seconds(
                "NOETL_SOURCE_ACK_WAIT_SECONDS", cls.ack_wait, least=1.0
            ),
            max_inflight=env.integer(
                "NOETL_SOURCE_MAX_INFLIGHT", cls.max_inflight, least=1
            ),
            request_timeout=env.seconds(
                "NOETL_SOURCE_REQUEST_TIMEOUT_SECONDS", cls.request_timeout, least=0.1
            ),
            log_level=env.optional(
                "NOETL_LOG_LEVEL", _level, " or ".join(_LEVELS), cls.log_level
            ),
        )
        env.done()
        return config

    @property
    def sink_for_logs(self) -> str:
        """The sink URL without any user or password in it."""
        parts = urlsplit(self.sink)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=host))


class _Reader:
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


def _url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("")
    return raw


def _name(raw: str) -> str:
    if not _NAME.fullmatch(raw):
        raise ValueError("")
    return raw


def _subjects(raw: str) -> tuple[str, ...]:
    subjects = tuple(part.strip() for part in raw.split(",") if part.strip())
    bad = [subject for subject in subjects if re.search(r"\s", subject)]
    if bad:
        raise ValueError(f"{bad[0]!r} contains whitespace")
    return subjects


def _overrides(raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    extensions = value.get("extensions") or {}
    if not isinstance(extensions, dict):
        raise ValueError("extensions is not a JSON object")
    for name, text in extensions.items():
        if not _EXTENSION.fullmatch(name) or name in _RESERVED:
            raise ValueError(
                f"extension name {name!r} must be lower-case letters and digits"
                " and not a core attribute"
            )
        if not isinstance(text, str):
            raise ValueError(f"extension {name!r} must have a string value")
    return dict(extensions)


def _level(raw: str) -> str:
    if raw.upper() not in _LEVELS:
        raise ValueError("")
    return raw.upper()
