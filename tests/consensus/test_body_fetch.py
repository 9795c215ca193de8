"""Paper-style tests: view changes carry digests, bodies are fetched (OSDI'99 §4.4).

ViewChanges and NewViews carry PrePrepare headers, never proposal bodies, so
their size does not grow with the payload. A replica that enters a view
whose O set names a digest it has no body for asks the replicas that
certified that digest (FetchProposal), checks the body against the digest
and only then votes (consensus/replica.py, departures).
"""
from __future__ import annotations

import hashlib
from dataclasses import replace

from consensus import events as ev
from consensus import messages as m
from tests.consensus.harness import CHAIN, Cluster, request
from tests.consensus.test_replica import (
    FAST, _view1_new_view_fixture, assert_no_equivocation, committed_block, deliver, make_replica, prepared_cert,
    proposal, sent, sign, step, view_change, written,
)


def _lacking_backup(**params):
    """Replica 2 receives the NewView of view 1 without ever having seen the
    body prepared at seq 1 in view 0 (by 0, 1 and 3)."""
    pc, vcs, nv = _view1_new_view_fixture()
    rep = make_replica(me=2, **params)
    ready = deliver(rep, nv)
    return rep, pc, ready


def test_backup_without_the_body_fetches_it_from_a_certifier_before_voting() -> None:
    """It enters view 1 but sends no Prepare for a digest it cannot check;
    it asks one replica whose signature certifies the digest, and keeps the
    header durably so a restart asks again."""
    rep, pc, ready = _lacking_backup()
    assert (rep.view, rep.view_changing) == (1, False)
    assert not sent(ready, m.Prepare)
    (fetch,) = sent(ready, m.FetchProposal)
    (to,) = [s.to for s in ready.messages if isinstance(s.message, m.FetchProposal)]
    assert (fetch.seq, fetch.digest, fetch.replica) == (1, pc.digest, 2)
    assert to in (0, 1, 3)  # the view-0 primary, its Prepare signers, the ViewChange senders
    assert written(ready)[("pre_prepare", 1)] == m.PrePrepare(
        chain_id=CHAIN, view=1, seq=1, digest=pc.digest, proposal=None, replica=1)

    reply = deliver(rep, m.ProposalReply(chain_id=CHAIN, proposal=pc.pre_prepare.proposal, replica=to))
    (prep,) = sent(reply, m.Prepare)
    assert (prep.view, prep.seq, prep.digest) == (1, 1, pc.digest)
    assert written(reply)[("pre_prepare", 1)].proposal == pc.pre_prepare.proposal  # durable before the Prepare


def test_backup_rejects_a_body_that_does_not_match_the_digest() -> None:
    """A Byzantine peer answering with other bytes under the same ids, another
    proposal for the seq, or a PrePrepare in the primary's name with another
    body, gets nothing accepted; the genuine body still works afterwards."""
    rep, pc, _ = _lacking_backup()
    good = pc.pre_prepare.proposal
    swapped = replace(good, requests=(replace(good.requests[0], body=b"other bytes"),))
    other = proposal(1, (request(2),))
    forged_pp = sign(m.PrePrepare(chain_id=CHAIN, view=1, seq=1, digest=other.digest, proposal=other, replica=1))
    for bad in (m.ProposalReply(chain_id=CHAIN, proposal=swapped, replica=3),
                m.ProposalReply(chain_id=CHAIN, proposal=other, replica=3),
                m.ProposalReply(chain_id=CHAIN, proposal=replace(good, chain_id="other"), replica=3),
                forged_pp):
        ready = deliver(rep, bad)
        assert not sent(ready, m.Prepare) and ready.persist == ()
        assert ready.dropped, bad
    assert rep.counters["proposal does not match its digest"] >= 3
    assert sent(deliver(rep, m.ProposalReply(chain_id=CHAIN, proposal=good, replica=0)), m.Prepare)


def test_backup_takes_the_body_from_the_new_primarys_pre_prepare() -> None:
    """The new primary re-sends its PrePrepares with their bodies
    (retransmission): a matching one is as good as a ProposalReply."""
    rep, pc, _ = _lacking_backup()
    full = sign(m.PrePrepare(chain_id=CHAIN, view=1, seq=1, digest=pc.digest, proposal=pc.pre_prepare.proposal,
                             replica=1))
    (prep,) = sent(deliver(rep, full), m.Prepare)
    assert (prep.view, prep.digest) == (1, pc.digest)


def test_backup_retries_the_fetch_on_a_timer_rotating_the_certifiers() -> None:
    """Retransmission (the paper assumes it): a holder that is down or faulty
    only delays the body; every retransmit interval asks the next one."""
    rep, pc, ready = _lacking_backup(**FAST)
    asked = [s.to for s in ready.messages if isinstance(s.message, m.FetchProposal)]
    for t in range(3 * FAST["retransmit_interval_ticks"]):
        ready = step(rep, ev.Tick(now_ms=t))
        asked += [s.to for s in ready.messages if isinstance(s.message, m.FetchProposal)]
    assert len(asked) == 4 and set(asked) == {0, 1, 3}


def test_replica_answers_fetch_proposal_only_for_a_body_it_holds_and_signed_requests() -> None:
    """Any replica that prepared the digest can answer; a request with a bad
    signature, or for a digest it does not hold, costs no reply."""
    pc = prepared_cert(1, (request(1),))
    rep = make_replica(me=3)
    deliver(rep, pc.pre_prepare)  # accepted in view 0: it holds the body
    ask = sign(m.FetchProposal(chain_id=CHAIN, seq=1, digest=pc.digest, replica=2))
    (reply,) = sent(deliver(rep, ask), m.ProposalReply)
    assert reply.proposal == pc.pre_prepare.proposal and reply.proposal.digest == pc.digest
    assert deliver(rep, replace(ask, signature=b"\0" * 16)).messages == ()
    assert deliver(rep, sign(replace(ask, digest=b"\1" * 32))).messages == ()


def test_backup_keeps_a_body_from_an_earlier_view_and_needs_no_fetch() -> None:
    """Bodies survive view changes until their seq is garbage collected: a
    replica that accepted the PrePrepare in view 0 votes at once in view 1."""
    pc, vcs, nv = _view1_new_view_fixture()
    rep = make_replica(me=2)
    deliver(rep, pc.pre_prepare)
    deliver(rep, view_change(0, 1))  # unrelated traffic between the views
    ready = deliver(rep, nv)
    assert sent(ready, m.Prepare) and not sent(ready, m.FetchProposal)


def test_backup_restarted_while_fetching_asks_again() -> None:
    """The header is durable: a replica that crashed before the body came
    still fetches it after the restart, from any replica."""
    rep, pc, ready = _lacking_backup(**FAST)
    records = {w.key: w.value for w in ready.persist if w.value is not None}
    again = make_replica(me=2, restored=ev.RestoredState(records=records), **FAST)
    asked = []
    for t in range(FAST["retransmit_interval_ticks"]):
        asked += sent(step(again, ev.Tick(now_ms=t)), m.FetchProposal)
    assert [(f.seq, f.digest) for f in asked] == [(1, pc.digest)]
    assert sent(deliver(again, m.ProposalReply(chain_id=CHAIN, proposal=pc.pre_prepare.proposal, replica=0)),
                m.Prepare)


def test_replica_view_change_completes_when_a_backup_lacks_the_body() -> None:
    """Cluster: replica 3 never receives the PrePrepare of seq 1 (0, 1, 2
    prepare it), the primary crashes before anyone commits. In view 1 the
    three survivors need replica 3's Commit, so the view change completes only
    if 3 fetches the body. No ViewChange or NewView carries a body."""
    c = Cluster(4, **FAST)
    c.drop = lambda frm, to, msg: ((isinstance(msg, m.PrePrepare) and to == 3)
                                   or (isinstance(msg, m.Commit) and msg.view == 0))
    payload = b"x" * 50_000
    big = m.Request(id=hashlib.sha256(payload).digest(), body=payload)
    c.submit(0, big)
    c.tick(2)
    assert [c.replicas[i]._slots[1].prepared is not None for i in range(4)] == [True, True, True, False]
    c.crash(0)
    c.drop = lambda frm, to, msg: False
    c.tick_until(lambda: all(c.ledgers[i] for i in (1, 2, 3)), 200)
    for i in (1, 2, 3):
        assert c.ledgers[i][0].proposal.requests == (big,)
    assert any(isinstance(msg, m.FetchProposal) and frm == 3 for frm, msg in c.sent)
    for frm, msg in c.sent:
        if isinstance(msg, m.ViewChange):
            assert all(pc.pre_prepare.proposal is None for pc in msg.prepared)
        if isinstance(msg, m.NewView):
            assert all(pp.proposal is None for pp in msg.pre_prepares)
            assert all(pc.pre_prepare.proposal is None for vc in msg.view_changes for pc in vc.prepared)
    c.assert_agreement()
    assert_no_equivocation(c.sent)


def test_backup_state_transfer_continues_when_a_reply_is_cut_by_bytes() -> None:
    """TOCS'02 §6.3.2 with bounded messages: the shell cuts a BlocksReply at
    half of message_bytes_max (node/chain/chain_node.py), so a reply may hold fewer
    blocks than asked. The replica asks for the rest at once instead of
    waiting for the next Status (one block per status interval)."""
    rep = make_replica(me=3, in_flight_blocks_max=2)
    deliver(rep, sign(m.Status(chain_id=CHAIN, view=0, executed_seq=5, replica=1)))  # f+1 claims start it
    (ask,) = sent(deliver(rep, sign(m.Status(chain_id=CHAIN, view=0, executed_seq=5, replica=2))), m.FetchBlocks)
    assert (ask.from_seq, ask.to_seq) == (1, 5)
    reply = deliver(rep, m.BlocksReply(chain_id=CHAIN, blocks=(committed_block(1, (request(1),)),), replica=2))
    assert rep.executed_seq == 1
    (more,) = sent(reply, m.FetchBlocks)
    assert more.from_seq == 2 and more.to_seq >= 5
