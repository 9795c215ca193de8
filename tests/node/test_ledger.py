"""Ledger on a real LevelDB in tmp dirs: round trips, genesis pin, consensus
records, restored state and crash durability (docs/testing.md A1/A3, S4)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from consensus import events as ev
from consensus import messages as m
from consensus.block import make_header
from node.core.receipts import Receipt
from node.ledger.execution import EMPTY_STATE_ROOT, state_root
from node.ledger.ledger import LedgerError, open_ledger

CHAIN = "test-chain"
GENESIS = hashlib.sha256(b"genesis-1").digest()
REPO = Path(__file__).resolve().parents[2]


# ---- helpers (also used by the crash child process) ------------------------

def request(n: int) -> m.Request:
    body = json.dumps({"n": n}).encode()
    return m.Request(id=hashlib.sha256(body).digest(), body=body)


def certify(proposal: m.Proposal, view: int = 0, below: bytes = b"") -> m.CommittedBlock:
    """Certified with a link that extends `below` (link(seq-1); default: the genesis link, for seq 1)."""
    seq = proposal.seq
    link = m.next_link(below or m.genesis_link(CHAIN, GENESIS), proposal.digest)
    commits = tuple(
        m.Commit(chain_id=CHAIN, view=view, seq=seq, digest=proposal.digest, link=link, replica=r,
                 signature=bytes([r]) * 64)
        for r in range(3)
    )
    cert = m.CommitCertificate(chain_id=CHAIN, view=view, seq=seq, digest=proposal.digest, link=link,
                               commits=commits)
    return m.CommittedBlock(proposal=proposal, certificate=cert)


def committed_block(seq: int, requests=(), *, view: int = 0, below: bytes = b"") -> m.CommittedBlock:
    return certify(m.Proposal(
        chain_id=CHAIN, seq=seq, proposer=seq % 4, timestamp_ms=1_000 * seq, requests=tuple(requests),
    ), view, below)


def commit_blocks(ledger, count: int, txs_per_block: int = 2) -> None:
    """Commit `count` blocks, each with txs and one kv write per tx."""
    for _ in range(count):
        seq = ledger.height + 1
        reqs = [request(seq * 100 + i) for i in range(txs_per_block)]
        block = committed_block(seq, reqs, below=ledger.tip_link)
        writes = tuple(sorted(("kv", f"k{seq}-{i}".encode(), f"v{seq}".encode()) for i in range(txs_per_block)))
        parent = ledger.tip_header
        header = make_header(block, parent, state_root(parent.state_root if parent else EMPTY_STATE_ROOT, writes))
        receipts = [
            Receipt(tx_id=r.id, height=seq, index=i, status="OK", message="", output=b"out")
            for i, r in enumerate(reqs)
        ]
        ledger.commit_block(block, header, receipts, writes)


def stable_checkpoint(seq: int) -> ev.StableCheckpoint:
    digest = hashlib.sha256(b"cp%d" % seq).digest()
    proof = tuple(
        m.Checkpoint(chain_id=CHAIN, seq=seq, digest=digest, replica=r, signature=b"s" * 64) for r in range(3)
    )
    return ev.StableCheckpoint(seq=seq, digest=digest, proof=proof)


def pre_prepare(seq: int, view: int = 0) -> m.PrePrepare:
    proposal = committed_block(seq, [request(seq)]).proposal
    return m.PrePrepare(chain_id=CHAIN, view=view, seq=seq, digest=proposal.digest, proposal=proposal,
                        replica=0, signature=b"p" * 64)


def crash_child(path: str, blocks: int) -> None:
    """Run in a subprocess: commit, persist records, then die without close()."""
    ledger = open_ledger(path, CHAIN, GENESIS)
    commit_blocks(ledger, blocks)
    ledger.persist_records([ev.Write(key=("view",), value=ev.ViewRecord(view=3, changing=True))], sync=True)
    sys.stdout.write(f"committed {ledger.height}\n")
    sys.stdout.flush()
    os._exit(0)  # like kill -9: no close, no atexit, no flush of anything buffered


# ---- tests -------------------------------------------------------------------

def test_ledger_commit_and_reopen_round_trip(tmp_path):
    path = tmp_path / "chain"
    with open_ledger(path, CHAIN, GENESIS) as ledger:
        assert ledger.height == 0 and ledger.tip_header is None and ledger.block(1) is None
        commit_blocks(ledger, 3)
        tip = ledger.tip_header
        blocks = ledger.blocks(1, 3)
        headers = [ledger.header(h) for h in (1, 2, 3)]

    with open_ledger(path, CHAIN, GENESIS) as ledger:
        assert ledger.height == 3
        assert ledger.tip_header == tip and ledger.tip_header.hash == tip.hash
        assert ledger.blocks(1, 3) == blocks == [ledger.block(h) for h in (1, 2, 3)]
        assert [ledger.header(h) for h in (1, 2, 3)] == headers
        # hash chain as stored
        assert headers[1].parent_hash == headers[0].hash and headers[2].parent_hash == headers[1].hash
        assert ledger.block_by_hash(headers[1].hash) == blocks[1]
        assert ledger.block_by_hash(b"\x00" * 32) is None
        # tx index and receipts
        tx = blocks[1].proposal.requests[1]
        assert ledger.has_tx(tx.id) and not ledger.has_tx(b"\x01" * 32)
        assert ledger.tx_location(tx.id) == (2, 1)
        assert ledger.receipt(tx.id) == Receipt(tx_id=tx.id, height=2, index=1, status="OK", output=b"out")
        assert [r.index for r in ledger.block_receipts(2)] == [0, 1]
        # state
        assert ledger.state_get("kv", b"k2-1") == b"v2"
        assert ledger.state_get("other", b"k2-1") is None
        assert [k for k, _ in ledger.state_items("kv", b"k3")] == [b"k3-0", b"k3-1"]
        # ranges clamp to the tip
        assert ledger.blocks(2, 99) == blocks[1:] and ledger.blocks(0, 1) == blocks[:1]
        assert ledger.blocks(4, 9) == []


def test_ledger_refuses_a_block_that_does_not_extend_the_tip(tmp_path):
    with open_ledger(tmp_path / "c", CHAIN, GENESIS) as ledger:
        commit_blocks(ledger, 1)
        block = committed_block(3)
        with pytest.raises(LedgerError, match="next block must be 2"):
            ledger.commit_block(block, make_header(block, ledger.tip_header, bytes(32)), [], [])
        block = committed_block(2)
        orphan = make_header(block, None, bytes(32))  # parent hash = genesis parent, not block 1
        with pytest.raises(LedgerError, match="parent hash"):
            ledger.commit_block(block, orphan, [], [])
        assert ledger.height == 1 and ledger.block(2) is None


def test_ledger_block_batch_is_all_or_nothing(tmp_path):
    path = tmp_path / "c"
    with open_ledger(path, CHAIN, GENESIS) as ledger:
        commit_blocks(ledger, 1)
        reqs = [request(1), request(2)]
        block = committed_block(2, reqs, below=ledger.tip_link)
        header = make_header(block, ledger.tip_header, bytes(32))
        receipts = [Receipt(tx_id=reqs[0].id, height=2, index=0, status="OK"),
                    Receipt(tx_id=reqs[1].id, height=7, index=1, status="OK")]  # fails mid-batch
        with pytest.raises(LedgerError, match="receipt for height 7"):
            ledger.commit_block(block, header, receipts, [("kv", b"new", b"x")])
    with open_ledger(path, CHAIN, GENESIS) as ledger:
        assert ledger.height == 1 and ledger.block(2) is None and ledger.header(2) is None
        assert not ledger.has_tx(reqs[0].id) and ledger.receipt_at(2, 0) is None
        assert ledger.state_get("kv", b"new") is None and ledger.block_by_hash(header.hash) is None


def test_ledger_genesis_mismatch_is_a_clear_error(tmp_path):
    path = tmp_path / "chain"
    open_ledger(path, CHAIN, GENESIS).close()
    other = hashlib.sha256(b"genesis-2").digest()
    with pytest.raises(LedgerError) as err:
        open_ledger(path, CHAIN, other)
    text = str(err.value)
    assert GENESIS.hex() in text and other.hex() in text and CHAIN in text
    assert "point data_dir elsewhere or remove it" in text
    with pytest.raises(LedgerError, match="holds chain 'test-chain'"):
        open_ledger(path, "another-chain", GENESIS)
    # the failed opens released LevelDB's lock: the right genesis still opens
    open_ledger(path, CHAIN, GENESIS).close()


def test_ledger_records_apply_and_delete(tmp_path):
    path = tmp_path / "chain"
    with open_ledger(path, CHAIN, GENESIS) as ledger:
        ledger.persist_records([
            ev.Write(key=("view",), value=ev.ViewRecord(view=2, changing=False)),
            ev.Write(key=("pre_prepare", 5), value=pre_prepare(5)),
            ev.Write(key=("pre_prepare", 6), value=pre_prepare(6)),
        ], sync=True)
        ledger.apply_records([
            ev.Write(key=("pre_prepare", 5), value=None),
            ev.Write(key=("view",), value=ev.ViewRecord(view=3, changing=True)),
            ev.Write(key=("checkpoint",), value=stable_checkpoint(10)),
            ev.Write(key=("pre_prepare", 99), value=None),  # deleting an absent key is fine
        ])
        ledger.persist_records([ev.Write(key=("checkpoint",), value=stable_checkpoint(20))], sync=False)
        # a proof below the stable checkpoint (state transfer) is kept by its seq only
        ledger.persist_records([ev.Write(key=("checkpoint", 5), value=stable_checkpoint(5))], sync=False)
    with open_ledger(path, CHAIN, GENESIS) as ledger:
        assert ledger.records() == {
            ("view",): ev.ViewRecord(view=3, changing=True),
            ("pre_prepare", 6): pre_prepare(6),
            ("checkpoint",): stable_checkpoint(20),
        }
        # every stable checkpoint stays available with its proof
        assert ledger.stable_checkpoint_seqs() == [5, 10, 20]
        assert ledger.stable_checkpoint(5) == stable_checkpoint(5)
        assert ledger.stable_checkpoint(10) == stable_checkpoint(10)
        assert ledger.stable_checkpoint(15) is None


def test_ledger_restored_state(tmp_path):
    with open_ledger(tmp_path / "c", CHAIN, GENESIS) as ledger:
        assert ledger.restored_state() == ev.RestoredState()
        commit_blocks(ledger, 2)
        ledger.persist_records([ev.Write(key=("view",), value=ev.ViewRecord(view=1, changing=False))])
        restored = ledger.restored_state()
        assert restored.executed_seq == 2 and restored.executed_link == ledger.header(2).link
        assert restored.executed_hashes == {1: ledger.header(1).hash, 2: ledger.header(2).hash}
        assert restored.executed_timestamp_ms == 2_000
        assert restored.records == {("view",): ev.ViewRecord(view=1, changing=False)}
        # a null proposal at the tip (timestamp 0) does not move time back
        null = certify(m.null_proposal(CHAIN, 3, 1), view=1, below=ledger.tip_link)
        header = make_header(null, ledger.tip_header, state_root(ledger.tip_header.state_root, ()))
        ledger.commit_block(null, header, [], [])
        assert ledger.restored_state().executed_timestamp_ms == 2_000


def test_ledger_committed_data_survives_kill_without_close(tmp_path):
    """The child commits with sync=True and exits with os._exit (no close):
    everything it reported committed is there when we reopen (S4)."""
    path = tmp_path / "chain"
    script = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(REPO)!r}, {str(Path(__file__).parent)!r}]
        import test_ledger
        test_ledger.crash_child({str(path)!r}, 3)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "committed 3"
    with open_ledger(path, CHAIN, GENESIS) as ledger:
        assert ledger.height == 3
        assert ledger.block(3).seq == 3 and ledger.header(3).parent_hash == ledger.header(2).hash
        assert ledger.records() == {("view",): ev.ViewRecord(view=3, changing=True)}
        assert ledger.restored_state().executed_hashes[3] == ledger.header(3).hash
        commit_blocks(ledger, 1)  # and the chain goes on from there
        assert ledger.height == 4


def _commit_writes(ledger, writes) -> None:
    seq = ledger.height + 1
    block = committed_block(seq, below=ledger.tip_link)
    parent = ledger.tip_header
    header = make_header(block, parent, state_root(parent.state_root if parent else EMPTY_STATE_ROOT, writes))
    ledger.commit_block(block, header, [], writes)


def test_ledger_state_get_at_reads_the_latest_write_at_or_below_a_height(tmp_path):
    """docs/design.md, "Cross-chain reads": state as of any height, tombstones
    included; a key that is a prefix of another keeps its own versions."""
    with open_ledger(tmp_path / "c", CHAIN, GENESIS) as ledger:
        _commit_writes(ledger, (("kv", b"a", b"1"), ("kv", b"ab", b"x")))  # 1
        _commit_writes(ledger, ())  # 2
        _commit_writes(ledger, (("kv", b"a", b"3"),))  # 3
        _commit_writes(ledger, (("kv", b"a", None), ("other", b"a", b"o")))  # 4
        _commit_writes(ledger, (("kv", b"a", b"5"),))  # 5
        got = [ledger.state_get_at("kv", b"a", h) for h in range(6)]
        assert got == [None, b"1", b"1", b"3", None, b"5"]
        assert [ledger.state_get_at("kv", b"ab", h) for h in (0, 1, 5)] == [None, b"x", b"x"]
        assert ledger.state_get_at("other", b"a", 3) is None and ledger.state_get_at("other", b"a", 4) == b"o"
        assert ledger.state_get_at("kv", b"zz", 5) is None
        with pytest.raises(LedgerError, match="tip is 5"):
            ledger.state_get_at("kv", b"a", 6)
