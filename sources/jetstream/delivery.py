"""What to do with a message after one POST: ack, retry later, or dead-letter.

Pure rules, no I/O, so that each is tested without a broker. They follow the
Knative delivery spec as the contract words it: a 2xx is done; a message
that cannot become a CloudEvent, or a 4xx other than 404, 408, 409 and 429,
can never succeed and is dead-lettered at once; anything else is retried
with exponential backoff and jitter until the attempts run out.
"""

from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

#: 4xx answers that may succeed later: not found yet, timeout, conflict,
#: too many requests.
RETRYABLE_4XX = frozenset({404, 408, 409, 429})


class Action(enum.Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True)
class Attempt:
    """How one POST to the sink went: an HTTP status, or an error without one."""

    status: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds, from the sink's Retry-After

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        if self.status is None:
            return self.error or "no answer"
        text = f"sink answered {self.status}"
        return f"{text}: {self.error}" if self.error else text


@dataclass(frozen=True)
class Policy:
    """How many attempts a message gets and how long to wait between them."""

    max_deliver: int = 5
    backoff: float = 1.0  # seconds; the first delay, doubled each attempt
    backoff_max: float = 60.0  # seconds; no delay is longer


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str = ""
    delay: float = 0.0  # seconds before JetStream redelivers, for RETRY
    status: int | None = None  # the HTTP status it was based on, if any


def permanent(status: int) -> bool:
    """Whether an HTTP status means the same request can never succeed."""
    return 400 <= status < 500 and status not in RETRYABLE_4XX


def judge(
    attempt: Attempt,
    delivered: int,
    policy: Policy,
    rng: random.Random | None = None,
) -> Verdict:
    """The verdict on the ``delivered``-th attempt (1 for the first) at a message."""
    if attempt.ok:
        return Verdict(Action.ACK, status=attempt.status)
    if attempt.status is not None and permanent(attempt.status):
        return Verdict(Action.DEAD_LETTER, attempt.describe(), status=attempt.status)
    if delivered >= policy.max_deliver:
        reason = f"gave up after {delivered} attempts: {attempt.describe()}"
        return Verdict(Action.DEAD_LETTER, reason, status=attempt.status)
    return Verdict(
        Action.RETRY,
        attempt.describe(),
        delay=delay(delivered, policy, attempt.retry_after, rng),
        status=attempt.status,
    )


def unconvertible(error: str) -> Verdict:
    """The verdict on a message that cannot be read as a CloudEvent."""
    return Verdict(Action.DEAD_LETTER, f"not a CloudEvent: {error}")


def delay(
    delivered: int,
    policy: Policy,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before the next attempt.

    Exponential in the attempts so far, with "equal jitter" (a random point in
    the upper half) so that messages failing together do not return together.
    A sink's Retry-After is the least wait; every wait stays within
    ``backoff_max`` so a sink cannot park a message for hours.
    """
    ceiling = min(policy.backoff_max, policy.backoff * 2 ** max(delivered - 1, 0))
    wait = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        wait = max(wait, retry_after)
    return min(wait, policy.backoff_max)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (RFC 9110 10.2.3): a number or a date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 9110 dates are in GMT all the same
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(seconds, 0.0)
