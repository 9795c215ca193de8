"""Admission pacing under overload (docs/design.md, "Admission").

A node whose backlog rule refuses load is *pressed*. Left alone it would
admit again the moment its own transactions commit; under overload every
node's calls commit in the same blocks, so all nodes refilled together and
the cluster held one bulk call per node all the time, and latency was that
backlog over the throughput (docs/performance.md, "Overload"). A pressed
node admits on a schedule of its own instead:

- from a token bucket of one call filled at PROBE times its best recent
  commit rate (at least one call a second): its calls are spaced, and the
  rate can grow while there is room. A node pressed from idle knows no rate
  yet: as TCP's slow start, its pace doubles every SLOW_START_DOUBLING_S
  until one of its transactions has waited long, for SLOW_START_S at most;
- only while the backlog its replica sees leaves room for the call (the
  caller decides, `crowded`).

Best rates (PeakRate), not current ones: refusing lowers the current rate,
and a pace taken from it could only shrink.
"""
from __future__ import annotations

CALL = 100  # transactions in one bulk call, which passes whole
PROBE = 1.1  # headroom over the best rate
PEAK_WINDOW_S = 10
SLOW_START_DOUBLING_S = 0.25  # a few commit round trips; doubling once a second took 3-4 s to reach capacity
SLOW_START_DOUBLINGS = 6  # so at most 2**6 calls a second
SLOW_START_S = 6  # and it ends after this long even if nothing has waited
IDLE_S = 2.0  # held back by nothing of its own for this long: demand is below the pace, stop pacing


class PeakRate:
    """Counts per whole second; the best of the last PEAK_WINDOW_S, per second."""

    def __init__(self) -> None:
        self._bins: dict[int, int] = {}  # second -> count; at most PEAK_WINDOW_S + 1 of them

    def add(self, now: float, n: int) -> None:
        second = int(now)
        if second not in self._bins:
            for old in [s for s in self._bins if s < second - PEAK_WINDOW_S]:
                del self._bins[old]
        self._bins[second] = self._bins.get(second, 0) + n

    def peak(self, now: float) -> float:
        current = int(now)
        return float(max((n for s, n in self._bins.items() if current - PEAK_WINDOW_S <= s < current), default=0))


class AdmissionPacer:
    def __init__(self) -> None:
        self.rate: float | None = None  # transactions a second; None: not pacing
        self._tokens = 0.0
        self._at = 0.0
        self._held_at = 0.0  # when this node's own demand was last held back
        self._slow_start_at: float | None = None

    def pressed(self, now: float, queued: bool) -> None:
        """The backlog rule refused. Pacing starts (slow start, an empty
        bucket) or goes on; `queued`: the node's oldest admitted transaction
        has waited long, which ends slow start (the pace outran the cluster)."""
        if self.rate is None:
            self.rate = float(CALL)
            self._tokens, self._at, self._slow_start_at = 0.0, now, now
        self._held_at = now
        if queued:
            self._slow_start_at = None

    def allows(self, now: float, own_peak: float, crowded: bool) -> bool:
        """Whether a call may start now. `own_peak`: this node's best recent
        commit rate; `crowded`: the backlog seen here leaves no room for it."""
        if self.rate is None:
            return True
        if self._slow_start_at is not None and now - self._slow_start_at >= SLOW_START_S:
            self._slow_start_at = None
        slow_start = 0.0
        if self._slow_start_at is not None:
            slow_start = CALL * 2 ** min((now - self._slow_start_at) / SLOW_START_DOUBLING_S, SLOW_START_DOUBLINGS)
        self.rate = max(float(CALL), PROBE * own_peak, slow_start)
        self._tokens = min(CALL, self._tokens + self.rate * (now - self._at))
        self._at = now
        if self._tokens <= 0 or crowded:
            if self._tokens < CALL:  # a full bucket: little demand here, others' load is not ours
                self._held_at = now
            return False
        if now - self._held_at >= IDLE_S:
            self.rate = None
        return True

    def take(self, n: int) -> None:
        """`n` transactions were let in. Calls that start in one event-loop
        turn pass together, so the debt is capped at one call."""
        if self.rate is not None:
            self._tokens = max(self._tokens - n, -CALL)
