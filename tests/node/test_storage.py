"""node/ledger/storage.py's LevelDB options against real LevelDB files."""
from __future__ import annotations

import os
from pathlib import Path

import plyvel

from node.ledger.storage import Storage

RECORDS = {f"k{i:05d}".encode(): os.urandom(40) + b"json-ish payload " * 8 for i in range(3000)}


def test_a_store_written_with_snappy_reads_and_compacts_under_the_current_options(tmp_path):
    """Stores created before the options changed hold Snappy tables; the node
    must read them, write beside them, and compact them into its own format."""
    path = str(tmp_path / "store")
    old = plyvel.DB(path, create_if_missing=True, compression="snappy")
    for k, v in RECORDS.items():
        old.put(k, v)
    old.compact_range()
    old.close()

    store = Storage(path)
    assert all(store.get(k) == v for k, v in RECORDS.items())
    with store.write_batch() as batch:
        for k in RECORDS:
            batch.put(k + b"-new", b"v")
    store._db.compact_range()  # rewrites every table, old and new, under the current options
    assert all(store.get(k) == v and store.get(k + b"-new") == b"v" for k, v in RECORDS.items())
    store.close()

    reopened = Storage(path)
    assert sum(1 for _ in reopened.scan(b"k")) == 2 * len(RECORDS)
    reopened.close()


def _tables(path: str) -> list[str]:
    return [os.path.join(path, n) for n in os.listdir(path) if n.endswith(".ldb")]


def test_tables_are_written_uncompressed(tmp_path):
    """No Snappy at every compaction (docs/performance.md, "Aging"): a value
    that Snappy would shrink lies in the table file byte for byte."""
    path = str(tmp_path / "store")
    value = b"the same words again and again " * 64
    store = Storage(path, create_if_missing=True)
    store.put(b"k", value)
    store._db.compact_range()
    store.close()
    assert any(value in Path(t).read_bytes() for t in _tables(path))


def test_eight_mib_of_writes_stay_in_the_memtable(tmp_path):
    """The memtable holds WRITE_BUFFER_BYTES: 8 MiB written and the store
    closed leave only the log (LevelDB's own 4 MiB would have flushed a
    table), so compaction runs less often."""
    path = str(tmp_path / "store")
    store = Storage(path, create_if_missing=True)
    chunk = os.urandom(1 << 16)
    for i in range(128):
        store.put(i.to_bytes(4, "big"), chunk, sync=False)
    store.close()  # waits for LevelDB's background work
    assert _tables(path) == []
