"""A thin plyvel (LevelDB) wrapper: open, prefixed keys, synced write batches.

Key layout convention (docs/design.md, Rule 5: edges are thin): a short prefix followed
by big-endian fixed-width integers, so LevelDB's bytewise order is numeric
order and a range scan over heights is a plain iterator. Nothing in here knows
what a block or a record is; that is node/ledger/ledger.py's job.
"""
from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Callable, Iterator
from typing import Protocol

import plyvel

U64_BYTES = 8
U64_MAX = (1 << 64) - 1
# LevelDB's own defaults (4 MiB memtable, Snappy) let compaction take a
# growing share of the CPU as a ledger grows: under the same load a node
# committed a third less after 200,000 transactions. Uncompressed tables
# (no Snappy at every compaction, for about 1.5 x the disk) and a larger
# memtable (fewer, larger flushes) kept it within 10 % (docs/performance.md,
# "Aging"). Each store's memtable can reach this size twice (one being
# written, one being flushed). Stores written with Snappy stay readable:
# LevelDB marks compression per block.
WRITE_BUFFER_BYTES = 16 << 20


def u64(value: int) -> bytes:
    """Big-endian unsigned 8-byte encoding: byte order == numeric order."""
    if not 0 <= value <= U64_MAX:
        raise ValueError(f"not a u64: {value}")
    return value.to_bytes(U64_BYTES, "big")


def from_u64(data: bytes) -> int:
    if len(data) != U64_BYTES:
        raise ValueError(f"u64 needs {U64_BYTES} bytes, got {len(data)}")
    return int.from_bytes(data, "big")


def key(prefix: bytes, *numbers: int, suffix: bytes = b"") -> bytes:
    """prefix + u64(n) for each number + suffix, e.g. key(b"B", height)."""
    return prefix + b"".join(u64(n) for n in numbers) + suffix


class StorageError(Exception):
    """LevelDB refused to open or use the store (missing files, a lock, I/O)."""


class StorageCorrupt(StorageError):
    """A checksum or structure check failed: what is on disk is not what was written."""


class Batch(Protocol):
    def put(self, key: bytes, value: bytes) -> None: ...
    def delete(self, key: bytes) -> None: ...


class Storage:
    """One LevelDB directory. Not shared between processes (LevelDB's LOCK)."""

    def __init__(self, path: str, *, create_if_missing: bool = False, bloom_filter_bits: int = 10,
                 on_corrupt: Callable[[str], None] = lambda detail: None):
        # The bloom filter makes point lookups of absent keys (has_tx on a new
        # transaction id: the common case) skip the disk. Paranoid checks and
        # checksums on every read: a damaged table is an error, never data.
        # create_if_missing stays off except on a chain's first start: LevelDB
        # would otherwise replace a store whose CURRENT is lost by an empty
        # one and delete the old tables (docs/design.md, "Storage integrity").
        try:
            self._db = plyvel.DB(str(path), create_if_missing=create_if_missing,
                                 bloom_filter_bits=bloom_filter_bits, paranoid_checks=True,
                                 write_buffer_size=WRITE_BUFFER_BYTES, compression=None)
        except plyvel.CorruptionError as exc:
            on_corrupt(str(exc))
            raise StorageCorrupt(f"{path}: {exc}") from exc
        except plyvel.Error as exc:
            raise StorageError(f"{path}: {exc}") from exc
        self.path = str(path)
        self.on_corrupt = on_corrupt

    @property
    def closed(self) -> bool:
        return self._db.closed

    def get(self, key: bytes) -> bytes | None:
        return _get(self._db, key, self.path, self.on_corrupt)

    def put(self, key: bytes, value: bytes, *, sync: bool = True) -> None:
        self._db.put(key, value, sync=sync)

    def delete(self, key: bytes, *, sync: bool = True) -> None:
        self._db.delete(key, sync=sync)

    @contextmanager
    def write_batch(self, *, sync: bool = True) -> Iterator[Batch]:
        """All puts/deletes inside the block land atomically when it exits,
        fsynced when `sync`; if the block raises, nothing is written."""
        with self._db.write_batch(transaction=True, sync=sync) as batch:
            yield batch

    def scan(
        self,
        prefix: bytes,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs under `prefix`, keys in [start, stop) if given
        (both include the prefix). The iterator is closed when exhausted."""
        return _scan(self._db, prefix, start, stop, reverse, self.path)

    def snapshot(self) -> "Snapshot":
        """A read-only view of the store as it is now; later writes do not show."""
        return Snapshot(self._db.snapshot(), self.path, self.on_corrupt)

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()

    def __enter__(self) -> "Storage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Snapshot:
    """A LevelDB snapshot: get and scan as on Storage, checksums verified.
    Closing the store releases it too."""

    def __init__(self, snapshot, path: str, on_corrupt: Callable[[str], None]) -> None:
        self._snapshot = snapshot
        self._path = path
        self._on_corrupt = on_corrupt

    def get(self, key: bytes) -> bytes | None:
        return _get(self._snapshot, key, self._path, self._on_corrupt)

    def scan(self, prefix: bytes, *, start: bytes | None = None, stop: bytes | None = None,
             reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return _scan(self._snapshot, prefix, start, stop, reverse, self._path)

    def close(self) -> None:
        self._snapshot.close()


def _get(reader, key: bytes, path: str, on_corrupt: Callable[[str], None]) -> bytes | None:
    """A plyvel DB's or Snapshot's get, a damaged block reported as such."""
    try:
        return reader.get(key, verify_checksums=True)
    except plyvel.CorruptionError as exc:
        on_corrupt(str(exc))
        raise StorageCorrupt(f"{path}: {exc}") from exc


def _scan(reader, prefix: bytes, start: bytes | None, stop: bytes | None, reverse: bool,
          path: str) -> Iterator[tuple[bytes, bytes]]:
    if start is None and stop is None:
        it = reader.iterator(prefix=prefix, reverse=reverse, verify_checksums=True)
    else:
        upper = stop if stop is not None else _prefix_end(prefix)
        it = reader.iterator(start=start or prefix, stop=upper, reverse=reverse, verify_checksums=True)
    with it:
        try:
            yield from it
        except plyvel.CorruptionError as exc:
            raise StorageCorrupt(f"{path}: {exc}") from exc


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix`."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])
