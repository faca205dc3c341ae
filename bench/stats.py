"""Percentiles and summaries of latency samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 to 100), interpolated between ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ms(seconds: Sequence[float]) -> dict[str, Any]:
    """p50, p95 and p99 of ``seconds`` in milliseconds, and the sample count."""
    return {
        "n": len(seconds),
        "p50_ms": rounded(percentile(seconds, 50) * 1000),
        "p95_ms": rounded(percentile(seconds, 95) * 1000),
        "p99_ms": rounded(percentile(seconds, 99) * 1000),
    }


def ratio(part: float, whole: float) -> float:
    """``part / whole``, or NaN when there is nothing to divide by."""
    if not whole or math.isnan(whole) or math.isnan(part):
        return math.nan
    return round(part / whole, 3)


def rounded(value: float, digits: int = 1) -> float:
    return value if math.isnan(value) else round(value, digits)
