"""Latency histograms a chain keeps for the metrics endpoint
(docs/operations.md, "Metrics").

Plain counts in fixed buckets, observed on the chain's own event loop: the
chain layer needs no metrics library, and node/services/metrics.py turns
them into Prometheus histograms at scrape time (on the same loop, so it
never reads a half-updated one).
"""
from __future__ import annotations

from bisect import bisect_left

# Upper bounds in seconds (Prometheus `le`), +Inf implied.
COMMIT_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FSYNC_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Histogram:
    """Counts per bucket (not cumulative; the last one is +Inf), their sum and count."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: a value equal to a bound falls in it
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, observations <= le) for every bound and "+Inf", as Prometheus exposes them."""
        out, total = [], 0
        for bound, n in zip((*map(repr, self.bounds), "+Inf"), self.counts):
            total += n
            out.append((bound, total))
        return out
