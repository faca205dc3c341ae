"""The consumer the source creates, and what it says about one that exists."""

from __future__ import annotations

import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from sources.jetstream.config import Config
from sources.jetstream.consumer import config_for, differences, within
from sources.jetstream.delivery import Policy


def _config(*subjects: str, max_deliver: int = 5) -> Config:
    return Config(
        sink="http://127.0.0.1:9000/",
        stream="events",
        durable="dispatcher",
        subjects=subjects,
        policy=Policy(max_deliver=max_deliver),
        ack_wait=10.0,
    )


def test_created_consumer_leaves_dead_lettering_to_the_source() -> None:
    created = config_for(_config())
    assert created.durable_name == "dispatcher"
    assert created.ack_policy is AckPolicy.EXPLICIT
    assert created.ack_wait == 10.0
    assert created.max_deliver == -1
    assert created.filter_subject is None and created.filter_subjects is None


def test_one_subject_or_several() -> None:
    assert config_for(_config("dispatcher.api")).filter_subject == "dispatcher.api"
    several = config_for(_config("dispatcher.api", "catalog.schema.>"))
    assert several.filter_subjects == ["dispatcher.api", "catalog.schema.>"]
    assert several.filter_subject is None


def test_a_matching_consumer_has_no_differences() -> None:
    assert differences(config_for(_config("a.b")), _config("a.b")) == []


def test_differences_that_matter_are_named() -> None:
    existing = ConsumerConfig(
        durable_name="dispatcher",
        ack_policy=AckPolicy.ALL,
        ack_wait=30.0,
        max_deliver=3,
        filter_subject="other.>",
    )
    problems = differences(existing, _config("a.b", max_deliver=5))
    assert len(problems) == 4
    assert "filters ['other.>']" in problems[0]
    assert "ack policy" in problems[1]
    assert "ack wait is 30s, not 10s" in problems[2]
    assert "max_deliver 3" in problems[3]


@pytest.mark.parametrize(
    ("subject", "pattern", "expected"),
    [
        ("dispatcher.api", "dispatcher.>", True),
        ("dispatcher.>", "dispatcher.>", True),
        ("dispatcher.*", "dispatcher.>", True),
        ("dispatcher", "dispatcher.>", False),
        ("catalog.schema.registration", "catalog.schema.>", True),
        ("catalog.plugin.register", "catalog.schema.>", False),
        ("a.b", "a.*", True),
        ("a.>", "a.*", False),
        ("a.b.c", "a.*", False),
        ("a.b", "a.b", True),
        ("a.*", "a.b", False),
        ("foo.bar", "dispatcher.>", False),
    ],
)
def test_within(subject: str, pattern: str, expected: bool) -> None:
    assert within(subject, pattern) is expected
