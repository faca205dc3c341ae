"""The source's configuration, read from the environment in one place.

The variables are the ones a Knative ContainerSource gives its container
(``K_SINK``, ``K_CE_OVERRIDES``) and the source's own (``NOETL_SOURCE_*``).
Every bad or missing variable is named in one error, so a misconfigured
deployment is fixed in one round.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from noetl import settings
from noetl.environment import LEVELS, EnvReader, http_url, log_level
from sources.jetstream.delivery import Policy

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
        env = EnvReader(os.environ if environ is None else environ)
        config = cls(
            sink=env.required("K_SINK", http_url, "an absolute http or https URL"),
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
                "NOETL_LOG_LEVEL", log_level, " or ".join(LEVELS), cls.log_level
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
