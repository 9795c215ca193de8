"""The promise record: what a node has told the world about one chain.

A small record kept apart from the chain's LevelDB (like etcd's HardState or
TigerBeetle's superblock), updated after every group fsync and before the
group's votes and acknowledgements leave the node (docs/design.md, "Storage
integrity"). At start the ledger is compared with it: a ledger behind its own
promises (a rolled-back or truncated disk, a deleted CURRENT) would make the
node deny transactions it acknowledged and sign votes that contradict the
ones it forgot, so the node refuses to start instead.

Two copies, `<chain>.promise.0` and `.1`, each a fixed-size record with a
checksum. A write goes to the copy holding the older record, so a torn write
(power loss in the middle) always leaves the previous record intact in the
other copy. The one lost promise is then one that had not yet left the node.
"""
from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

MAGIC = b"GCPR"
VERSION = 1
_BODY = struct.Struct(">4sHQQQQ32s")  # magic, version, sync, height, view, voted seq, genesis hash
_CHECKSUM_BYTES = 16
RECORD_BYTES = _BODY.size + _CHECKSUM_BYTES
COPIES = 2


class PromiseError(Exception):
    """The promise record cannot be read or does not belong to this chain."""


class OtherGenesis(PromiseError):
    """The record was made for a chain of another genesis."""


@dataclass(frozen=True)
class Promise:
    """sync: groups fsynced so far (the ledger stores the same counter in the
    same fsync); height: durable block height; view: highest view entered;
    voted_seq: every sequence number up to it is executed or has a durable
    consensus record (an accepted PrePrepare or a prepared certificate)."""

    sync: int = 0
    height: int = 0
    view: int = 0
    voted_seq: int = 0

    def covers(self, other: "Promise") -> bool:
        """True when this state keeps every promise of `other`."""
        return (self.sync >= other.sync and self.height >= other.height and self.view >= other.view
                and self.voted_seq >= other.voted_seq)


def _checksum(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=_CHECKSUM_BYTES).digest()


def encode(promise: Promise, genesis_hash: bytes) -> bytes:
    body = _BODY.pack(MAGIC, VERSION, promise.sync, promise.height, promise.view, promise.voted_seq,
                      genesis_hash)
    return body + _checksum(body)


def decode(data: bytes, genesis_hash: bytes) -> Promise | None:
    """The record in `data`, or None when the copy is torn or corrupt."""
    if len(data) != RECORD_BYTES:
        return None
    body, checksum = data[:_BODY.size], data[_BODY.size:]
    if _checksum(body) != checksum:
        return None
    magic, version, sync, height, view, voted_seq, genesis = _BODY.unpack(body)
    if magic != MAGIC or version != VERSION:
        return None
    if genesis != genesis_hash:
        raise OtherGenesis("promise record belongs to another genesis")
    return Promise(sync=sync, height=height, view=view, voted_seq=voted_seq)


class PromiseFile:
    """The two copies of one chain's promise record."""

    def __init__(self, base_path: str, genesis_hash: bytes):
        self.paths = [f"{base_path}.promise.{i}" for i in range(COPIES)]
        self._genesis_hash = genesis_hash
        self._fds: list[int] = []
        self._current: list[Promise | None] = [None] * COPIES

    def exists(self) -> bool:
        return any(os.path.exists(p) for p in self.paths)

    def read(self) -> Promise:
        """The newest intact copy. Raises PromiseError if none is intact."""
        copies = []
        for path in self.paths:
            try:
                with open(path, "rb") as f:
                    copies.append(decode(f.read(RECORD_BYTES + 1), self._genesis_hash))
            except FileNotFoundError:
                copies.append(None)
        self._current = copies
        intact = [c for c in copies if c is not None]
        if not intact:
            raise PromiseError(f"no intact copy of {self.paths[0]} or {self.paths[1]}")
        return max(intact, key=lambda p: p.sync)

    def create(self) -> None:
        """First start of a chain: both copies hold the empty promise."""
        for path in self.paths:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, encode(Promise(), self._genesis_hash))
                os.fsync(fd)
            finally:
                os.close(fd)
        self._current = [Promise()] * COPIES
        _fsync_dir(os.path.dirname(self.paths[0]) or ".")

    def open(self) -> None:
        # O_CREAT: a crash during create() may have left one copy unwritten.
        self._fds = [os.open(p, os.O_WRONLY | os.O_CREAT, 0o600) for p in self.paths]

    def write(self, promise: Promise) -> None:
        """Durably record `promise` in the copy holding the older record."""
        if not self._fds:
            self.open()
        order = [(c.sync if c is not None else -1) for c in self._current]
        i = order.index(min(order))
        os.pwrite(self._fds[i], encode(promise, self._genesis_hash), 0)
        os.fsync(self._fds[i])
        self._current[i] = promise

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


def _fsync_dir(path: str) -> None:
    """A new file's name is durable only once its directory is fsynced."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
