"""The stand-in's configuration, read from the environment in one place.

``K_SINK`` is where events go, as for any Knative source; the namespace is
the catalog's own setting, so both look at the same Jobs by default. Every
bad variable is named in one error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from functions.catalog.jobs import jobspec
from noetl.errors import NoetlError

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class InvalidSetting(NoetlError):
    """One or more environment variables are missing or hold a bad value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Config:
    sink: str
    #: Empty: the pod's own namespace, else the kubeconfig context's.
    namespace: str = ""
    selector: str = jobspec.SELECTOR
    #: How long one watch request lasts before it is opened again.
    watch_seconds: float = 300.0
    request_timeout: float = 10.0
    #: Tries at POSTing one event before it is given up, as a source would.
    attempts: int = 5
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def seconds(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                value = -1.0
            if not math.isfinite(value) or value <= 0:
                problems.append(f"{name}={raw!r} is not valid; expected seconds > 0")
                return default
            return value

        def integer(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            if not raw.isdigit() or int(raw) < 1:
                problems.append(
                    f"{name}={raw!r} is not valid; expected an integer >= 1"
                )
                return default
            return int(raw)

        sink = env.get("K_SINK", "").strip()
        parts = urlsplit(sink)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(
                f"K_SINK={sink!r} is not valid; expected an absolute http or https URL"
            )
        level = (env.get("NOETL_LOG_LEVEL") or cls.log_level).upper()
        if level not in _LEVELS:
            problems.append(
                f"NOETL_LOG_LEVEL={level!r} is not valid; expected "
                + " or ".join(_LEVELS)
            )
        config = cls(
            sink=sink,
            namespace=env.get("NOETL_K8S_NAMESPACE", "").strip(),
            selector=env.get("NOETL_APISERVER_SELECTOR", "").strip() or cls.selector,
            watch_seconds=seconds("NOETL_APISERVER_WATCH_SECONDS", cls.watch_seconds),
            request_timeout=seconds(
                "NOETL_APISERVER_REQUEST_TIMEOUT_SECONDS", cls.request_timeout
            ),
            attempts=integer("NOETL_APISERVER_ATTEMPTS", cls.attempts),
            log_level=level,
        )
        if problems:
            raise InvalidSetting(problems)
        return config
