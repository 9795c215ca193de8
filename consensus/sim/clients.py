"""Simulated clients: create requests, submit them, retry the stragglers.

The registry (request id -> body) is the ground truth for validity: a
replica's validate_request accepts only requests a client really created, so
a Byzantine primary that invents one is caught, and the checker refuses any
committed request that is not in it.
"""
from __future__ import annotations

import hashlib
import random

from consensus import messages as m


class Clients:
    def __init__(self, rng: random.Random, n: int, requests_per_s: int, retry_ms: int = 2000,
                 payload_bytes: int = 0) -> None:
        self.rng = rng
        self.n = n
        self.requests_per_s = requests_per_s
        self.padding = b"\0" * payload_bytes  # large payloads: the bodies PBFT must move around
        self.retry_ms = retry_ms
        self.registry: dict[bytes, bytes] = {}
        self.outstanding: dict[bytes, None] = {}  # not yet executed by any correct replica (insertion order)
        self._counter = 0
        self._next_retry = retry_ms

    def validate(self, request: m.Request) -> bool:
        return self.registry.get(request.id) == request.body

    def new_requests(self, count: int) -> tuple[m.Request, ...]:
        out = []
        for _ in range(count):
            self._counter += 1
            body = b"tx:%d:" % self._counter + self.rng.randbytes(8) + self.padding
            rid = hashlib.sha256(body).digest()
            self.registry[rid] = body
            self.outstanding[rid] = None
            out.append(m.Request(id=rid, body=body))
        return tuple(out)

    def arrivals(self, tick_ms: int) -> int:
        """How many new requests arrive in this tick (mean requests_per_s)."""
        mean = self.requests_per_s * tick_ms / 1000.0
        whole = int(mean)
        return whole + (1 if self.rng.random() < mean - whole else 0)

    def targets(self) -> list[int]:
        """Usually one replica (a backup must forward), sometimes all of them."""
        if self.rng.random() < 0.3:
            return list(range(self.n))
        return [self.rng.randrange(self.n)]

    def due_retries(self, now_ms: int, executed_anywhere) -> tuple[m.Request, ...]:
        """Every retry_ms, the requests no correct replica has executed yet,
        like a real client that re-broadcasts after a timeout."""
        if now_ms < self._next_retry:
            return ()
        self._next_retry = now_ms + self.retry_ms
        for rid in [r for r in self.outstanding if executed_anywhere(r)]:
            del self.outstanding[rid]
        return tuple(m.Request(id=rid, body=self.registry[rid]) for rid in self.outstanding)
