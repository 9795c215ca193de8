"""Virtual network: a priority queue of in-flight messages.

Each send draws loss, duplication and a delay from the network's own RNG;
random delays reorder messages, a fraction of "slow" messages arrive seconds
later (stale views, replays). Partitions are a per-(src, dst) block matrix so
one-way partitions are as easy as symmetric ones; they are checked at
delivery, so a partition also swallows what was already in flight.
"""
from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, fields, is_dataclass

_FIELD_OVERHEAD = 11  # a protobuf tag plus the longest varint (length or integer)


def wire_bytes(obj) -> int:
    """An upper bound of a message's protobuf size: every field's payload
    plus a tag and a varint. Lets the simulator hold replicas to the node's
    bounded messages (the real transport drops anything above
    message_bytes_max) without importing the codec."""
    if isinstance(obj, bytes):
        return len(obj) + _FIELD_OVERHEAD
    if isinstance(obj, str):
        return len(obj.encode()) + _FIELD_OVERHEAD
    if isinstance(obj, tuple):
        return sum(map(wire_bytes, obj)) + _FIELD_OVERHEAD
    if is_dataclass(obj):
        return sum(wire_bytes(getattr(obj, f.name)) for f in fields(obj)) + _FIELD_OVERHEAD
    return _FIELD_OVERHEAD  # int, bool, None


@dataclass
class LinkFaults:
    loss: float = 0.0  # probability a message is dropped
    duplicate: float = 0.0  # probability a message is delivered twice
    delay_ms_min: int = 1
    delay_ms_max: int = 5
    slow: float = 0.0  # probability of a long delay (reorders across rounds)
    slow_ms_max: int = 2000


class Network:
    def __init__(self, n: int, rng: random.Random, faults: LinkFaults | None = None) -> None:
        self.n = n
        self.rng = rng
        self.faults = faults or LinkFaults()
        self.blocked = [[0] * n for _ in range(n)]  # count of partitions cutting src -> dst
        self._queue: list = []
        self._order = 0  # tie-breaker: FIFO among equal delivery times
        self.sent = 0
        self.dropped = 0

    def send(self, now_ms: int, src: int, dst: int, msg) -> None:
        self.sent += 1
        f, rng = self.faults, self.rng
        if f.loss and rng.random() < f.loss:
            self.dropped += 1
            return
        copies = 2 if f.duplicate and rng.random() < f.duplicate else 1
        for _ in range(copies):
            # random() is several times cheaper than randint() on this hot path
            if f.slow and rng.random() < f.slow:
                delay = f.delay_ms_max + int(rng.random() * (f.slow_ms_max - f.delay_ms_max + 1))
            else:
                delay = f.delay_ms_min + int(rng.random() * (f.delay_ms_max - f.delay_ms_min + 1))
            self._order += 1
            heapq.heappush(self._queue, (now_ms + delay, self._order, src, dst, msg))

    def inject(self, deliver_at_ms: int, src: int, dst: int, msg) -> None:
        """Bypass link faults (used by Byzantine replay and tests)."""
        self._order += 1
        heapq.heappush(self._queue, (deliver_at_ms, self._order, src, dst, msg))

    def due(self, now_ms: int):
        """Yield (src, dst, msg) for every message due by now, in order."""
        q = self._queue
        while q and q[0][0] <= now_ms:
            _, _, src, dst, msg = heapq.heappop(q)
            if self.blocked[src][dst]:
                self.dropped += 1
                continue
            yield src, dst, msg

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    # ---- partitions ----------------------------------------------------

    def partition(self, side_a, side_b, one_way: bool = False, undo: bool = False) -> None:
        """Cut a -> b (and b -> a unless one_way); undo=True heals exactly that
        cut, so overlapping partitions heal independently."""
        d = -1 if undo else 1
        for a in side_a:
            for b in side_b:
                self.blocked[a][b] = max(0, self.blocked[a][b] + d)
                if not one_way:
                    self.blocked[b][a] = max(0, self.blocked[b][a] + d)

    def heal(self) -> None:
        self.blocked = [[0] * self.n for _ in range(self.n)]

    def isolate(self, node: int) -> None:
        others = [i for i in range(self.n) if i != node]
        self.partition([node], others)

    def calm(self) -> None:
        """Liveness phase: no loss, no duplication, short delays, no partitions."""
        self.faults = LinkFaults(delay_ms_min=self.faults.delay_ms_min,
                                 delay_ms_max=min(self.faults.delay_ms_max, 50))
        self.heal()
