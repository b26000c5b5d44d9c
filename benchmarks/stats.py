"""Summaries of samples: the median and the 95th percentile, nothing fancier.

Medians resist the odd slow sample of a shared 2-core machine; the 95th
percentile shows the tail a user would notice. With fewer than 20 samples
the 95th percentile is the largest sample (stated as such in the JSON by n).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    """Median, 95th percentile and count of one metric's samples, in ``unit``."""

    median: float
    p95: float | None
    n: int
    unit: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(samples: list[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) by linear interpolation between closest ranks."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(samples: list[float], unit: str) -> Summary:
    """Summarize samples; a single sample (a total) has no 95th percentile."""
    if not samples:
        raise ValueError("no samples")
    p95 = percentile(samples, 0.95) if len(samples) > 1 else None
    return Summary(statistics.median(samples), p95, len(samples), unit)


def single(value: float, unit: str) -> Summary:
    """Summarize one measured value (a total or a rate)."""
    return Summary(value, None, 1, unit)
