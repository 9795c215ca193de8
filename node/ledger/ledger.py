"""One chain's ledger: committed blocks, indexes, receipts, application state
and the consensus core's durable records, in one LevelDB directory.

The key layout is node/ledger/layout.py's.

Everything one block changes (B, H, h, T, R, S, V and the tip) is written in a
single write_batch(sync=True): after a crash (kill -9, power loss) a block is
either entirely there or entirely absent, and the tip never points past it.
A block is appended only if it extends the tip: its parent hash and its
certified link (docs/design.md, "Block binding").
"""
from __future__ import annotations

import os
import shutil
import time
from typing import Iterable

from consensus.block import GENESIS_PARENT, BlockHeader
from consensus.events import RestoredState, StableCheckpoint, Write
from consensus.messages import CommittedBlock, genesis_link, next_link
from node.core import codec
from node.core.receipts import DUPLICATE, Receipt, StateWrite
from node.ledger.promises import OtherGenesis, Promise, PromiseError, PromiseFile
from node.ledger import layout as L
from node.ledger.layout import state_key
from node.ledger.storage import Storage, StorageCorrupt, StorageError, from_u64, u64

# 2: META_SYNC holds the sync counter of the promise record; 3: certificates
# and headers hold the link (docs/design.md, "Block binding"); 4: proposal
# digests cover the metadata, and state versions (V) are kept (docs/design.md,
# "Cross-chain reads")
FORMAT_VERSION = 4

RESTORED_HASHES_MAX = 1024  # recent block hashes a restarted replica may vote checkpoints for

CHECKPOINT_RECORD_KEY = ("checkpoint",)
VIEW_RECORD_KEY = ("view",)
_VOTE_RECORDS = ("pre_prepare", "prepared")  # keyed (kind, seq): what this node voted on


class LedgerError(Exception):
    """The data on disk cannot be used as this chain's ledger, or a caller
    tried to write something that would break the hash chain."""


class EmptyStore(LedgerError):
    """A store without even a genesis pin, opened as an existing ledger."""


class BehindPromise(LedgerError):
    """The store holds less than this node promised: it lost fsynced writes."""


def damaged_marker(path: str) -> str:
    return f"{path}.damaged"


class Ledger:
    """One chain's ledger. `open_ledger` is the way in for a node: it checks
    the store against the node's promise record first."""

    def __init__(self, path: str, chain_id: str, genesis_hash: bytes, *, create: bool = False,
                 initial_state: Iterable[StateWrite] = ()):
        self.path = str(path)
        self.chain_id = chain_id
        self.genesis_hash = genesis_hash
        self._promises: PromiseFile | None = None
        self._db = Storage(self.path, create_if_missing=create, on_corrupt=self.mark_damaged)
        try:
            self._pin_genesis(create, initial_state)
            tip = self._db.get(L.META_TIP)
            self._height = from_u64(tip) if tip is not None else 0
            self._tip_header = self.header(self._height) if self._height else None
            if self._height and self._tip_header is None:
                raise StorageCorrupt(f"{self.path}: tip {self._height} has no header; data dir is corrupt")
            sync = self._db.get(L.META_SYNC)
            self._sync = from_u64(sync) if sync else 0
            records = self.records()
            view = records.get(VIEW_RECORD_KEY)
            self._view = view.view if view is not None else 0
            self._voted_seq = max((k[1] for k in records if k[0] in _VOTE_RECORDS), default=0)
        except BaseException:
            self._db.close()  # release LevelDB's LOCK so the operator can retry
            raise

    def _decoded(self, decode, data: bytes):
        """Stored bytes that no longer decode are damage, reported as such."""
        try:
            return decode(data)
        except Exception as exc:  # protobuf's DecodeError, CodecError, ValueError: all mean damaged bytes
            self.mark_damaged(f"a stored record does not decode ({exc})")
            raise StorageCorrupt(f"{self.path}: a stored record does not decode ({exc})") from exc

    def mark_damaged(self, detail: str) -> None:
        """Remember the damage across restarts: a supervisor restarting the
        node then gets a clear refusal with the repair, not a crash loop."""
        with open(damaged_marker(self.path), "w") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {detail}\n")
            f.flush()
            os.fsync(f.fileno())

    @property
    def promise(self) -> Promise:
        """What this ledger holds, in the promise record's terms."""
        # Vote records up to the last stable checkpoint are garbage-collected;
        # those seqs are executed, and a replica never votes at or below its
        # executed height, so the height stands in for them.
        return Promise(sync=self._sync, height=self._height, view=self._view,
                       voted_seq=max(self._voted_seq, self._height))

    def _pin_genesis(self, create: bool, initial_state: Iterable[StateWrite]) -> None:
        stored_chain = self._db.get(L.META_CHAIN)
        stored_genesis = self._db.get(L.META_GENESIS)
        if stored_chain is None and stored_genesis is None and not create:
            raise EmptyStore(f"{self.path}: the store holds no chain")
        if stored_chain is None and stored_genesis is None:
            # The genesis app state (node.contracts.genesis_state) goes in with
            # the pin: a store exists with its initial state or not at all
            # (docs/design.md, "Genesis").
            with self._db.write_batch(sync=True) as b:
                b.put(L.META_CHAIN, self.chain_id.encode())
                b.put(L.META_GENESIS, self.genesis_hash)
                b.put(L.META_FORMAT, u64(FORMAT_VERSION))
                _write_state(b, initial_state, 0)  # the state as of height 0 for cross-chain reads too
            return
        if stored_chain is None or stored_genesis is None:
            raise StorageCorrupt(f"{self.path}: genesis pin is missing or incomplete; data dir is corrupt")
        if stored_chain.decode() != self.chain_id or stored_genesis != self.genesis_hash:
            raise LedgerError(
                f"data dir {self.path} holds chain {stored_chain.decode()!r} with genesis "
                f"{stored_genesis.hex()}, config says chain {self.chain_id!r} with genesis "
                f"{self.genesis_hash.hex()}; point data_dir elsewhere or remove it"
            )
        fmt = self._db.get(L.META_FORMAT)
        if fmt is None or from_u64(fmt) != FORMAT_VERSION:
            raise LedgerError(f"{self.path}: unsupported ledger format {fmt!r}, this build reads {FORMAT_VERSION}")

    def close(self) -> None:
        self._db.close()
        if self._promises is not None:
            self._promises.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- blocks ------------------------------------------------------------

    def commit_block(
        self,
        block: CommittedBlock,
        header: BlockHeader,
        receipts: Iterable[Receipt],
        state_writes: Iterable[StateWrite],
        *,
        sync: bool = True,
    ) -> None:
        """Append the next block with everything derived from it atomically
        (one write batch). With sync=False the caller must call sync() before
        it tells anyone the block is committed (group commit)."""
        height = self._height + 1
        if header.chain_id != self.chain_id or block.proposal.chain_id != self.chain_id:
            raise LedgerError(f"block of chain {header.chain_id!r} given to ledger of {self.chain_id!r}")
        if header.height != height or block.seq != height:
            raise LedgerError(f"next block must be {height}, got header {header.height} / block {block.seq}")
        parent_hash = self._tip_header.hash if self._tip_header else GENESIS_PARENT
        if header.parent_hash != parent_hash:
            raise LedgerError(f"block {height} does not extend the tip (parent hash mismatch)")
        if (header.proposal_digest != block.proposal.digest or block.certificate.digest != block.proposal.digest
                or header.link != block.certificate.link):
            raise LedgerError(f"block {height}: header, proposal and certificate disagree")
        if block.certificate.link != next_link(self.tip_link, block.proposal.digest):
            raise LedgerError(f"block {height}: its certified link does not extend this ledger's chain "
                              f"(a block of another history)")

        with self._db.write_batch(sync=sync) as b:
            b.put(L.block_key(height), codec.encode_committed_block(block))
            b.put(L.header_key(height), codec.encode_header(header))
            b.put(L.HASH + header.hash, u64(height))
            for receipt in receipts:
                if receipt.height != height:
                    raise LedgerError(f"receipt for height {receipt.height} in block {height}")
                location = L.tx_location(height, receipt.index)
                b.put(L.receipt_key(location), codec.encode_receipt(receipt))
                if receipt.status != DUPLICATE:  # the index keeps the first occurrence
                    b.put(L.TX + receipt.tx_id, location)
            _write_state(b, state_writes, height)
            b.put(L.META_TIP, u64(height))
        self._height = height
        self._tip_header = header

    @property
    def height(self) -> int:
        """Height of the last committed block; 0 for an empty ledger."""
        return self._height

    @property
    def tip_header(self) -> BlockHeader | None:
        return self._tip_header

    @property
    def tip_link(self) -> bytes:
        """link(height): the tip's certified link, or link(0) of this genesis."""
        return self._tip_header.link if self._tip_header else genesis_link(self.chain_id, self.genesis_hash)

    def header(self, height: int) -> BlockHeader | None:
        if not 0 < height <= self._height:
            return None
        data = self._db.get(L.header_key(height))
        return self._decoded(codec.decode_header, data) if data is not None else None

    def block(self, height: int) -> CommittedBlock | None:
        if not 0 < height <= self._height:
            return None
        data = self._db.get(L.block_key(height))
        return self._decoded(codec.decode_committed_block, data) if data is not None else None

    def height_of(self, block_hash: bytes) -> int | None:
        data = self._db.get(L.HASH + block_hash)
        return from_u64(data) if data is not None else None

    def block_by_hash(self, block_hash: bytes) -> CommittedBlock | None:
        height = self.height_of(block_hash)
        return self.block(height) if height is not None else None

    def blocks(self, from_height: int, to_height: int) -> list[CommittedBlock]:
        """Committed blocks from_height..to_height inclusive, clamped to the
        tip (state transfer: FetchBlocks / ServeBlocks). The caller caps the
        range so a reply stays under message_bytes_max."""
        lo, hi = max(from_height, 1), min(to_height, self._height)
        if lo > hi:
            return []
        return [
            self._decoded(codec.decode_committed_block, v)
            for _, v in self._db.scan(L.BLOCK, start=L.block_key(lo), stop=L.block_key(hi + 1))
        ]

    # ---- transactions ------------------------------------------------------

    def has_tx(self, tx_id: bytes) -> bool:
        return self._db.get(L.TX + tx_id) is not None

    def tx_location(self, tx_id: bytes) -> tuple[int, int] | None:
        """(height, index) of the committed (first) occurrence of tx_id."""
        data = self._db.get(L.TX + tx_id)
        if data is None:
            return None
        return from_u64(data[:8]), int.from_bytes(data[8:], "big")

    def receipt(self, tx_id: bytes) -> Receipt | None:
        data = self._db.get(L.TX + tx_id)
        if data is None:
            return None
        return self._receipt_at(data)

    def receipt_at(self, height: int, index: int) -> Receipt | None:
        return self._receipt_at(L.tx_location(height, index))

    def _receipt_at(self, location: bytes) -> Receipt | None:
        data = self._db.get(L.receipt_key(location))
        return self._decoded(codec.decode_receipt, data) if data is not None else None

    def block_receipts(self, height: int) -> list[Receipt]:
        prefix = L.receipt_key(u64(height))
        return [self._decoded(codec.decode_receipt, v) for _, v in self._db.scan(prefix)]

    # ---- application state -------------------------------------------------

    def state_get(self, contract: str, key_in_contract: bytes) -> bytes | None:
        return self._db.get(state_key(contract, key_in_contract))

    def state_get_at(self, contract: str, key_in_contract: bytes, height: int) -> bytes | None:
        """The value as of block `height` (at most the tip): the latest write
        at or below it, None if there is none or it deleted the key
        (docs/design.md, "Cross-chain reads")."""
        if not 0 <= height <= self._height:
            raise LedgerError(f"{self.chain_id}: state at height {height} asked, the tip is {self._height}")
        prefix = L.version_prefix(contract, key_in_contract)
        for _, value in self._db.scan(prefix, stop=prefix + u64(height + 1), reverse=True):
            return value[1:] if value[:1] == b"\x01" else None
        return None

    def snapshot(self):
        """The store as it is now (a LevelDB snapshot): later writes do not
        show, reads verify checksums and report damage like the ledger's."""
        return self._db.snapshot()

    def state_items(self, contract: str, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        """(key, value) of one contract's state under `prefix`, in key order."""
        ns = state_key(contract, b"")
        return [(k[len(ns):], v) for k, v in self._db.scan(ns + prefix)]

    # ---- consensus durable records -------------------------------------------

    def persist_records(self, writes: Iterable[Write], sync: bool = True) -> None:
        """Apply a Ready.persist batch atomically; value None deletes the key.
        A StableCheckpoint written under ("checkpoint",) is also kept by its
        seq, so the proof of every checkpoint stays available; one written
        under ("checkpoint", seq) (a proof below the stable checkpoint, from
        state transfer) only by its seq."""
        with self._db.write_batch(sync=sync) as b:
            for w in writes:
                if w.key[0] == CHECKPOINT_RECORD_KEY[0] and len(w.key) == 2:
                    b.put(L.checkpoint_key(w.value.seq), codec.encode_record(CHECKPOINT_RECORD_KEY, w.value))
                    continue
                k = L.record_key(w.key)
                if w.value is None:
                    b.delete(k)
                    continue
                data = codec.encode_record(w.key, w.value)
                b.put(k, data)
                if w.key[0] in _VOTE_RECORDS:
                    self._voted_seq = max(self._voted_seq, w.key[1])
                elif tuple(w.key) == VIEW_RECORD_KEY:
                    self._view = max(self._view, w.value.view)
                if tuple(w.key) == CHECKPOINT_RECORD_KEY and isinstance(w.value, StableCheckpoint):
                    b.put(L.checkpoint_key(w.value.seq), data)

    apply_records = persist_records

    def sync(self) -> None:
        """Make every earlier write durable, then promise it. LevelDB appends
        all writes to one log, so one synced write fsyncs the unsynced ones
        before it; the counter it writes is what the promise record compares
        against at the next start."""
        self._db.put(L.META_SYNC, u64(self._sync + 1), sync=True)
        self._sync += 1
        if self._promises is not None:
            self._promises.write(self.promise)

    def records(self) -> dict:
        """Every durable consensus record: RecordKey -> Record."""
        out = {}
        for k, v in self._db.scan(L.RECORD):
            record_key = self._decoded(L.record_key_from, k)
            out[record_key] = self._decoded(lambda data: codec.decode_record(record_key, data), v)
        return out

    def stable_checkpoint(self, seq: int) -> StableCheckpoint | None:
        data = self._db.get(L.checkpoint_key(seq))
        return self._decoded(lambda d: codec.decode_record(CHECKPOINT_RECORD_KEY, d), data) if data is not None else None

    def stable_checkpoint_seqs(self) -> list[int]:
        return [from_u64(k[1:]) for k, _ in self._db.scan(L.CHECKPOINT)]

    def restored_state(self) -> RestoredState:
        """What Replica needs after a restart: its records plus the last
        executed block. `executed_timestamp_ms` is the tip header's timestamp:
        the tip proposal's timestamp clamped to never go back (it differs only
        when the tip is a null proposal, whose timestamp is 0)."""
        records = self.records()
        stable = records.get(CHECKPOINT_RECORD_KEY)
        first = max(stable.seq if stable else 0, self._height - RESTORED_HASHES_MAX) + 1
        return RestoredState(
            records=records,
            executed_seq=self._height,
            executed_timestamp_ms=self._tip_header.timestamp_ms if self._tip_header else 0,
            executed_link=self._tip_header.link if self._tip_header else b"",
            executed_hashes={h: self.header(h).hash for h in range(first, self._height + 1)},
        )


def _write_state(batch, writes: Iterable[StateWrite], height: int) -> None:
    """State writes of block `height` (0: the genesis app state): the current
    value and its version at that height (docs/design.md, "Cross-chain reads")."""
    for contract, key_in_contract, value in writes:
        k = state_key(contract, key_in_contract)
        if value is None:
            batch.delete(k)
        else:
            batch.put(k, value)
        version = b"\x00" if value is None else b"\x01" + value
        batch.put(L.version_prefix(contract, key_in_contract) + u64(height), version)


def repair_hint(path: str, chain_id: str) -> str:
    return (f"repair: `govchain chain repair --config node.toml --chain {chain_id} --from HOST:PORT` "
            f"(another department's client address; the node stopped) moves {path} aside and re-fetches "
            f"the chain from the other departments' nodes, each block checked against its commit certificate")


def open_ledger(path: str, chain_id: str, genesis_hash: bytes, initial_state: Iterable[StateWrite] = ()) -> Ledger:
    """Open a node's ledger for one chain and hold it to the node's promises.

    First start (no promise record, no store): create both. Afterwards the
    store is never re-created (`initial_state`, the genesis app state, is
    written only when it is created), and a store behind the promise record (lost,
    rolled back or truncated) is refused with the gap and the repair, since a
    node that forgot its votes could sign conflicting ones."""
    if os.path.exists(damaged_marker(path)):
        with open(damaged_marker(path)) as f:
            detail = f.read().strip()
        raise StorageCorrupt(f"{path} was found damaged ({detail}); " + repair_hint(path, chain_id))
    promises = PromiseFile(path, genesis_hash)
    store_exists = os.path.exists(os.path.join(path, "CURRENT"))
    if not promises.exists():
        if os.path.isdir(path) and os.listdir(path):
            if not store_exists:
                raise StorageCorrupt(f"{path} has files but no LevelDB CURRENT file: the store is damaged; "
                                     + repair_hint(path, chain_id))
            ledger = Ledger(path, chain_id, genesis_hash)  # a store without a record: adopt it (upgrade)
        else:
            ledger = Ledger(path, chain_id, genesis_hash, create=True, initial_state=initial_state)
        promises.create()
        ledger._promises = promises
        ledger.sync()
        return ledger
    try:
        promised = promises.read()
    except OtherGenesis:
        Ledger(path, chain_id, genesis_hash).close()  # the genesis pin names both chains, if it is there
        raise StorageCorrupt(f"{path}: the promise record beside it was made for another genesis; "
                             + repair_hint(path, chain_id)) from None
    except PromiseError as exc:
        raise StorageCorrupt(f"{path}: promise record unreadable ({exc}); " + repair_hint(path, chain_id)) from exc
    lost = (f"but this node promised height {promised.height} (view {promised.view}, votes to seq "
            f"{promised.voted_seq}); it will not start on a ledger that forgot them; ")
    if not store_exists:
        raise BehindPromise(f"{path}: the ledger store is missing (no LevelDB CURRENT file), "
                            + lost + repair_hint(path, chain_id))
    try:
        ledger = Ledger(path, chain_id, genesis_hash)
    except EmptyStore:
        raise BehindPromise(f"{path}: the ledger store is empty, " + lost + repair_hint(path, chain_id)) from None
    except StorageError as exc:
        raise StorageCorrupt(f"{exc}; " + repair_hint(path, chain_id)) from exc
    held = ledger.promise
    if not held.covers(promised):
        ledger.close()
        raise BehindPromise(
            f"{path}: the ledger lost writes this node had made durable and acted on: it holds height "
            f"{held.height}, view {held.view}, votes to seq {held.voted_seq}, sync {held.sync}, but the node "
            f"promised height {promised.height}, view {promised.view}, votes to seq {promised.voted_seq}, "
            f"sync {promised.sync}. It must not answer for or vote on what it forgot; "
            + repair_hint(path, chain_id))
    ledger._promises = promises
    return ledger


def open_snapshot(path: str, chain_id: str, genesis_hash: bytes, workdir: str) -> Ledger:
    """A read-only view of a store: a copy in `workdir`, so verification
    never writes to (or recovers, compacts or re-creates) the original.
    Table files are immutable in LevelDB, so they are hard-linked when the
    file system allows; the log, manifest and CURRENT are copied."""
    if not os.path.exists(os.path.join(path, "CURRENT")):
        raise StorageCorrupt(f"{path}: no LevelDB CURRENT file; not a ledger store, or a damaged one")
    copy = os.path.join(workdir, os.path.basename(os.path.normpath(path)))
    os.makedirs(copy)
    for name in os.listdir(path):
        if name == "LOCK":
            continue
        src, dst = os.path.join(path, name), os.path.join(copy, name)
        if name.endswith((".ldb", ".sst")):
            try:
                os.link(src, dst)
                continue
            except OSError:
                pass
        shutil.copy2(src, dst)
    return Ledger(copy, chain_id, genesis_hash)
