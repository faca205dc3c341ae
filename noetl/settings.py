"""Configuration, read in one place: environment first, then the default.

Every setting the code reads is listed here with its default, so that the
README's table and the manifests can be checked against one source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_API_URL = "http://127.0.0.1:8080/gql"


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def _int(name: str, default: int) -> int:
    return int(_float(name, default))


def _str(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class Settings:
    """What a function or source process is configured with."""

    nats_url: str = field(default_factory=lambda: _str("NATS_URL", DEFAULT_NATS_URL))
    # The address a plugin run can reach; in a cluster it differs from ours.
    plugin_nats_url: str = field(
        default_factory=lambda: _str(
            "NOETL_PLUGIN_NATS_URL", _str("NATS_URL", DEFAULT_NATS_URL)
        )
    )
    job_backend: str = field(
        default_factory=lambda: _str("NOETL_JOB_BACKEND", "process")
    )
    job_concurrency: int = field(
        default_factory=lambda: _int("NOETL_JOB_CONCURRENCY", 4)
    )
    job_timeout: float = field(
        default_factory=lambda: _float("NOETL_JOB_TIMEOUT_SECONDS", 300.0)
    )
    report_grace: float = field(
        default_factory=lambda: _float("NOETL_REPORT_GRACE_SECONDS", 30.0)
    )
    local_plugins: str = field(
        default_factory=lambda: os.environ.get("NOETL_LOCAL_PLUGINS", "")
    )
    callback_timeout: float = field(
        default_factory=lambda: _float("NOETL_CALLBACK_TIMEOUT_SECONDS", 10.0)
    )
    log_level: str = field(default_factory=lambda: _str("NOETL_LOG_LEVEL", "INFO"))


def load() -> Settings:
    """Read the settings from the environment as it is now."""
    return Settings()
