"""Admission pacing under overload (docs/design.md, "Admission").

A node whose backlog rule refuses load ("pressed") would otherwise admit again
the moment its own transactions commit. Under overload every node's calls
commit in the same blocks, so all nodes refilled together and the cluster
held one bulk call per node all the time; latency was that backlog over the
throughput (docs/performance.md, "Overload"). A pressed node admits on a
schedule of its own instead:

- at most PROBE times its best recent commit rate, from a token bucket of one
  call: its calls are spaced, and the rate can grow by PROBE a second while
  there is room. A node pressed from idle knows no rate yet: as TCP's slow
  start, its pace doubles every second until its oldest admitted transaction has
  waited long (ADMIT_WAIT_S);
- only while the backlog its replica sees leaves room for another call.

Each node's calls then follow its own clock rather than the commits that all
nodes see at once.

Best rates (PeakRate), not current ones: refusing lowers the current rate,
and a rate paced from itself could only shrink.
"""
from __future__ import annotations

BURST = 100  # tokens: one bulk call of 100 passes whole
PROBE = 1.1
PEAK_WINDOW_S = 10
IDLE_S = 2.0  # nothing refused for this long: demand is below the pace, stop pacing


class PeakRate:
    """The most counted in one whole second of the last PEAK_WINDOW_S, per second."""

    def __init__(self) -> None:
        self._bins: dict[int, int] = {}  # second -> count

    def add(self, now: float, n: int) -> None:
        second = int(now)
        self._bins[second] = self._bins.get(second, 0) + n

    def peak(self, now: float) -> float:
        current = int(now)
        for second in [s for s in self._bins if s < current - PEAK_WINDOW_S]:
            del self._bins[second]
        return float(max((n for s, n in self._bins.items() if s < current), default=0))


class AdmissionPacer:
    def __init__(self) -> None:
        self.rate: float | None = None  # transactions a second; None: not pacing
        self._tokens = 0.0
        self._at = 0.0
        self._refused_at = 0.0
        self._slow_start_at: float | None = None  # when pacing began, until a transaction waited long

    def engage(self, now: float, queued: bool) -> None:
        """The backlog rule refused: pace from now on (an empty bucket).
        `queued`: the node's oldest admitted transaction has waited long,
        which ends slow start (the pace outran the cluster)."""
        if self.rate is None:
            self.rate = float(BURST)
            self._tokens, self._at, self._refused_at, self._slow_start_at = 0.0, now, now, now
        if queued:
            self._slow_start_at = None

    def allows(self, now: float, own_peak: float, crowded: bool) -> bool:
        """Whether a call may start now. `own_peak`: this node's best recent
        commit rate; `crowded`: the backlog seen here leaves no room for it."""
        if self.rate is None:
            return True
        slow_start = BURST * 2 ** min(now - self._slow_start_at, 20) if self._slow_start_at is not None else 0
        self.rate = max(float(BURST), PROBE * own_peak, slow_start)
        self._tokens = min(BURST, self._tokens + self.rate * (now - self._at))
        self._at = now
        if self._tokens <= 0 or crowded:
            self._refused_at = now
            return False
        if now - self._refused_at >= IDLE_S:
            self.rate = None
        return True

    def take(self, n: int) -> None:
        """`n` transactions were let in (the bucket may go into debt by one call)."""
        if self.rate is not None:
            self._tokens -= n
