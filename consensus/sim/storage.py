"""Virtual disk for one simulated node.

Two layers, like a real page cache: `persist` lands in the volatile layer and
only a sync ("fsync") moves everything written so far to the durable layer.
A crash throws the volatile layer away. The ledger (committed blocks) is
always durable because the real node writes each block with sync=True.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from consensus import messages as m
from consensus.block import BlockHeader, make_header

_DELETED = object()  # tombstone in the volatile layer


class Storage:
    def __init__(self) -> None:
        self._durable: dict = {}
        self._volatile: dict = {}  # key -> record or _DELETED, in write order

    def write(self, writes, sync: bool) -> None:
        for w in writes:
            self._volatile[w.key] = _DELETED if w.value is None else w.value
        if sync:
            self.sync()

    def sync(self) -> None:
        for key, value in self._volatile.items():
            if value is _DELETED:
                self._durable.pop(key, None)
            else:
                self._durable[key] = value
        self._volatile.clear()

    def crash(self) -> int:
        """Lose unsynced writes; return how many were lost."""
        lost = len(self._volatile)
        self._volatile.clear()
        return lost

    def get(self, key):
        value = self._volatile.get(key, None)
        if value is _DELETED:
            return None
        return value if value is not None else self._durable.get(key)

    def durable_records(self) -> dict:
        return dict(self._durable)

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
        self.checkpoints: dict[int, m.StableCheckpoint] = {}  # seq -> proof, as node/ledger.py keeps C<seq>

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
