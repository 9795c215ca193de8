"""Virtual disk for one simulated node.

Two layers, like a real page cache: `persist` lands in the volatile layer and
only a sync ("fsync") moves everything written so far to the durable layer.
A crash throws the volatile layer away. The ledger (committed blocks) is
always durable because the real node writes each block with sync=True.

Storage faults (docs/simulator.md, "Storage faults"), each per synced batch
with a probability drawn per seed, from the node's own RNG:
- lost: the disk acknowledged the batch but never stored it; seen only after
  a crash, when log recovery stops at the first lost batch (a lost suffix);
- torn: one record of the batch is half-written at the crash (its checksum
  fails);
- misdirected: one record lands under another key at once, damaging that
  record (the checksum covers the key) and leaving the intended place with
  the wrong record, damaged as well.
Every batch also stores the sync counter, as the real node's ledger does.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from consensus import messages as m
from consensus.block import BlockHeader, make_header

_DELETED = object()  # tombstone in the volatile layer
_ABSENT = object()  # undo value: the key did not exist
SYNC_KEY = ("sync",)  # the store's own sync counter, not a replica record
_UNDO_BATCHES = 64  # batches a crash can still lose: the disk cache's reach


class Damaged:
    """A record whose checksum fails: torn, or written under another key."""

    def __init__(self, kind: str) -> None:
        self.kind = kind


@dataclass
class StorageFaults:
    lost: float = 0.0
    torn: float = 0.0
    misdirected: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.lost or self.torn or self.misdirected)


class Storage:
    def __init__(self, faults: StorageFaults | None = None, rng: random.Random | None = None) -> None:
        self._durable: dict = {}
        self._volatile: dict = {}  # key -> record or _DELETED, in write order
        self.faults = faults or StorageFaults()
        self._rng = rng
        self.syncs = 0
        # Batches since the last crash, oldest first: [undo, lost, torn_key].
        self._batches: list[list] = []
        self.injected = {"lost": 0, "torn": 0, "misdirected": 0}  # batches hit, by kind

    def write(self, writes, sync: bool) -> None:
        for w in writes:
            self._volatile[w.key] = _DELETED if w.value is None else w.value
        if sync:
            self.sync()

    def sync(self) -> None:
        if not self._volatile:
            return
        self.syncs += 1
        self._volatile[SYNC_KEY] = self.syncs
        items = list(self._volatile.items())
        self._volatile.clear()
        if not self.faults:
            for key, value in items:
                self._put(key, value)
            return
        rng, faults, durable = self._rng, self.faults, self._durable
        undo = [(key, durable.get(key, _ABSENT)) for key, _ in items]
        victim = None
        if rng.random() < faults.misdirected:
            victims = [k for k in durable if k != items[0][0]]
            if victims:
                # The first record lands on a victim. Its own place keeps a
                # record that is not the one the store's index (LevelDB's
                # log, TigerBeetle's parent checksums) expects: damaged too.
                victim, intended, items = rng.choice(victims), items[0][0], items[1:]
        for key, value in items:
            self._put(key, value)
        if victim is not None:
            self.injected["misdirected"] += 1
            durable[victim] = durable[intended] = Damaged("misdirected")
        lost = rng.random() < faults.lost
        torn = rng.choice(items)[0] if items and rng.random() < faults.torn else None
        self._batches.append([undo, lost, torn])
        del self._batches[:-_UNDO_BATCHES]

    def _put(self, key, value) -> None:
        if value is _DELETED:
            self._durable.pop(key, None)
        else:
            self._durable[key] = value

    def crash(self) -> int:
        """Lose unsynced writes (and apply pending storage faults); return
        how many unsynced writes were lost."""
        lost = len(self._volatile)
        self._volatile.clear()
        batches, self._batches = self._batches, []
        first = next((i for i, b in enumerate(batches) if b[1]), len(batches))
        for undo, _, _ in reversed(batches[first:]):
            self.injected["lost"] += 1
            for key, value in reversed(undo):
                self._put(key, _DELETED if value is _ABSENT else value)
        for _, _, torn in batches[:first]:
            if torn is not None and torn in self._durable:
                self.injected["torn"] += 1
                self._durable[torn] = Damaged("torn")
        return lost

    def wipe(self, syncs: int) -> None:
        """`chain repair`: a fresh store whose counter continues at `syncs`."""
        self._durable = {SYNC_KEY: syncs}
        self._volatile.clear()
        self._batches = []
        self.syncs = syncs

    def get(self, key):
        value = self._volatile.get(key, None)
        if value is _DELETED:
            return None
        return value if value is not None else self._durable.get(key)

    def durable_records(self) -> dict:
        """The replica's records whose checksums hold (damaged ones skipped)."""
        return {k: v for k, v in self._durable.items() if k != SYNC_KEY and not isinstance(v, Damaged)}

    def damaged(self) -> list:
        return [k for k, v in self._durable.items() if isinstance(v, Damaged)]

    def durable_syncs(self) -> int:
        value = self._durable.get(SYNC_KEY, 0)
        return value if isinstance(value, int) else -1

    @property
    def unsynced(self) -> int:
        return len(self._volatile)


@dataclass(frozen=True)
class LedgerEntry:
    block: m.CommittedBlock
    header: BlockHeader
    executed: tuple[bytes, ...]  # request ids applied to the state
    duplicates: tuple[bytes, ...]  # ids skipped: already executed (DUPLICATE_TXID)


class Ledger:
    """Committed blocks plus a toy deterministic state machine.

    The state root is sha256(previous root + ids executed by this block). A
    request id that an earlier block already executed is skipped, mirroring
    Hyperledger Fabric's DUPLICATE_TXID validation code: after a view change
    the same request can legitimately be ordered twice.
    """

    def __init__(self) -> None:
        self.entries: list[LedgerEntry] = []
        self.executed_ids: dict[bytes, int] = {}  # request id -> height that executed it
        self.checkpoints: dict[int, m.StableCheckpoint] = {}  # seq -> proof, as node/ledger/ledger.py keeps C<seq>

    @property
    def height(self) -> int:
        return len(self.entries)

    @property
    def tip(self) -> LedgerEntry | None:
        return self.entries[-1] if self.entries else None

    def append(self, block: m.CommittedBlock) -> LedgerEntry:
        parent = self.tip
        executed, duplicates = [], []
        for r in block.proposal.requests:
            if r.id in self.executed_ids:
                duplicates.append(r.id)
            else:
                self.executed_ids[r.id] = block.seq
                executed.append(r.id)
        prev_root = parent.header.state_root if parent else bytes(32)
        state_root = hashlib.sha256(prev_root + b"".join(executed)).digest()
        header = make_header(block, parent.header if parent else None, state_root)
        entry = LedgerEntry(block, header, tuple(executed), tuple(duplicates))
        self.entries.append(entry)
        return entry

    def blocks(self, from_seq: int, to_seq: int) -> tuple[m.CommittedBlock, ...]:
        lo, hi = max(from_seq, 1), min(to_seq, self.height)
        return tuple(self.entries[s - 1].block for s in range(lo, hi + 1))

    def keep_checkpoints(self, writes) -> None:
        """Every stable-checkpoint proof the replica writes, by seq (served with the blocks)."""
        for w in writes:
            if w.key[0] == "checkpoint" and w.value is not None:
                self.checkpoints[w.value.seq] = w.value
