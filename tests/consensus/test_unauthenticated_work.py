"""Issue 7 §3: no work for unauthenticated input, and one Byzantine
validator's claims do not steer a correct replica. Each test fails on the
replica as it was before the fix."""
from __future__ import annotations

import hashlib

from consensus import events as ev
from consensus import messages as m
from tests.consensus.harness import CHAIN, Cluster, request
from tests.consensus.test_replica import (
    FAST,
    committed_block,
    deliver,
    make_replica,
    prepared_cert,
    sent,
    sign,
    step,
    view_change,
)


def _ticks(rep, count: int) -> None:
    for _ in range(count):
        step(rep, ev.Tick(now_ms=0))


def _status(replica: int, executed_seq: int, view: int = 0) -> m.Status:
    return sign(m.Status(chain_id=CHAIN, view=view, executed_seq=executed_seq, replica=replica))


def test_replica_sends_its_new_view_only_for_signed_input_and_paces_it_per_peer() -> None:
    """A ViewChange from a replica in an older view is answered with our
    NewView (large) only once its signature checks out, and at most once per
    retransmit interval per peer, whether a ViewChange or a Status asks."""
    c = Cluster(4, **FAST)
    c.crash(0)
    c.submit(1, request(1))
    c.tick_until(lambda: c.replicas[1].view == 1 and not c.replicas[1].view_changing, 300)
    rep = c.replicas[1]
    behind = m.ViewChange(chain_id=CHAIN, view=0, checkpoint=m.GENESIS_CHECKPOINT, prepared=(), replica=0)
    ready = deliver(rep, behind)  # unsigned
    assert not sent(ready, m.NewView) and ready.dropped == ("bad signature",)
    ready = deliver(rep, sign(behind))
    assert [s.to for s in ready.messages if isinstance(s.message, m.NewView)] == [0]
    for asker in (sign(behind), _status(0, 0)):
        assert not sent(deliver(rep, asker), m.NewView)  # within the interval: paced
    _ticks(rep, FAST["retransmit_interval_ticks"])
    assert sent(deliver(rep, _status(0, 0)), m.NewView)


def test_replica_huge_view_claim_does_not_block_the_senders_later_view_changes() -> None:
    """A ViewChange for view 2**60 from replica 3 is kept, but must not make
    the primary of view 1 ignore replica 3's later ViewChange for view 1,
    which it needs for a quorum when replica 0 is down."""
    rep = make_replica(me=1, n=4, **FAST)
    deliver(rep, view_change(3, 2**60))
    deliver(rep, view_change(2, 1))  # f+1 ahead: join the smallest such view
    assert (rep.view, rep.view_changing) == (1, True)
    (nv,) = sent(deliver(rep, view_change(3, 1)), m.NewView)
    assert sorted(vc.replica for vc in nv.view_changes) == [1, 2, 3]
    assert (rep.view, rep.view_changing) == (1, False)


def test_replica_state_transfer_is_not_steered_by_one_huge_claim() -> None:
    """A Status claiming a huge height from one replica does not make a
    replica that still progresses fetch (that takes f+1 claims), and once it
    fetches, its attempts rotate over every replica ahead of it."""
    rep = make_replica(me=1, n=4, **FAST)
    assert not sent(deliver(rep, _status(3, 2**60)), m.FetchBlocks)
    ready = deliver(rep, _status(2, 20))  # f+1 claims of at least 20
    peers = [s.to for s in ready.messages if isinstance(s.message, m.FetchBlocks)]
    assert len(peers) == 1
    for _ in range(3):
        _ticks(rep, FAST["retransmit_interval_ticks"])  # the claimant did not answer
        ready = deliver(rep, _status(3, 2**60))
        peers += [s.to for s in ready.messages if isinstance(s.message, m.FetchBlocks)]
    assert peers in ([2, 3, 2, 3], [3, 2, 3, 2])


def _big_request(i: int, size: int = 1000) -> m.Request:
    body = b"%06d" % i + b"x" * (size - 6)
    return m.Request(id=hashlib.sha256(body).digest(), body=body)


def test_replica_pending_pool_is_bounded_in_bytes() -> None:
    """pending_requests_bytes_max bounds the request pool whatever the count
    limit; executing a block frees its requests' bytes."""
    reqs = [_big_request(i) for i in range(5)]
    size = len(reqs[0].body) + len(reqs[0].id)
    rep = make_replica(me=1, pending_requests_bytes_max=3 * size + 10)
    ready = step(rep, ev.RequestsSubmitted(requests=tuple(reqs)))
    assert (rep.pending_count, rep.pending_bytes) == (3, 3 * size)
    assert ready.dropped == ("pending requests full",) * 2
    deliver(rep, m.BlocksReply(chain_id=CHAIN, blocks=(committed_block(1, reqs[:2]),), replica=0))
    assert (rep.pending_count, rep.pending_bytes) == (1, size)


def test_replica_paces_proposal_bodies_it_answers_per_peer() -> None:
    """A FetchProposal buys a whole proposal body (up to batch_bytes_max):
    one validator asking again and again gets it once per retransmit
    interval, not once per request (before: every request answered)."""
    pc = prepared_cert(1, (request(1),))
    rep = make_replica(me=3, **FAST)
    deliver(rep, pc.pre_prepare)
    ask = sign(m.FetchProposal(chain_id=CHAIN, seq=1, digest=pc.digest, replica=2))
    assert len(sent(deliver(rep, ask), m.ProposalReply)) == 1
    for _ in range(5):
        assert not sent(deliver(rep, ask), m.ProposalReply)
    other = sign(m.FetchProposal(chain_id=CHAIN, seq=1, digest=pc.digest, replica=1))
    assert len(sent(deliver(rep, other), m.ProposalReply)) == 1  # per peer: another replica is served
    _ticks(rep, FAST["retransmit_interval_ticks"])
    assert len(sent(deliver(rep, ask), m.ProposalReply)) == 1  # a genuine retry after the interval
