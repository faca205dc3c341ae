"""Streams, subjects and buckets, named once, and their provisioning.

The code creates a stream or bucket that is missing and never changes one
that exists: in a cluster the declared resource (a NACK Stream or KeyValue)
owns the configuration, and a function must not fight it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import BucketNotFoundError, NotFoundError

log = logging.getLogger(__name__)

EVENTS = "events"
COMMANDS = "commands"
DEADLETTERS = "deadletters"

# Events: what happened.
SUBJECT_API = "dispatcher.api"  # 1.2
SUBJECT_SCHEMA = "catalog.schema.registration"  # 4.1
# Commands: what to do next.
SUBJECT_REGISTER = "catalog.plugin.register"  # 2.2
SUBJECT_CHECK = "catalog.plugin.check"  # a timer that fired: is it final yet?
SUBJECT_NOTIFY = "plugin.noetl-http-request"  # 5.1
# Pending timers, one subject each; JetStream publishes them to SUBJECT_CHECK.
TIMER_PREFIX = "catalog.timer."
DEADLETTER_PREFIX = "deadletter."

PLUGINS = "plugins"
REGISTRATIONS = "registrations"

DUPLICATE_WINDOW = 120.0  # seconds; JetStream's own default


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age: float  # seconds; 0 keeps messages until the limits say otherwise
    #: Whether the stream holds message schedules (JetStream 2.12 and later).
    schedules: bool = False


@dataclass(frozen=True)
class BucketSpec:
    name: str
    history: int


STREAMS = (
    StreamSpec(EVENTS, ("dispatcher.>", "catalog.schema.>"), max_age=7 * 86400),
    StreamSpec(
        COMMANDS,
        ("catalog.plugin.>", TIMER_PREFIX + ">", "plugin.>"),
        max_age=7 * 86400,
        schedules=True,
    ),
    StreamSpec(DEADLETTERS, (DEADLETTER_PREFIX + ">",), max_age=30 * 86400),
)
BUCKETS = (
    BucketSpec(PLUGINS, history=10),
    BucketSpec(REGISTRATIONS, history=5),
)


def bucket_stream(bucket: str) -> str:
    """The stream JetStream keeps a key-value bucket in."""
    return f"KV_{bucket}"


def bucket_subject(bucket: str, key: str = ">") -> str:
    """The subject a bucket stores ``key`` under; every key's by default."""
    return f"$KV.{bucket}.{key}"


def stream_of(subject: str) -> str:
    """The stream a subject is stored in."""
    for spec in STREAMS:
        for pattern in spec.subjects:
            if subject.startswith(pattern.rstrip(">")):
                return spec.name
    raise KeyError(f"no stream stores subject {subject!r}")


async def provision(js: JetStreamContext) -> None:
    """Create each stream and bucket that does not exist yet."""
    for stream in STREAMS:
        try:
            await js.stream_info(stream.name)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=stream.name,
                    subjects=list(stream.subjects),
                    storage=StorageType.FILE,
                    max_age=stream.max_age or None,
                    duplicate_window=DUPLICATE_WINDOW,
                    allow_msg_schedules=stream.schedules or None,
                )
            )
            log.info("created stream %s", stream.name)
    for bucket in BUCKETS:
        try:
            await js.key_value(bucket.name)
        except BucketNotFoundError:
            await js.create_key_value(
                KeyValueConfig(
                    bucket=bucket.name,
                    history=bucket.history,
                    storage=StorageType.FILE,
                )
            )
            log.info("created bucket %s", bucket.name)
