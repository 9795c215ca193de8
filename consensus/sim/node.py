"""The simulator's shell around one Replica: the same duties as node/, with
a virtual disk, a virtual network and a virtual clock.

For every Ready, in order: persist (durable only if sync) -> send -> append
committed blocks to the ledger -> serve block fetches -> advance(); then feed
BlockExecuted back. A crash drops the Replica object and unsynced writes; a
restart rebuilds it from durable records plus the ledger tip.

Storage defence (docs/simulator.md, "Storage faults"), the sim's stand-in for
node/ledger/promises.py and `govchain chain repair`: after every synced batch and
before its messages leave, the shell records its promises (sync count,
height, view, highest voted seq) in one of two copies kept apart from the
store. A restart whose store is damaged or behind those promises wipes the
store and runs the replica as a learner: the shell keeps consensus votes from
it and from its peers until the ledger has passed every promise, then
rebuilds it in a view above the promised one.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

from consensus import events as ev
from consensus import messages as m
from consensus.sim.checker import SafetyViolation
from consensus.sim.network import wire_bytes
from consensus.sim.storage import Ledger, Storage

VIEW_KEY = ("view",)
# What a learner must neither send nor hear: votes and view changes, which
# count on the records it lost. Status, checkpoints and state transfer flow.
_HELD = (m.PrePrepare, m.Prepare, m.Commit, m.ViewChange, m.NewView)


@dataclass(frozen=True)
class Promise:
    sync: int = 0
    height: int = 0
    view: int = 0
    voted_seq: int = 0


class PromiseRecord:
    """Two copies; a write goes to the older one, so a torn write leaves the
    previous promise intact in the other (as node/ledger/promises.py)."""

    def __init__(self) -> None:
        self.copies: list[Promise | None] = [Promise(), Promise()]
        self._last = 1

    def write(self, promise: Promise) -> None:
        self._last = 1 - self._last
        self.copies[self._last] = promise

    def tear_last(self) -> None:
        self.copies[self._last] = None

    def read(self) -> Promise | None:
        intact = [c for c in self.copies if c is not None]
        return max(intact, key=lambda p: p.sync) if intact else None

    def latest(self) -> Promise:
        return self.copies[self._last]


class SimNode:
    def __init__(self, index: int, *, config, signer, verifier, validate_request, replica_factory,
                 send, checker, trace, serve_bytes_max: int = 0, storage: Storage | None = None,
                 defence: bool = True) -> None:
        self.index = index
        self.serve_bytes_max = serve_bytes_max  # like node/chain/chain_node.py: a BlocksReply stays bounded; 0: unbounded
        self.config = config
        self.signer = signer
        self.verifier = verifier
        self.validate_request = validate_request
        self._factory = replica_factory
        self._send = send  # send(src, to, msg); to None = broadcast
        self.checker = checker
        self.trace = trace
        self.storage = storage or Storage()
        self.defence = defence  # False: the control; restart trusts whatever the store holds
        self.promises = PromiseRecord()
        self.learning: Promise | None = None  # set while re-syncing after a repair
        self.status_views: dict[int, int] = {}  # peer -> view of its latest Status (learner only)
        self.storage_stats = {"detected": 0, "repairs": 0, "rejoins": 0, "held": 0}
        self.ledger = Ledger()
        self.replica = None
        self.metadata: dict = {}  # propose_metadata / check_metadata for the replica (reads.py)
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
            records = self.storage.durable_records()
            if self.defence and self.store_problem(records):
                # `chain repair`: a fresh store; the promises stay and bind the learner.
                self.storage_stats["detected"] += 1
                self.storage_stats["repairs"] += 1
                promise = self.promises.read() or Promise()
                self.learning = self.learning or promise
                self.storage.wipe(self.promises.latest().sync if self.promises.latest() else promise.sync)
                records = {}
            restored = self._restored(records)
        self._build(restored)
        if self.crashes:
            self.checker.on_restart(self.index, self.ledger.height, self.replica.executed_seq,
                                    self.ledger.height)

    def store_problem(self, records: dict) -> str | None:
        """Why the store cannot be trusted to keep this node's promises, or None."""
        promise = self.promises.read()
        if promise is None:
            return "no intact promise copy"
        if self.storage.damaged():
            return f"damaged records {self.storage.damaged()}"
        if self.storage.durable_syncs() < promise.sync:
            return f"store at sync {self.storage.durable_syncs()}, promised {promise.sync}"
        view = records.get(VIEW_KEY)
        if (view.view if view is not None else 0) < promise.view:
            return f"view record behind promised view {promise.view}"
        seqs = [k[1] for k in records if k[0] in ("pre_prepare", "prepared")]
        if max([self.ledger.height, *seqs]) < promise.voted_seq:
            return f"no record of voted seq {promise.voted_seq}"
        return None

    def _restored(self, records: dict) -> ev.RestoredState:
        tip = self.ledger.tip
        return ev.RestoredState(
            records=records,
            executed_seq=self.ledger.height,
            executed_timestamp_ms=tip.block.proposal.timestamp_ms if tip else 0,
            executed_link=tip.header.link if tip else b"",
            executed_hashes={e.header.height: e.header.hash for e in self.ledger.entries[-1024:]},
        )

    def _build(self, restored) -> None:
        ledger_ids = self.ledger.executed_ids
        self.replica = self._factory(self.config, self.signer, self.verifier, self.validate_request, restored,
                                     ledger_ids.__contains__, **self.metadata)

    def _rejoin(self) -> None:
        """The ledger has passed every promise: vote again, in a view this node
        never voted in (the view f+1 peers report, if above the promised one)."""
        promise, self.learning = self.learning, None
        views = sorted(self.status_views.values(), reverse=True)
        f1 = (self.config.validators - 1) // 3 + 1
        peers_view = views[f1 - 1] if len(views) >= f1 else 0  # f+1 claims: one is correct
        if peers_view > promise.view:
            record = ev.ViewRecord(view=peers_view, changing=False)
        else:
            record = ev.ViewRecord(view=promise.view + 1, changing=True)
        self.storage.write((ev.Write(key=VIEW_KEY, value=record),), sync=True)
        self._promise((ev.Write(key=VIEW_KEY, value=record),))
        self.status_views.clear()
        self.storage_stats["rejoins"] += 1
        self._build(self._restored(self.storage.durable_records()))

    def crash(self) -> None:
        self.replica = None
        self.crashes += 1
        self.lost_writes += self.storage.crash()
        if self.storage.faults.torn and self.storage._rng.random() < self.storage.faults.torn:
            self.storage.injected["torn"] += 1
            self.promises.tear_last()
        self.inbox.clear()

    # ---- inputs ----------------------------------------------------------

    def deliver(self, msg) -> None:
        if self.replica is None:
            return
        if self.learning is not None:
            if isinstance(msg, _HELD):
                self.storage_stats["held"] += 1
                return
            if isinstance(msg, m.Status):
                self.status_views[msg.replica] = msg.view
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
        if self.learning is not None and self.ledger.height >= max(self.learning.voted_seq, self.learning.height):
            self._rejoin()
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
        if ready.diverged:
            # node/chain/chain_node.py fail-stops here. With at most f faulty replicas a
            # correct one never holds another history than 2f+1 signed.
            if self.checker.correct[self.index]:
                raise SafetyViolation("diverged", f"correct node {self.index}: {ready.diverged}")
            self.crash()
            return []
        if ready.persist or ready.sync:
            self.storage.write(ready.persist, ready.sync)
            self.ledger.keep_checkpoints(ready.persist)
            if ready.sync and self.learning is None:  # a learner's writes promise nothing: no vote leaves
                self._promise(ready.persist)
        for s in ready.messages:
            self.emit(s.to, s.message)
        executed = []
        for block in ready.committed:
            entry = self._append(block)
            if entry is not None:
                executed.append(ev.BlockExecuted(seq=block.seq, block_hash=entry.header.hash))
        for sb in ready.serve:
            blocks = self.ledger.blocks(sb.from_seq, sb.to_seq)
            proofs = self.ledger.checkpoints
            if self.serve_bytes_max:
                size, count = 0, 0
                for block in blocks:
                    size += wire_bytes(block) + wire_bytes(proofs.get(block.seq))
                    if count and size > self.serve_bytes_max:
                        break
                    count += 1
                blocks = blocks[:count]
            if blocks:
                self.emit(sb.to, m.BlocksReply(
                    chain_id=self.config.chain_id, blocks=blocks,
                    checkpoints=tuple(proofs[b.seq] for b in blocks if b.seq in proofs), replica=self.index))
        for reason in ready.dropped:
            self.dropped[reason] = self.dropped.get(reason, 0) + 1
        return executed

    def _promise(self, writes) -> None:
        """After the fsync, before the messages leave: never lower a promise."""
        old = self.promises.latest() or self.promises.read() or Promise()
        view, voted = old.view, old.voted_seq
        for w in writes:
            if w.value is None:
                continue
            if w.key == VIEW_KEY:
                view = max(view, w.value.view)
            elif w.key[0] in ("pre_prepare", "prepared"):
                voted = max(voted, w.key[1])
        self.promises.write(replace(old, sync=self.storage.syncs, height=max(old.height, self.ledger.height),
                                    view=view, voted_seq=voted))

    def emit(self, to, msg) -> None:
        if self.learning is not None and isinstance(msg, _HELD) and msg.replica == self.index:
            self.storage_stats["held"] += 1
            return
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
