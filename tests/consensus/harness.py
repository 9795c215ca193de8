"""A minimal lock-step driver for unit tests of one rule at a time.

The full simulator (consensus.sim) injects faults; this harness only delivers
messages in FIFO order, with optional filters, so tests read like the paper.
"""
from __future__ import annotations

import hashlib
from collections import deque

from consensus import events as ev
from consensus import messages as m
from consensus.block import make_header
from consensus.config import ReplicaConfig
from consensus.replica import Replica

CHAIN = "test"


class KeyedHashSigner:
    def __init__(self, replica: int) -> None:
        self.key = b"secret-%d" % replica

    def sign(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=self.key, digest_size=16).digest()


class KeyedHashVerifier:
    def verify(self, replica: int, data: bytes, signature: bytes) -> bool:
        return KeyedHashSigner(replica).sign(data) == signature


def request(i: int) -> m.Request:
    body = b"tx-%d" % i
    return m.Request(id=hashlib.sha256(body).digest(), body=body)


class Cluster:
    """`ledger_dedup=True` gives every replica an `is_committed` callback backed by
    this harness's ledger, as the node does; by default a replica remembers
    committed request ids itself (and forgets them on restart)."""

    def __init__(self, n: int = 4, *, ledger_dedup: bool = False, metadata=None, **params) -> None:
        self.n = n
        # metadata(i) -> (propose_metadata, check_metadata) injected into replica i, or None
        self.metadata = metadata or (lambda i: (None, None))
        self.params = params
        self.ledger_dedup = ledger_dedup
        self.ledger_ids: list[set[bytes]] = [set() for _ in range(n)]
        self.replicas = [self._make(i) for i in range(n)]
        self.ledgers: list[list[m.CommittedBlock]] = [[] for _ in range(n)]
        self.headers: list[list] = [[] for _ in range(n)]
        self.durable: list[dict] = [{} for _ in range(n)]
        # seq -> stable-checkpoint proof, as the node's ledger keeps them (C<seq>)
        self.proofs: list[dict[int, m.StableCheckpoint]] = [{} for _ in range(n)]
        self.diverged: dict[int, str] = {}  # replica -> the reason it stopped
        self.queue: deque[tuple[int, int, m.Message]] = deque()  # (from, to, msg)
        self.down: set[int] = set()
        self.drop = lambda frm, to, msg: False
        self.sent: list[tuple[int, m.Message]] = []
        self.now_ms = 1_000

    def _make(self, i: int, restored: ev.RestoredState | None = None) -> Replica:
        cfg = ReplicaConfig(chain_id=CHAIN, validators=self.n, replica=i, **self.params)
        is_committed = self.ledger_ids[i].__contains__ if self.ledger_dedup else None
        propose, check = self.metadata(i)
        return Replica(cfg, KeyedHashSigner(i), KeyedHashVerifier(), is_committed=is_committed, restored=restored,
                       propose_metadata=propose, check_metadata=check)

    def handle(self, i: int, ready: ev.Ready) -> None:
        if ready.diverged:  # the node's shell fail-stops: nothing of this Ready is persisted or sent
            self.diverged[i] = ready.diverged
            self.down.add(i)
            self.replicas[i].advance(ready)
            return
        for w in ready.persist:
            if w.value is None:
                self.durable[i].pop(w.key, None)
            else:
                self.durable[i][w.key] = w.value
            if w.key[0] == "checkpoint" and w.value is not None:
                self.proofs[i][w.value.seq] = w.value
        for send in ready.messages:
            self.sent.append((i, send.message))
            targets = [send.to] if send.to is not None else [j for j in range(self.n) if j != i]
            for j in targets:
                self.queue.append((i, j, send.message))
        executed = []
        for block in ready.committed:
            parent = self.headers[i][-1] if self.headers[i] else None
            header = make_header(block, parent, b"\0" * 32)
            self.ledgers[i].append(block)
            self.ledger_ids[i].update(r.id for r in block.proposal.requests)
            self.headers[i].append(header)
            executed.append(ev.BlockExecuted(seq=block.seq, block_hash=header.hash))
        for s in ready.serve:
            blocks = tuple(b for b in self.ledgers[i] if s.from_seq <= b.seq <= s.to_seq)
            proofs = tuple(self.proofs[i][b.seq] for b in blocks if b.seq in self.proofs[i])
            reply = m.BlocksReply(chain_id=CHAIN, blocks=blocks, checkpoints=proofs, replica=i)
            self.sent.append((i, reply))  # sent by the shell on the replica's behalf
            self.queue.append((i, s.to, reply))
        self.replicas[i].advance(ready)
        for e in executed:
            self.step(i, e)

    def step(self, i: int, event: ev.Event) -> ev.Ready:
        ready = self.replicas[i].step(event)
        self.handle(i, ready)
        return ready

    def submit(self, i: int, *reqs: m.Request) -> None:
        self.step(i, ev.RequestsSubmitted(requests=tuple(reqs)))

    def deliver_all(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            if not self.queue:
                return
            frm, to, msg = self.queue.popleft()
            if to in self.down or frm in self.down or self.drop(frm, to, msg):
                continue
            self.step(to, ev.MessageReceived(message=msg))
        raise AssertionError("messages did not quiesce")

    def tick(self, count: int = 1) -> None:
        for _ in range(count):
            self.now_ms += 10
            for i in range(self.n):
                if i not in self.down:
                    self.step(i, ev.Tick(now_ms=self.now_ms))
            self.deliver_all()

    def crash(self, i: int) -> None:
        self.down.add(i)

    def restart(self, i: int) -> None:
        self.down.discard(i)
        tip = self.ledgers[i][-1] if self.ledgers[i] else None
        restored = ev.RestoredState(
            records=dict(self.durable[i]),
            executed_seq=tip.seq if tip else 0,
            executed_timestamp_ms=tip.proposal.timestamp_ms if tip else 0,
            executed_link=tip.certificate.link if tip else b"",
            executed_hashes={h.height: h.hash for h in self.headers[i]},
        )
        self.replicas[i] = self._make(i, restored)

    def committed_ids(self, i: int) -> list[bytes]:
        return [r.id for b in self.ledgers[i] for r in b.proposal.requests]

    def assert_agreement(self) -> None:
        """S1/S2: every ledger is a prefix of the longest one."""
        longest = max(self.ledgers, key=len)
        for ledger in self.ledgers:
            for a, b in zip(ledger, longest):
                assert a.proposal.digest == b.proposal.digest, f"disagreement at height {a.seq}"

    # ---- conveniences (additive; the API above is unchanged) ---------------

    def tick_until(self, done, max_ticks: int = 500) -> int:
        """Tick until `done()` holds; returns the number of ticks it took."""
        for t in range(1, max_ticks + 1):
            self.tick()
            if done():
                return t
        raise AssertionError(f"condition not reached within {max_ticks} ticks")

    def up(self) -> list[int]:
        return [i for i in range(self.n) if i not in self.down]

    def inject(self, to: int, msg: m.Message) -> ev.Ready:
        """Deliver a hand-made message directly (e.g. one forged by a test)."""
        return self.step(to, ev.MessageReceived(message=msg))
