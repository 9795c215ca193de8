"""Byzantine replicas: a real Replica whose outgoing traffic is rewritten.

Wrapping an honest replica keeps Byzantine nodes protocol-fluent (they send
plausible messages at plausible times) while the rewrite injects the attack:

- silent       sends nothing at all
- equivocate   as primary, a different PrePrepare (other timestamp, sometimes
               an invented request) to half of the replicas, signed with its
               own key: a correct signature on a conflicting proposal
- forge        copies of its votes claiming another replica's index, signed
               with its own key (wrong key): must fail verification
- replay       re-sends old messages it received, to random replicas
- huge_view    ViewChange for view 2**60 and Status claiming a far height
- double_vote  a second Prepare/Commit with another digest for each vote
- censor       never lets one client's requests (ids starting with byte 0,
               1 in 256) into its replica: as primary it keeps committing
               everything else and leaves those out

With `collude`, Byzantine nodes share the equivocating primary's split and
vote for whichever digest each correct replica was shown (a Commit echoes the
link the target signed itself, which only the target's history determines):
with more than f of them this must break agreement, which proves the checker
can fail.
"""
from __future__ import annotations

import dataclasses
import hashlib
import random
from collections import deque

from consensus import events as ev
from consensus import messages as m
from consensus.signing import with_signature


def _resign(msg, signer):
    return with_signature(msg, signer)


class Collusion:
    """Shared by colluding Byzantine nodes: who was shown which digest."""

    def __init__(self) -> None:
        self.members: list[Byzantine] = []
        self.shown: dict[tuple[int, int, int], bytes] = {}  # (view, seq, dst) -> digest

    def equivocated(self, view: int, seq: int, shown: dict[int, bytes], now_ms: int) -> None:
        for (dst, digest) in shown.items():
            self.shown[(view, seq, dst)] = digest
        for b in self.members:
            b.vote_split(view, seq, shown)


class Byzantine:
    def __init__(self, node, behaviours: tuple[str, ...], *, rng: random.Random, n: int, chain_id: str,
                 forger, collusion: Collusion | None, send_raw) -> None:
        self.node = node
        self.behaviours = set()  # noqa: only membership tests, never iterated
        self.behaviours.update(behaviours)
        self.rng = rng
        self.n = n
        self.chain_id = chain_id
        self.signer = node.signer  # its own, genuine key
        self.forger = forger  # a key that belongs to nobody
        self.collusion = collusion
        self.send_raw = send_raw  # send_raw(src, to, msg), bypassing the filter
        self.seen: deque = deque(maxlen=256)  # messages received, for replay
        self.echoed: set[tuple[int, int, int]] = set()  # (view, seq, target) whose Commit we echoed
        self.active = True
        if collusion is not None:
            collusion.members.append(self)
        node.outbox_filter = self.filter
        if "censor" in self.behaviours:
            node.inbox_filter = self.censor

    @property
    def index(self) -> int:
        return self.node.index

    def go_silent(self) -> None:
        self.behaviours = {"silent"}

    def stop(self) -> None:
        """Behave honestly from now on (used when the liveness phase calms things)."""
        self.active = False

    def observe(self, msg) -> None:
        self.seen.append(msg)
        if isinstance(msg, m.Commit) and self.collusion is not None:
            self._echo_commit(msg)

    def _echo_commit(self, c: m.Commit) -> None:
        """A target committed the digest it was shown: sign the same Commit, link included."""
        key = (c.view, c.seq, c.replica)
        if (self.collusion.shown.get(key) != c.digest or key in self.echoed or "silent" in self.behaviours
                or not self.active or self.node.replica is None):
            return
        self.echoed.add(key)
        echo = dataclasses.replace(c, replica=self.index)
        self.send_raw(self.index, c.replica, _resign(echo, self.signer))

    # ---- censoring incoming requests --------------------------------------

    @staticmethod
    def censored(request: m.Request) -> bool:
        return request.id[0] == 0

    def censor(self, event):
        """Requests reach a replica from clients or in RequestBatches; strip
        the victim's. A batch is signed by its sender, so what is left goes in
        as if submitted by a client."""
        if not self.active:
            return event
        if isinstance(event, ev.MessageReceived) and isinstance(event.message, m.RequestBatch):
            requests = event.message.requests
        elif isinstance(event, ev.RequestsSubmitted):
            requests = event.requests
        else:
            return event
        kept = tuple(r for r in requests if not self.censored(r))
        if len(kept) == len(requests):
            return event
        return ev.RequestsSubmitted(requests=kept) if kept else None

    # ---- rewriting outgoing messages ------------------------------------

    def _others(self) -> list[int]:
        return [i for i in range(self.n) if i != self.index]

    def filter(self, to, msg) -> list:
        b = self.behaviours
        if "silent" in b and self.active:
            return []
        if not self.active:
            return [(to, msg)]
        out = []
        if isinstance(msg, m.PrePrepare) and "equivocate" in b and to is None:
            out.extend(self._equivocate(msg))
        elif isinstance(msg, (m.Prepare, m.Commit)) and self.collusion is not None and to is None:
            out.extend(self._collusive_vote(msg))
        else:
            out.append((to, msg))
        if isinstance(msg, (m.Prepare, m.Commit)):
            if "double_vote" in b:
                other = dataclasses.replace(msg, digest=self.rng.randbytes(32))
                out.append((to, _resign(other, self.signer)))
            if "forge" in b:
                victim = self.rng.choice(self._others())
                fake = dataclasses.replace(msg, replica=victim, digest=self.rng.randbytes(32))
                out.append((to, _resign(fake, self.signer)))  # signed with the wrong key for `victim`
        return out

    def _variant(self, pp: m.PrePrepare) -> m.PrePrepare:
        p = pp.proposal
        requests = p.requests
        if self.rng.random() < 0.3:
            body = b"invented:" + self.rng.randbytes(16)
            requests = requests + (m.Request(id=hashlib.sha256(body).digest(), body=body),)
        alt = dataclasses.replace(p, timestamp_ms=p.timestamp_ms + 1, requests=requests)
        return _resign(dataclasses.replace(pp, digest=alt.digest, proposal=alt), self.signer)

    def _equivocate(self, pp: m.PrePrepare) -> list:
        variant = self._variant(pp)
        others = self._others()
        colluders = set()  # noqa: ints only, never iterated for output order
        if self.collusion is not None:
            colluders.update(x.index for x in self.collusion.members)
        targets = [d for d in others if d not in colluders]
        half = targets[len(targets) // 2:]
        shown, out = {}, []
        for d in others:
            chosen = variant if d in half else pp
            shown[d] = chosen.digest
            out.append((d, chosen))
        if self.collusion is not None:
            self.collusion.equivocated(pp.view, pp.seq, shown, 0)
        return out

    def _collusive_vote(self, vote) -> list:
        out = []
        for d in self._others():
            digest = self.collusion.shown.get((vote.view, vote.seq, d))
            if digest is None or digest == vote.digest:
                out.append((d, vote))
            elif isinstance(vote, m.Prepare):
                out.append((d, _resign(dataclasses.replace(vote, digest=digest), self.signer)))
            # A Commit for another digest would carry the wrong link: _echo_commit sends the right one.
        return out

    def vote_split(self, view: int, seq: int, shown: dict[int, bytes]) -> None:
        """Colluders immediately Prepare whatever each target saw (and Commit
        it once the target does: _echo_commit)."""
        if "silent" in self.behaviours or not self.active or self.node.replica is None:
            return
        if self.index == view % self.n:
            return  # the primary's PrePrepare is its prepare
        for d, digest in shown.items():
            if d != self.index:
                v = m.Prepare(chain_id=self.chain_id, view=view, seq=seq, digest=digest, replica=self.index)
                self.send_raw(self.index, d, _resign(v, self.signer))

    # ---- spontaneous mischief, once per tick -----------------------------

    def on_tick(self) -> None:
        if not self.active or "silent" in self.behaviours or self.node.replica is None:
            return
        rng, b = self.rng, self.behaviours
        if "replay" in b and self.seen and rng.random() < 0.2:
            old = self.seen[rng.randrange(len(self.seen))]
            self.send_raw(self.index, rng.choice(self._others()), old)
        if "huge_view" in b and rng.random() < 0.02:
            vc = m.ViewChange(chain_id=self.chain_id, view=2**60 + rng.randrange(1000),
                              checkpoint=m.GENESIS_CHECKPOINT, prepared=(), replica=self.index)
            self.send_raw(self.index, None, _resign(vc, self.signer))
            st = m.Status(chain_id=self.chain_id, view=2**60, executed_seq=2**40, stable_seq=0, replica=self.index)
            self.send_raw(self.index, None, _resign(st, self.signer))
        if "forge" in b and self.seen and rng.random() < 0.05:
            old = self.seen[rng.randrange(len(self.seen))]
            if isinstance(old, (m.Prepare, m.Commit, m.Checkpoint)):
                fake = dataclasses.replace(old, digest=rng.randbytes(32))
                self.send_raw(self.index, None, _resign(fake, self.forger))
