"""node/ledger/storage.py's LevelDB options against real LevelDB files."""
from __future__ import annotations

import os

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
