"""Paper-style tests of block binding (docs/design.md, "Block binding").

A Commit signs link(seq) = H(link(seq-1), digest(seq)) besides the digest
(OSDI'99 §4.2 plus a hash chain), so a commit certificate binds its block to
every block below it. A correct replica sends the Commit for seq only once
it knows the digest of every seq below; a fetched block (TOCS'02 §6.3.2)
must extend the replica's own link; and 2f+1 signatures over another history
or another checkpoint digest (OSDI'99 §4.3) stop the replica instead of being
grafted or dropped.
"""
from __future__ import annotations

from consensus import events as ev
from consensus import messages as m
from tests.consensus.harness import CHAIN, Cluster, request
from tests.consensus.test_replica import (
    FAST, accepted_backup, assert_no_equivocation, committed_block, committed_chain, deliver, link_over,
    make_replica, new_view, pre_prepare, sent, sign, step, view_change, vote, written,
)


def _checkpoint(seq: int, digest: bytes, replica: int) -> m.Checkpoint:
    return sign(m.Checkpoint(chain_id=CHAIN, seq=seq, digest=digest, replica=replica))


def _proof(seq: int, digest: bytes, signers=(0, 2, 3)) -> m.StableCheckpoint:
    return m.StableCheckpoint(seq=seq, digest=digest, proof=tuple(_checkpoint(seq, digest, r) for r in signers))


# ==== the normal case (§4.2) ===================================================================

def test_backup_commit_waits_for_the_digest_of_every_lower_seq() -> None:
    """Prepares run in parallel, but the Commit for seq 2 (which signs
    link(2), over digest(1)) waits until seq 1 is prepared; then both leave
    in seq order, each with the link over the digests below it."""
    rep, pps = accepted_backup({1: (request(1),), 2: (request(2),)}, me=1)
    ready = deliver(rep, vote(m.Prepare, pps[2], 2))
    assert ("prepared", 2) in written(ready)  # prepared: durable, as before
    assert not sent(ready, m.Commit)  # but digest(1) is not known yet
    ready = deliver(rep, vote(m.Prepare, pps[1], 2))
    commits = sent(ready, m.Commit)
    assert [(c.seq, c.link) for c in commits] == [(1, link_over(pps[1].digest)),
                                                  (2, link_over(pps[1].digest, pps[2].digest))]
    below = {1: (), 2: (pps[1].digest,)}
    for seq in (1, 2):
        for r in (0, 2):
            ready = deliver(rep, vote(m.Commit, pps[seq], r, below=below[seq]))
        (block,) = ready.committed
        assert block.certificate.link == commits[seq - 1].link
    assert rep.executed_seq == 2


def test_backup_counts_only_commits_over_its_own_link() -> None:
    """A commit certificate forms over one (digest, link): Commits for the
    same digest from replicas that hold another digest below do not count."""
    rep, pps = accepted_backup({1: (request(1),), 2: (request(2),)}, me=1)
    for seq in (1, 2):
        deliver(rep, vote(m.Prepare, pps[seq], 2))
    elsewhere = (pre_prepare(1, (request(9),)).digest,)  # another history's seq 1
    for r in (0, 2):
        assert deliver(rep, vote(m.Commit, pps[2], r, below=elsewhere)).committed == ()
    for r in (0, 2):
        deliver(rep, vote(m.Commit, pps[1], r))
    assert rep.executed_seq == 1  # seq 2 has only our own Commit over our link


def test_replica_restart_rebuilds_commits_only_over_links_it_can_rebuild() -> None:
    """TOCS'02 §5: after a restart the replica re-signs the Commits it had
    sent, with the same links (no equivocation), from its durable prepared
    certificates; commits then complete."""
    c = Cluster(4, **FAST)
    c.drop = lambda frm, to, msg: isinstance(msg, m.Commit)  # everyone prepares, nobody commits
    c.submit(0, request(1), request(2))
    c.tick(1)
    c.submit(0, request(3))
    c.tick(1)
    before = {msg.seq: msg for frm, msg in c.sent if frm == 3 and isinstance(msg, m.Commit)}
    assert sorted(before) == [1, 2]
    c.crash(3)
    c.restart(3)
    slots = c.replicas[3]._slots
    assert {s: slots[s].commits[3] for s in (1, 2)} == before  # same digests and links
    c.drop = lambda frm, to, msg: False
    c.tick_until(lambda: all(len(x) == 2 for x in c.ledgers), 50)
    assert_no_equivocation(c.sent)
    c.assert_agreement()


# ==== state transfer (TOCS'02 §6.3.2) ==========================================================

def test_backup_stops_when_a_fetched_block_is_certified_over_another_history() -> None:
    """Finding 2 of issue 8: a replica on a fork used to graft the majority's
    certified blocks onto its own history. A block whose valid certificate
    signs a link this replica cannot reproduce proves that 2f+1 validators
    hold another history below it: the replica stops (Ready.diverged) and
    executes nothing more."""
    ours = committed_block(1, (request(1),))
    theirs = committed_chain((request(2),), (request(3),))
    rep = make_replica(me=3)
    assert [b.seq for b in deliver(rep, m.BlocksReply(chain_id=CHAIN, blocks=(ours,), replica=0)).committed] == [1]
    ready = deliver(rep, m.BlocksReply(chain_id=CHAIN, blocks=(theirs[1],), replica=0))
    assert ready.committed == () and rep.executed_seq == 1
    assert "another history" in ready.diverged and rep.diverged == ready.diverged
    ours2 = committed_block(2, (request(3),), below=(ours.proposal.digest,))
    assert not step(rep, ev.MessageReceived(message=m.BlocksReply(chain_id=CHAIN, blocks=(ours2,), replica=0)))
    assert not step(rep, ev.Tick(now_ms=10))  # it takes no further part
    assert rep.executed_seq == 1


def test_backup_drops_a_block_over_another_link_without_a_valid_certificate() -> None:
    """Only 2f+1 valid signatures prove another history: a block over another
    link signed by 2f replicas (one may be faulty) is dropped, not believed."""
    ours = committed_block(1, (request(1),))
    theirs = committed_chain((request(2),), (request(3),), signers=(0, 2))
    rep = make_replica(me=3)
    deliver(rep, m.BlocksReply(chain_id=CHAIN, blocks=(ours,), replica=0))
    ready = deliver(rep, m.BlocksReply(chain_id=CHAIN, blocks=(theirs[1],), replica=0))
    assert ready.dropped == ("block with invalid certificate",) and not ready.diverged
    ours2 = committed_block(2, (request(3),), below=(ours.proposal.digest,))
    assert [b.seq for b in deliver(rep, m.BlocksReply(chain_id=CHAIN, blocks=(ours2,), replica=0)).committed] == [2]


def test_replica_rebuilt_by_state_transfer_keeps_the_stable_checkpoint_proofs_its_peers_hold() -> None:
    """Finding 5 of issue 8 (40 proofs against 108): peers garbage-collect
    the votes of stable checkpoints, so a replica that fetched those blocks
    could never prove them stable. A BlocksReply carries the proofs; the
    fetcher checks each against the block hash it computed and keeps it."""
    K = 4
    c = Cluster(4, checkpoint_interval_blocks=K, window_blocks=2 * K, batch_txs_max=1, **FAST)
    c.crash(3)
    for i in range(3 * K):
        c.submit(0, request(i))
        c.tick(2)
    assert len(c.ledgers[0]) == 3 * K and sorted(c.proofs[0]) == [K, 2 * K, 3 * K]
    c.restart(3)  # it never saw a checkpoint vote of these
    c.tick_until(lambda: len(c.ledgers[3]) == 3 * K and c.replicas[3].stable.seq == 3 * K)
    assert sorted(c.proofs[3]) == sorted(c.proofs[0])
    for seq, proof in c.proofs[3].items():
        assert proof.digest == c.headers[3][seq - 1].hash == c.proofs[0][seq].digest
    assert not c.diverged


def test_backup_stops_when_a_fetched_checkpoint_proof_signs_another_block_hash() -> None:
    """A valid proof (2f+1 Checkpoints) over another hash than the one this
    replica computed for the fetched block: its execution or state differs."""
    blocks = committed_chain(*[(request(i),) for i in range(4)])
    rep = make_replica(me=1, checkpoint_interval_blocks=4, window_blocks=8)
    reply = m.BlocksReply(chain_id=CHAIN, blocks=tuple(blocks), checkpoints=(_proof(4, b"\x0a" * 32),), replica=0)
    assert len(deliver(rep, reply).committed) == 4
    ready = step(rep, ev.BlockExecuted(seq=4, block_hash=b"\x0b" * 32))
    assert "DATA_LOSS" in ready.diverged and rep.stable.seq == 0


def test_backup_keeps_a_fetched_checkpoint_proof_that_signs_its_block_hash() -> None:
    blocks = committed_chain(*[(request(i),) for i in range(4)])
    rep = make_replica(me=1, checkpoint_interval_blocks=4, window_blocks=8)
    proof = _proof(4, b"\x0a" * 32)
    deliver(rep, m.BlocksReply(chain_id=CHAIN, blocks=tuple(blocks), checkpoints=(proof,), replica=0))
    ready = step(rep, ev.BlockExecuted(seq=4, block_hash=b"\x0a" * 32))
    assert not ready.diverged and rep.stable == proof and written(ready)[("checkpoint",)] == proof


def test_backup_keeps_fetched_proofs_below_the_stable_checkpoint_a_new_view_gave_it() -> None:
    """A NewView moved this replica's stable checkpoint to 8 before it had
    the blocks; the proof for 4 that came with them is kept for the record
    (the ("checkpoint", seq) write), the one for 8 matches its stable one."""
    rep = make_replica(me=2, checkpoint_interval_blocks=4, window_blocks=8)
    h4, h8 = b"\x04" * 32, b"\x08" * 32
    deliver(rep, new_view(1, [view_change(r, 1, checkpoint=_proof(8, h8, signers=(0, 1, 3))) for r in (0, 1, 3)]))
    assert rep.stable.seq == 8 and rep.executed_seq == 0
    reply = m.BlocksReply(chain_id=CHAIN, blocks=tuple(committed_chain(*[()] * 8)),
                          checkpoints=(_proof(4, h4), _proof(8, h8)), replica=0)
    assert len(deliver(rep, reply).committed) == 8
    ready = step(rep, ev.BlockExecuted(seq=4, block_hash=h4))
    assert written(ready) == {("checkpoint", 4): _proof(4, h4)} and rep.stable.seq == 8
    ready = step(rep, ev.BlockExecuted(seq=8, block_hash=h8))
    assert not ready.diverged and ("checkpoint", 8) not in written(ready)


# ==== checkpoints (§4.3) =======================================================================

def test_backup_stops_when_2f_plus_1_checkpoints_sign_another_digest_but_not_on_f_or_f_plus_1() -> None:
    """OSDI'99 §4.3: 2f+1 matching Checkpoints prove the state at seq. When
    they prove another digest than this replica computed, its ledger or
    state is not the network's: it stops with DATA_LOSS. f or f+1 such votes
    prove nothing (f may be faulty; f+1 with ours make no quorum either)."""
    rep = make_replica(me=1, checkpoint_interval_blocks=4, window_blocks=8)
    deliver(rep, m.BlocksReply(chain_id=CHAIN, blocks=tuple(committed_chain(*[()] * 4)), replica=0))
    step(rep, ev.BlockExecuted(seq=4, block_hash=b"\x01" * 32))
    other = b"\x02" * 32
    for r in (0, 2):  # f, then f+1 votes for the other digest
        ready = deliver(rep, _checkpoint(4, other, r))
        assert not ready.diverged and not rep.diverged
    ready = deliver(rep, _checkpoint(4, other, 3))  # 2f+1
    assert ready.diverged.startswith("DATA_LOSS: stable checkpoint 4") and rep.stable.seq == 0


# ==== view changes (§4.4) ======================================================================

def test_backup_stops_when_a_new_view_proves_another_digest_for_a_checkpoint_it_executed() -> None:
    """§4.4: a NewView's ViewChanges carry stable checkpoints with 2f+1
    proofs; min-s proven over another block hash than the one this replica
    computed when it executed that block stops it, like 2f+1 Checkpoints."""
    rep = make_replica(me=2, checkpoint_interval_blocks=4, window_blocks=8)
    deliver(rep, m.BlocksReply(chain_id=CHAIN, blocks=tuple(committed_chain(*[()] * 4)), replica=0))
    step(rep, ev.BlockExecuted(seq=4, block_hash=b"\x01" * 32))
    other = _proof(4, b"\x02" * 32, signers=(0, 1, 3))
    ready = deliver(rep, new_view(1, [view_change(r, 1, checkpoint=other) for r in (0, 1, 3)]))
    assert ready.diverged.startswith("DATA_LOSS: stable checkpoint 4") and not sent(ready, m.Prepare)

def test_view_change_with_prepared_but_uncommitted_seqs_keeps_committing() -> None:
    """Liveness: seqs 1-3 prepared in view 0 (seq 1 not at replica 3) and
    nobody committed. The NewView's O set assigns every seq above the
    checkpoint, so in view 1 each replica learns every digest below each seq,
    its Commits leave in order, and new requests commit after them."""
    c = Cluster(4, batch_txs_max=1, **FAST)
    c.drop = lambda frm, to, msg: (isinstance(msg, m.Commit) and msg.view == 0) or (
        isinstance(msg, m.Prepare) and msg.seq == 1 and to == 3)
    for i in (1, 2, 3):
        c.submit(0, request(i))
    c.tick(2)
    slots = [c.replicas[i]._slots for i in range(4)]
    assert all(slots[i][s].prepared for i in (1, 2) for s in (1, 2, 3))
    assert slots[3][1].prepared is None and slots[3][2].prepared and not slots[3][2].sent_commit
    assert not any(c.ledgers)
    pps = {msg.seq: msg for frm, msg in c.sent if isinstance(msg, m.PrePrepare) and msg.view == 0}
    c.crash(0)
    c.drop = lambda frm, to, msg: False
    c.tick_until(lambda: all(len(c.ledgers[i]) == 3 for i in (1, 2, 3)), 200)
    c.submit(1, request(4))
    c.tick_until(lambda: all(len(c.ledgers[i]) == 4 for i in (1, 2, 3)), 100)
    for i in (1, 2, 3):
        assert [b.proposal.digest for b in c.ledgers[i][:3]] == [pps[s].digest for s in (1, 2, 3)]
        assert c.ledgers[i][3].proposal.requests == (request(4),) and c.ledgers[i][3].certificate.view >= 1
        assert c.ledgers[i][3].certificate.link == link_over(*(b.proposal.digest for b in c.ledgers[i]))
    c.assert_agreement()
    assert_no_equivocation(c.sent)


def test_restored_state_without_the_executed_link_is_a_shell_bug() -> None:
    from consensus.replica import MisuseError

    try:
        make_replica(me=1, restored=ev.RestoredState(executed_seq=3))
    except MisuseError:
        return
    raise AssertionError("a replica restored above the genesis needs the executed block's link")
