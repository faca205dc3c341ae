"""The delivery rules: which answers are done, retried or dead-lettered."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from sources.jetstream.delivery import (
    Action,
    Attempt,
    Policy,
    delay,
    judge,
    parse_retry_after,
    permanent,
    unconvertible,
)

POLICY = Policy(max_deliver=5, backoff=1.0, backoff_max=60.0)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_acked(status: int) -> None:
    assert judge(Attempt(status), 1, POLICY).action is Action.ACK


@pytest.mark.parametrize("status", [400, 401, 403, 405, 410, 413, 415, 422, 499])
def test_4xx_dead_letters_at_once(status: int) -> None:
    verdict = judge(Attempt(status, "bad input"), 1, POLICY)
    assert verdict.action is Action.DEAD_LETTER
    assert verdict.status == status
    assert verdict.reason == f"sink answered {status}: bad input"


@pytest.mark.parametrize("status", [404, 408, 409, 429, 500, 502, 503, 504, 302, 100])
def test_other_answers_are_retried(status: int) -> None:
    assert not permanent(status)
    verdict = judge(Attempt(status), 1, POLICY)
    assert verdict.action is Action.RETRY
    assert verdict.status == status
    assert 0 < verdict.delay <= POLICY.backoff_max


def test_errors_without_status_are_retried() -> None:
    verdict = judge(Attempt(error="connection refused"), 2, POLICY)
    assert verdict.action is Action.RETRY
    assert verdict.status is None
    assert verdict.reason == "connection refused"


def test_last_attempt_dead_letters_instead_of_retrying() -> None:
    verdict = judge(Attempt(503), POLICY.max_deliver, POLICY)
    assert verdict.action is Action.DEAD_LETTER
    assert verdict.reason == "gave up after 5 attempts: sink answered 503"
    assert verdict.status == 503
    # Redelivered beyond the limit (the source restarted mid-way): still final.
    assert judge(Attempt(error="timeout"), 7, POLICY).action is Action.DEAD_LETTER


def test_a_success_on_the_last_attempt_is_acked() -> None:
    assert judge(Attempt(200), POLICY.max_deliver, POLICY).action is Action.ACK


def test_unconvertible_message_is_dead_lettered() -> None:
    verdict = unconvertible("message is not JSON")
    assert verdict.action is Action.DEAD_LETTER
    assert verdict.reason == "not a CloudEvent: message is not JSON"
    assert verdict.status is None


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for delivered in range(1, 12):
        ceiling = min(60.0, 2.0 ** (delivered - 1))
        waits = [delay(delivered, POLICY, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(set(waits)) > 1  # jittered
    assert delay(30, POLICY, rng=rng) <= 60.0


def test_retry_after_is_the_least_wait_within_the_cap() -> None:
    verdict = judge(Attempt(503, retry_after=20.0), 1, POLICY)
    assert verdict.delay == 20.0
    assert delay(1, POLICY, retry_after=3600.0) == 60.0
    assert delay(1, POLICY, retry_after=0.0) <= 1.0


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 3 ") == 3.0
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == 30.0
    assert parse_retry_after(later, now=now.timestamp() + 60) == 0.0
    for junk in (None, "", "soon", "-5", "1.5e3"):
        assert parse_retry_after(junk) is None
