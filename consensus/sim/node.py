"""The simulator's shell around one Replica: the same duties as node/, with
a virtual disk, a virtual network and a virtual clock.

For every Ready, in order: persist (durable only if sync) -> send -> append
committed blocks to the ledger -> serve block fetches -> advance(); then feed
BlockExecuted back. A crash drops the Replica object and unsynced writes; a
restart rebuilds it from durable records plus the ledger tip.
"""
from __future__ import annotations

from collections import deque

from consensus import events as ev
from consensus import messages as m
from consensus.sim.checker import SafetyViolation
from consensus.sim.network import wire_bytes
from consensus.sim.storage import Ledger, Storage


class SimNode:
    def __init__(self, index: int, *, config, signer, verifier, validate_request, replica_factory,
                 send, checker, trace, serve_bytes_max: int = 0) -> None:
        self.index = index
        self.serve_bytes_max = serve_bytes_max  # like node/chain.py: a BlocksReply stays bounded; 0: unbounded
        self.config = config
        self.signer = signer
        self.verifier = verifier
        self.validate_request = validate_request
        self._factory = replica_factory
        self._send = send  # send(src, to, msg); to None = broadcast
        self.checker = checker
        self.trace = trace
        self.storage = Storage()
        self.ledger = Ledger()
        self.replica = None
        self.paused = False
        self.inbox: deque = deque()  # messages that arrived while paused
        self.outbox_filter = None  # Byzantine hook: (to, msg) -> list[(to, msg)]
        self.inbox_filter = None  # Byzantine hook: event -> event, or None to drop it
        self.crashes = 0
        self.lost_writes = 0
        self.dropped: dict[str, int] = {}

    @property
    def up(self) -> bool:
        return self.replica is not None

    def start(self) -> None:
        restored = None
        if self.crashes:
            tip = self.ledger.tip
            restored = ev.RestoredState(
                records=self.storage.durable_records(),
                executed_seq=self.ledger.height,
                executed_timestamp_ms=tip.block.proposal.timestamp_ms if tip else 0,
                executed_hashes={e.header.height: e.header.hash for e in self.ledger.entries[-1024:]},
            )
        ledger_ids = self.ledger.executed_ids
        self.replica = self._factory(self.config, self.signer, self.verifier, self.validate_request, restored,
                                     ledger_ids.__contains__)
        if self.crashes:
            self.checker.on_restart(self.index, self.ledger.height, self.replica.executed_seq,
                                    self.ledger.height)

    def crash(self) -> None:
        self.replica = None
        self.crashes += 1
        self.lost_writes += self.storage.crash()
        self.inbox.clear()

    # ---- inputs ----------------------------------------------------------

    def deliver(self, msg) -> None:
        if self.replica is None:
            return
        if self.paused:
            self.inbox.append(msg)
            return
        self.step(ev.MessageReceived(message=msg))

    def resume(self) -> None:
        self.paused = False
        while self.inbox and self.replica is not None and not self.paused:
            self.step(ev.MessageReceived(message=self.inbox.popleft()))

    def step(self, event) -> None:
        """Step the replica and run the shell duties; then feed BlockExecuted
        back (after advance(): the replica takes no step before it)."""
        if self.inbox_filter is not None:
            event = self.inbox_filter(event)
            if event is None:
                return
        replica = self.replica
        ready = replica.step(event)
        if not ready:
            replica.advance(ready)
            return
        executed = self._handle(ready)
        replica.advance(ready)
        for e in executed:
            if self.replica is not replica:
                return
            self.step(e)

    def _handle(self, ready) -> list:
        if ready.persist or ready.sync:
            self.storage.write(ready.persist, ready.sync)
        for s in ready.messages:
            self.emit(s.to, s.message)
        executed = []
        for block in ready.committed:
            entry = self._append(block)
            if entry is not None:
                executed.append(ev.BlockExecuted(seq=block.seq, block_hash=entry.header.hash))
        for sb in ready.serve:
            blocks = self.ledger.blocks(sb.from_seq, sb.to_seq)
            if self.serve_bytes_max:
                size, count = 0, 0
                for block in blocks:
                    size += wire_bytes(block)
                    if count and size > self.serve_bytes_max:
                        break
                    count += 1
                blocks = blocks[:count]
            if blocks:
                self.emit(sb.to, m.BlocksReply(
                    chain_id=self.config.chain_id, blocks=blocks, replica=self.index))
        for reason in ready.dropped:
            self.dropped[reason] = self.dropped.get(reason, 0) + 1
        return executed

    def emit(self, to, msg) -> None:
        if self.outbox_filter is None:
            self._send(self.index, to, msg)
        else:
            for to2, msg2 in self.outbox_filter(to, msg):
                self._send(self.index, to2, msg2)

    def _append(self, block: m.CommittedBlock):
        height = self.ledger.height
        if block.seq <= height:
            # Already in the ledger (e.g. re-delivered after restart): must be the same block.
            have = self.ledger.entries[block.seq - 1].block.proposal.digest
            if have != block.proposal.digest and self.checker.correct[self.index]:
                raise SafetyViolation("agreement", f"node {self.index} re-committed seq {block.seq} "
                                      "with a different proposal")
            return None
        prev = self.ledger.tip
        entry = self.ledger.append(block)
        self.checker.on_commit(self.index, entry, prev)
        self.trace.update(b"C%d:%d:" % (self.index, block.seq) + entry.header.hash)
        return entry
