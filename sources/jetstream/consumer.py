"""The stream and durable pull consumer the source reads, created when missing.

Like the streams and buckets, a consumer that exists is never changed: in a
cluster a declared resource may own it. One that differs from what the source
would create is used as it is, with a warning for each difference that
matters.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import BadRequestError, NotFoundError

from noetl import topology
from noetl.errors import NoetlError
from sources.jetstream.config import Config

log = logging.getLogger("sources.jetstream")


class StreamMissing(NoetlError):
    """The configured stream does not exist and is not one noetl declares."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        declared = ", ".join(spec.name for spec in topology.STREAMS)
        super().__init__(
            f"stream {stream!r} does not exist; noetl creates only {declared}"
        )


class ConsumerRefused(NoetlError):
    """JetStream would not create the consumer as configured."""

    def __init__(self, config: Config, why: str) -> None:
        self.durable = config.durable
        super().__init__(
            f"JetStream refused consumer {config.durable!r} on stream"
            f" {config.stream!r} with subjects {list(config.subjects)}: {why}"
        )


def config_for(config: Config) -> ConsumerConfig:
    """The consumer the source creates when there is none."""
    subjects = list(config.subjects)
    return ConsumerConfig(
        name=config.durable,
        durable_name=config.durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=config.ack_wait,
        # The source decides when a message has had enough attempts and
        # dead-letters it; JetStream giving up first would drop it silently.
        max_deliver=-1,
        filter_subject=subjects[0] if len(subjects) == 1 else None,
        filter_subjects=subjects if len(subjects) > 1 else None,
    )


def differences(have: ConsumerConfig, config: Config) -> list[str]:
    """What about an existing consumer works against the source's settings."""
    problems = []
    subjects = have.filter_subjects or (
        [have.filter_subject] if have.filter_subject else []
    )
    if sorted(subjects) != sorted(config.subjects):
        problems.append(
            f"it filters {subjects or 'the whole stream'}, not {list(config.subjects)}"
        )
    if have.ack_policy not in (None, AckPolicy.EXPLICIT):
        problems.append(f"its ack policy is {have.ack_policy}, not explicit")
    if have.ack_wait is not None and abs(have.ack_wait - config.ack_wait) > 0.001:
        problems.append(f"its ack wait is {have.ack_wait:g}s, not {config.ack_wait:g}s")
    limit = have.max_deliver
    if limit is not None and 0 < limit <= config.policy.max_deliver:
        problems.append(
            f"its max_deliver {limit} stops redelivery before the source's"
            f" {config.policy.max_deliver} attempts, dropping messages undead-lettered"
        )
    return problems


def within(subject: str, pattern: str) -> bool:
    """Whether every subject ``subject`` matches is also matched by ``pattern``."""
    tokens, wanted = subject.split("."), pattern.split(".")
    for index, want in enumerate(wanted):
        if want == ">":
            return len(tokens) > index
        if index >= len(tokens):
            return False
        token = tokens[index]
        if token == ">" or (want != "*" and want != token):
            return False
    return len(tokens) == len(wanted)


async def prepare(js: JetStreamContext, config: Config) -> ConsumerInfo:
    """Make sure the streams and the durable consumer exist; its info."""
    await topology.provision(js)
    try:
        stream = await js.stream_info(config.stream)
    except NotFoundError:
        raise StreamMissing(config.stream) from None
    stored = stream.config.subjects or []
    for subject in config.subjects:
        if not any(within(subject, pattern) for pattern in stored):
            log.warning(
                "subject %s is not stored in stream %s (%s); nothing will match it",
                subject,
                config.stream,
                ", ".join(stored),
            )

    try:
        info = await js.consumer_info(config.stream, config.durable)
    except NotFoundError:
        try:
            info = await js.add_consumer(config.stream, config_for(config))
        except BadRequestError as exc:
            raise ConsumerRefused(config, exc.description or str(exc)) from exc
        log.info("created consumer %s on stream %s", config.durable, config.stream)
        return info

    for problem in differences(info.config, config):
        log.warning("consumer %s exists and %s", config.durable, problem)
    return info
