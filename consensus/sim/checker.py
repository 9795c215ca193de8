"""Cluster-wide invariant checker (docs/simulator.md, docs/testing.md S1-S8, L1).

It sees every message a node hands to the network and every block a node
appends to its ledger, and raises SafetyViolation at the first broken
invariant so the trace stops where the bug is. Only *correct* nodes are held
to the invariants; Byzantine ones may do anything.
"""
from __future__ import annotations

from dataclasses import fields

from consensus import messages as m
from consensus.block import BlockHeader
from consensus.certificates import VerifiedCache, valid_committed_block
from consensus.sim.network import wire_bytes

_HEADER_FIELDS = tuple(f.name for f in fields(BlockHeader))


class SafetyViolation(Exception):
    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant


class LivenessViolation(Exception):
    pass


def _h(b: bytes) -> str:
    return b.hex()[:12]


def _v(x) -> str:
    return _h(x) if isinstance(x, bytes) else str(x)


class Checker:
    def __init__(self, *, n: int, chain_id: str, verifier, correct: list[bool],
                 registry: dict[bytes, bytes], message_bytes_max: int = 0) -> None:
        self.n = n
        self.message_bytes_max = message_bytes_max  # 0: not checked
        self.chain_id = chain_id
        # The sim's own verifier, independent of the replica's; every node's
        # certificate for a height holds the same Commit objects, so remember
        # what was already accepted (exact (signature, replica, bytes) only).
        self.verifier = VerifiedCache(verifier, 1 << 16)
        self.correct = correct
        self.registry = registry  # request id -> body, every request a client created
        self.proposal_at: dict[int, tuple[bytes, int]] = {}  # height -> (proposal digest, first node)
        self.link_at: dict[int, tuple[bytes, int]] = {}  # height -> (certified link, first node)
        self.genesis_link = m.genesis_link(chain_id, b"")
        self.header_at: dict[int, tuple] = {}  # height -> (header, first node)
        self.votes: dict[tuple, tuple[bytes, bytes]] = {}  # (replica, kind, view, seq) -> (digest, Commit's link)
        self.executed: list[dict[bytes, int]] = [dict() for _ in range(n)]
        self.commits = 0

    # ---- S8: no equivocation by correct replicas ------------------------

    def on_send(self, src: int, msg) -> None:
        if not self.correct[src]:
            return
        size = wire_bytes(msg) if self.message_bytes_max else 0
        if size > self.message_bytes_max:
            raise SafetyViolation(
                "bounded-messages", f"correct replica {src} built a {type(msg).__name__} of about {size} bytes, "
                f"above message_bytes_max {self.message_bytes_max}: the transport would drop it")
        if isinstance(msg, (m.PrePrepare, m.Prepare, m.Commit)):
            self._vote(src, msg)
        elif isinstance(msg, m.NewView):
            for pp in msg.pre_prepares:
                self._vote(src, pp)

    def _vote(self, src: int, msg) -> None:
        if msg.replica != src:
            return  # relaying someone else's signed message is not a vote
        key = (src, type(msg).__name__, msg.view, msg.seq)
        signed = (msg.digest, getattr(msg, "link", b""))
        old = self.votes.setdefault(key, signed)
        if old != signed:
            raise SafetyViolation(
                "equivocation", f"correct replica {src} signed {key[1]} view={msg.view} seq={msg.seq} "
                f"for {_h(old[0])} (link {_h(old[1])}) and {_h(signed[0])} (link {_h(signed[1])})")

    # ---- S1-S6 on every commit -------------------------------------------

    def on_commit(self, node: int, entry, prev_entry) -> None:
        if not self.correct[node]:
            return
        self.commits += 1
        block, header = entry.block, entry.header
        seq = block.seq
        expected = (prev_entry.header.height + 1) if prev_entry else 1
        if seq != expected or header.height != seq:
            raise SafetyViolation("hash-chain", f"node {node} appended seq {seq}, expected {expected}")
        if header.parent_hash != (prev_entry.header.hash if prev_entry else bytes(32)):
            raise SafetyViolation("hash-chain", f"node {node} seq {seq}: parent hash does not link")
        if not valid_committed_block(block, self.chain_id, self.n, self.verifier):
            raise SafetyViolation("certificate", f"node {node} seq {seq}: invalid commit certificate")
        digest = block.proposal.digest
        first = self.proposal_at.setdefault(seq, (digest, node))
        if first[0] != digest:
            raise SafetyViolation(
                "agreement", f"seq {seq}: node {first[1]} committed {_h(first[0])}, node {node} {_h(digest)}")
        # docs/design.md, "Block binding": the certified link extends the node's own chain, and every
        # correct node holds the same link at each height.
        link = block.certificate.link
        if link != m.next_link(prev_entry.header.link if prev_entry else self.genesis_link, digest):
            raise SafetyViolation("link-chain", f"node {node} seq {seq}: certified link {_h(link)} does not "
                                  "extend its chain")
        lfirst = self.link_at.setdefault(seq, (link, node))
        if lfirst[0] != link:
            raise SafetyViolation(
                "agreement", f"seq {seq}: node {lfirst[1]} certified link {_h(lfirst[0])}, node {node} {_h(link)}")
        done = self.executed[node]
        for r in block.proposal.requests:
            if self.registry.get(r.id) != r.body:
                raise SafetyViolation("validity", f"node {node} seq {seq}: request {_h(r.id)} no client sent")
        for rid in entry.executed:
            if rid in done:
                raise SafetyViolation("executed-once", f"node {node} seq {seq}: {_h(rid)} executed twice")
            done[rid] = seq
        for rid in entry.duplicates:
            if rid not in done:
                raise SafetyViolation("executed-once", f"node {node} seq {seq}: {_h(rid)} skipped, never run")
        hfirst = self.header_at.setdefault(seq, (header, node))
        if hfirst[0].hash != header.hash:
            other = hfirst[0]
            diff = [f"{k}: node {hfirst[1]}={_v(getattr(other, k))} node {node}={_v(getattr(header, k))}"
                    for k in _HEADER_FIELDS if getattr(other, k) != getattr(header, k)]
            diff = diff or [f"equal fields, hashes {_h(other.hash)} and {_h(header.hash)}"]
            raise SafetyViolation(
                    "identical-ledgers", f"seq {seq}: same proposal {_h(digest)}, different headers: "
                    + "; ".join(diff))

    def on_restart(self, node: int, ledger_height: int, replica_executed_seq: int, before: int) -> None:
        if not self.correct[node]:
            return
        if ledger_height < before or replica_executed_seq < ledger_height:
            raise SafetyViolation(
                "no-regress", f"node {node} restarted at ledger {ledger_height} (was {before}), "
                f"replica executed_seq {replica_executed_seq}")

    # ---- end of run ------------------------------------------------------

    def converged(self, ledgers: list) -> str | None:
        """None when every correct ledger holds every request and all agree;
        else a short reason (used as the liveness failure message)."""
        heights = [ledgers[i].height for i in range(self.n) if self.correct[i]]
        if len(set(heights)) != 1:
            return f"correct ledgers at different heights {heights}"
        for i in range(self.n):
            if not self.correct[i]:
                continue
            missing = sum(1 for rid in self.registry if rid not in ledgers[i].executed_ids)
            if missing:
                return f"node {i} has not executed {missing} of {len(self.registry)} requests"
        return None
