"""A node notices a rolled-back, truncated or corrupted store (docs/design.md,
"Storage integrity"): real LevelDB files damaged the way disks and operators
damage them (docs/testing.md A4, A5, A8)."""
from __future__ import annotations

import os
import shutil

import pytest

from consensus import events as ev
from node.ledger import promises
from node.ledger.ledger import BehindPromise, damaged_marker, open_ledger, open_snapshot
from node.ledger.promises import Promise, PromiseError, PromiseFile
from node.ledger.storage import StorageCorrupt
from tests.node.test_ledger import CHAIN, GENESIS, commit_blocks, pre_prepare


def build(path, blocks: int, *, view: int = 0):
    """A ledger with `blocks` blocks, group-committed as the node does."""
    ledger = open_ledger(path, CHAIN, GENESIS)
    for _ in range(blocks):
        commit_blocks(ledger, 1)
        ledger.sync()
    if view:
        ledger.persist_records([ev.Write(key=("view",), value=ev.ViewRecord(view=view, changing=False))],
                               sync=False)
        ledger.sync()
    return ledger


def files(path, suffix: str) -> list[str]:
    return sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(suffix))


def reopen_to_tables(path) -> None:
    """LevelDB replays its log into a table file when it opens."""
    open_ledger(path, CHAIN, GENESIS).close()


# ---- the promise record ----------------------------------------------------

def test_promise_record_survives_a_torn_write_of_either_copy(tmp_path):
    record = PromiseFile(str(tmp_path / "c"), GENESIS)
    record.create()
    record.write(Promise(sync=1, height=1))
    record.write(Promise(sync=2, height=2, view=1, voted_seq=3))
    record.close()
    assert record.read() == Promise(sync=2, height=2, view=1, voted_seq=3)
    newest = max(record.paths, key=lambda p: promises.decode(open(p, "rb").read(), GENESIS).sync)
    with open(newest, "r+b") as f:  # power lost in the middle of the newest write
        f.seek(10)
        f.write(b"\xff\xff\xff")
    assert record.read() == Promise(sync=1, height=1)
    for path in record.paths:
        with open(path, "wb") as f:
            f.write(b"garbage")
    with pytest.raises(PromiseError, match="no intact copy"):
        record.read()


def test_promise_record_writes_alternate_between_copies(tmp_path):
    record = PromiseFile(str(tmp_path / "c"), GENESIS)
    record.create()
    for sync in range(1, 5):
        record.write(Promise(sync=sync))
        copies = sorted(promises.decode(open(p, "rb").read(), GENESIS).sync for p in record.paths)
        assert copies == [sync - 1, sync]  # the other copy always holds the previous record
    record.close()


def test_promise_record_of_another_genesis_is_refused(tmp_path):
    PromiseFile(str(tmp_path / "c"), GENESIS).create()
    with pytest.raises(PromiseError, match="another genesis"):
        PromiseFile(str(tmp_path / "c"), b"\x01" * 32).read()


def test_ledger_keeps_its_promises_across_a_clean_restart(tmp_path):
    path = tmp_path / "chain"
    with build(path, 3, view=2) as ledger:
        promised = ledger.promise
    assert promised.height == 3 and promised.view == 2 and promised.sync == 5
    assert PromiseFile(str(path), GENESIS).read() == promised
    with open_ledger(path, CHAIN, GENESIS) as ledger:
        assert ledger.promise == promised


# ---- finding 1: a rolled-back store is refused -------------------------------

@pytest.mark.parametrize("cut", ["to zero", "by 1 KiB"])
def test_truncated_log_is_refused_with_the_gap_and_the_repair(tmp_path, cut):
    path = tmp_path / "chain"
    build(path, 40).close()  # the blocks are in the newest log, fsynced and promised
    log = files(path, ".log")[-1]
    size = os.path.getsize(log)
    assert size > 2048
    os.truncate(log, 0 if cut == "to zero" else size - 1024)
    with pytest.raises(BehindPromise) as refused:
        open_ledger(path, CHAIN, GENESIS)
    message = str(refused.value)
    assert "promised height 40" in message and "govchain chain repair" in message
    assert f"--chain {CHAIN}" in message


def test_a_store_rolled_back_to_an_older_copy_is_refused(tmp_path):
    path = tmp_path / "chain"
    build(path, 2).close()
    shutil.copytree(path, tmp_path / "backup")
    with open_ledger(path, CHAIN, GENESIS) as ledger:
        commit_blocks(ledger, 1)
        ledger.sync()
    shutil.rmtree(path)
    shutil.copytree(tmp_path / "backup", path)  # restored from yesterday's backup
    with pytest.raises(BehindPromise, match="holds height 2.*promised height 3"):
        open_ledger(path, CHAIN, GENESIS)


def test_lost_vote_records_are_refused_even_at_the_same_height(tmp_path):
    """Votes the node signed are promises too, though they change no height."""
    path = tmp_path / "chain"
    build(path, 1).close()
    shutil.copytree(path, tmp_path / "backup")
    with open_ledger(path, CHAIN, GENESIS) as ledger:
        pp = ev.Write(key=("pre_prepare", 2), value=None)
        ledger.persist_records([pp], sync=False)  # a deletion does not vote
        ledger.persist_records([ev.Write(key=("view",), value=ev.ViewRecord(view=4, changing=True))], sync=False)
        ledger.sync()
    shutil.rmtree(path)
    shutil.copytree(tmp_path / "backup", path)
    with pytest.raises(BehindPromise, match="view 0.*promised height 1, view 4"):
        open_ledger(path, CHAIN, GENESIS)


# ---- finding 3: a store is never silently re-created -------------------------

def test_deleted_current_is_refused_and_nothing_is_deleted(tmp_path):
    path = tmp_path / "chain"
    build(path, 5).close()
    reopen_to_tables(path)
    before = sorted(os.listdir(path))
    os.remove(path / "CURRENT")
    with pytest.raises(BehindPromise, match="no LevelDB CURRENT.*govchain chain repair"):
        open_ledger(path, CHAIN, GENESIS)
    assert sorted(os.listdir(path)) == sorted(n for n in before if n != "CURRENT")  # tables kept


def test_wiped_store_is_refused(tmp_path):
    path = tmp_path / "chain"
    build(path, 2).close()
    shutil.rmtree(path)
    with pytest.raises(BehindPromise, match="store is missing"):
        open_ledger(path, CHAIN, GENESIS)
    assert not path.exists()


def test_missing_manifest_names_the_repair(tmp_path):
    path = tmp_path / "chain"
    build(path, 2).close()
    for manifest in files(path, ""):
        if os.path.basename(manifest).startswith("MANIFEST-"):
            os.remove(manifest)
    with pytest.raises(StorageCorrupt, match="govchain chain repair"):
        open_ledger(path, CHAIN, GENESIS)


def test_files_without_current_and_without_promises_are_not_a_new_store(tmp_path):
    path = tmp_path / "chain"
    path.mkdir()
    (path / "000005.ldb").write_bytes(b"old table")
    with pytest.raises(StorageCorrupt, match="no LevelDB CURRENT"):
        open_ledger(path, CHAIN, GENESIS)
    assert (path / "000005.ldb").read_bytes() == b"old table"


# ---- finding 4: bit flips are detected, remembered, never served -------------

def test_bit_flip_in_a_table_is_detected_and_remembered(tmp_path):
    path = tmp_path / "chain"
    build(path, 30).close()
    reopen_to_tables(path)
    table = files(path, ".ldb")[-1]
    data = bytearray(open(table, "rb").read())
    for i in range(100, len(data) // 2, 97):  # flips across the data blocks
        data[i] ^= 0x01
    open(table, "wb").write(bytes(data))
    ledger = open_ledger(path, CHAIN, GENESIS) if _opens(path) else None
    if ledger is not None:
        with pytest.raises(StorageCorrupt):
            for height in range(1, 31):
                ledger.block(height)
                ledger.block_receipts(height)
        ledger.close()
    assert os.path.exists(damaged_marker(str(path)))
    with pytest.raises(StorageCorrupt, match="found damaged.*govchain chain repair"):
        open_ledger(path, CHAIN, GENESIS)


def _opens(path) -> bool:
    """Paranoid checks may already refuse the damaged store at open."""
    try:
        open_ledger(path, CHAIN, GENESIS).close()
        return True
    except StorageCorrupt:
        return False


# ---- verification reads a copy ------------------------------------------------

def test_snapshot_leaves_the_store_untouched(tmp_path):
    path = tmp_path / "chain"
    build(path, 3).close()
    before = {n: (path / n).read_bytes() for n in os.listdir(path)}
    work = tmp_path / "work"
    work.mkdir()
    with open_snapshot(str(path), CHAIN, GENESIS, str(work)) as snapshot:
        assert snapshot.height == 3 and snapshot.block(3) is not None
    assert {n: (path / n).read_bytes() for n in os.listdir(path)} == before


def test_snapshot_of_a_store_without_current_creates_nothing(tmp_path):
    path = tmp_path / "chain"
    build(path, 1).close()
    os.remove(path / "CURRENT")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(StorageCorrupt, match="no LevelDB CURRENT"):
        open_snapshot(str(path), CHAIN, GENESIS, str(work))
    assert not (path / "CURRENT").exists() and os.listdir(work) == []


def test_garbage_collected_votes_are_not_a_lost_promise(tmp_path):
    """A stable checkpoint deletes the vote records at or below it; the
    executed height covers those seqs (found by the crash-point sweep)."""
    path = tmp_path / "chain"
    with build(path, 4) as ledger:
        ledger.persist_records([ev.Write(key=("pre_prepare", 4), value=pre_prepare(4))], sync=False)
        ledger.sync()
        ledger.persist_records([ev.Write(key=("pre_prepare", 4), value=None)], sync=False)  # GC
        ledger.sync()
        assert ledger.promise.voted_seq == 4
    with open_ledger(path, CHAIN, GENESIS) as ledger:
        assert ledger.promise.voted_seq == 4


def test_a_lost_vote_above_the_height_is_refused(tmp_path):
    path = tmp_path / "chain"
    build(path, 2).close()
    shutil.copytree(path, tmp_path / "backup")
    with open_ledger(path, CHAIN, GENESIS) as ledger:
        ledger.persist_records([ev.Write(key=("pre_prepare", 3), value=pre_prepare(3))], sync=False)
        ledger.sync()
    shutil.rmtree(path)
    shutil.copytree(tmp_path / "backup", path)
    with pytest.raises(BehindPromise, match="votes to seq 2.*votes to seq 3"):
        open_ledger(path, CHAIN, GENESIS)
