"""Regression tests for replica bugs the simulator found (docs/simulator.md,
"Findings"). Both are fixed in the core; these keep them fixed. The three
bugs found by the paper tests have their regression tests in
tests/consensus/test_replica.py.
"""
from __future__ import annotations

import random

from consensus import events as ev
from consensus import messages as m
from consensus.block import make_header
from consensus.config import ReplicaConfig
from consensus.replica import Replica
from consensus.signing import signable
from consensus.sim.crypto import make_keys
from consensus.sim.runner import SimOptions, Simulation


def _signed_commits(signers, view, seq, digest, link, voters=(0, 1, 2)):
    out = []
    for i in voters:
        c = m.Commit(chain_id="sim", view=view, seq=seq, digest=digest, link=link, replica=i)
        out.append(m.Commit(chain_id="sim", view=view, seq=seq, digest=digest, link=link, replica=i,
                            signature=signers[i].sign(signable(c))))
    return tuple(out)


def test_block_hash_is_independent_of_the_certificate_view():
    # F1 (unit): the same proposal certified in view 0 and in view 1 is the same block.
    signers, _ = make_keys(4, random.Random(1))
    p = m.Proposal(chain_id="sim", seq=1, proposer=0, timestamp_ms=5)
    link = m.next_link(m.genesis_link("sim", b""), p.digest)
    blocks = [m.CommittedBlock(proposal=p, certificate=m.CommitCertificate(
        chain_id="sim", view=v, seq=1, digest=p.digest, link=link,
        commits=_signed_commits(signers, v, 1, p.digest, link))) for v in (0, 1)]
    assert make_header(blocks[0], None, bytes(32)).hash == make_header(blocks[1], None, bytes(32)).hash


# Swarm seeds that commit some height in two different views on correct nodes
# (by a view change or by state transfer of a block certified in another view).
# The seed that first showed F1 was 3; the replica has changed since, so the
# test runs a few and insists at least one still exercises the situation.
MIXED_VIEW_SEEDS = (154, 170, 296, 344)


def test_replicas_agree_on_header_hash_when_committing_in_different_views():
    # F1 (swarm): `python -m consensus.sim --seed 3 --nodes 4` failed "identical-ledgers"
    # (seq 18: node 2 had a view-1 certificate, node 3 a view-0 one) while the
    # block hash covered the certificate's view.
    exercised = []
    for seed in MIXED_VIEW_SEEDS:
        sim = Simulation(SimOptions(seed=seed, nodes=4))
        res = sim.run()
        assert res.status == "ok", f"{res.detail}\nreplay: {res.replay}"
        ledgers = [nd.ledger for nd in sim.nodes if sim.correct[nd.index]]
        height = min(led.height for led in ledgers)
        for s in range(1, height + 1):
            if len({led.entries[s - 1].block.certificate.view for led in ledgers}) > 1:
                exercised.append((seed, s))
                assert len({led.entries[s - 1].header.hash for led in ledgers}) == 1
    assert exercised, f"none of seeds {MIXED_VIEW_SEEDS} commits a height in two views any more: pick others"


def test_restarted_replica_makes_checkpoint_stable_from_quorum_of_peers():
    # F2: PBFT §4.3, 2f+1 matching Checkpoints prove a checkpoint. A replica that
    # restarts with its ledger at 20, no durable stable checkpoint and (here) no
    # block hashes from its shell gets Checkpoint(16) from all three peers; it
    # once ignored them because it had lost its own digest for 16 (only
    # BlockExecuted filled it), never advanced its low watermark and, with
    # executed_seq >= stable + window, dropped every PrePrepare as "outside
    # watermarks" (seen in the swarm as a permanent stall).
    signers, verifier = make_keys(4, random.Random(1))
    cfg = ReplicaConfig(chain_id="sim", validators=4, replica=2, checkpoint_interval_blocks=4, window_blocks=8)
    r = Replica(cfg, signers[2], verifier, restored=ev.RestoredState(records={}, executed_seq=20,
                                                                         executed_link=b"l" * 32))
    digest = b"h" * 32
    for peer in (0, 1, 3):
        c = m.Checkpoint(chain_id="sim", seq=16, digest=digest, replica=peer)
        c = m.Checkpoint(chain_id="sim", seq=16, digest=digest, replica=peer, signature=signers[peer].sign(signable(c)))
        r.advance(r.step(ev.MessageReceived(message=c)))
    assert r.stable.seq == 16
    assert r.high_watermark == 24 > r.executed_seq


def test_replica_caught_up_by_state_transfer_makes_checkpoints_stable():
    # F3 (issue 7 §2): a replica that caught up by state transfer never saw
    # checkpoint 24 become stable (peers re-sent only their own vote for it,
    # and only if their proof held it; two of the proof's signers were
    # Byzantine), dropped every PrePrepare as "outside watermarks" and the
    # correct replicas cycled through views 2 to 36 without a commit.
    opts = SimOptions(seed=2077, nodes=7, overrides=dict(
        partitions=2, crashes=3, byzantine=2, behaviours=("equivocate+huge_view", "forge+replay")))
    res = Simulation(opts).run()
    assert res.status == "ok", f"{res.detail}\nreplay: {res.replay}"
