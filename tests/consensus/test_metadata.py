"""Proposal metadata and its injected check (docs/design.md, "Cross-chain reads"):
ACCEPT votes, WAIT holds the PrePrepare without a vote until the check
flips, REJECT drops it, the digest covers the metadata, and a primary whose
metadata never passes is replaced by a view change."""
from __future__ import annotations

from consensus import events as ev
from consensus import messages as m
from consensus.metadata import ACCEPT, WAIT, reject

from tests.consensus.harness import Cluster, request
from tests.consensus.test_replica import FAST, assert_no_equivocation


def _prepares_from_backups(c: Cluster) -> list[m.Prepare]:
    return [msg for frm, msg in c.sent if isinstance(msg, m.Prepare) and frm != 0]


def test_metadata_accept_path_commits_the_primarys_metadata_on_every_replica() -> None:
    seen: list[bytes] = []

    def check(metadata: bytes):
        seen.append(metadata)
        return ACCEPT

    c = Cluster(4, metadata=lambda i: (lambda: b"reads:%d" % i, check), **FAST)
    c.submit(0, request(1))
    c.tick(3)
    assert [len(x) for x in c.ledgers] == [1, 1, 1, 1]
    assert {b.proposal.metadata for ledger in c.ledgers for b in ledger} == {b"reads:0"}
    assert seen == [b"reads:0"] * 3  # each backup checked it once; the primary does not check its own


def test_metadata_wait_holds_the_pre_prepare_without_a_vote_until_the_check_flips() -> None:
    ready = {"now": False}
    calls: list[int] = []

    def check(metadata: bytes):
        calls.append(1)
        return ACCEPT if ready["now"] else WAIT

    c = Cluster(4, metadata=lambda i: (lambda: b"h=7", check), request_timeout_ticks=50,
                view_change_timeout_ticks=50, view_change_timeout_max_ticks=400)
    c.submit(0, request(1))
    c.tick(5)
    assert [len(x) for x in c.ledgers] == [0, 0, 0, 0]
    assert _prepares_from_backups(c) == []  # never voted
    assert all(("pre_prepare", 1) not in c.durable[i] for i in (1, 2, 3))  # and nothing to forget
    checked = len(calls)
    c.tick(1)
    assert len(calls) == checked + 3  # every backup asks again every Tick
    ready["now"] = True
    for i in (1, 2, 3):  # the shell's nudge: no need to wait for the next Tick
        c.step(i, ev.MetadataAdvanced())
    c.deliver_all()
    assert [len(x) for x in c.ledgers] == [1, 1, 1, 1]
    assert all(r.view == 0 for r in c.replicas)
    assert_no_equivocation(c.sent)


def test_metadata_reject_drops_the_pre_prepare_and_counts_it() -> None:
    c = Cluster(4, metadata=lambda i: (lambda: b"garbage", lambda md: reject("malformed")), **FAST)
    c.submit(0, request(1))
    c.tick(1)
    assert _prepares_from_backups(c) == []
    assert all(c.replicas[i].counters.get("metadata rejected: malformed") == 1 for i in (1, 2, 3))
    assert [len(x) for x in c.ledgers] == [0, 0, 0, 0]


def test_metadata_is_covered_by_the_proposal_digest() -> None:
    base = m.Proposal(chain_id="test", seq=1, proposer=0, timestamp_ms=5, requests=(request(1),))
    with_md = m.Proposal(chain_id="test", seq=1, proposer=0, timestamp_ms=5, requests=(request(1),),
                         metadata=b"\x01")
    other_md = m.Proposal(chain_id="test", seq=1, proposer=0, timestamp_ms=5, requests=(request(1),),
                          metadata=b"\x02")
    assert len({base.digest, with_md.digest, other_md.digest}) == 3
    assert m.null_proposal("test", 1, 0).metadata == b""


def test_metadata_primary_naming_what_never_comes_is_replaced_and_the_next_primary_commits() -> None:
    """A too-eager or Byzantine primary (replica 0) names a future height: the
    backups WAIT, the request timer changes the view, primary 1 commits."""
    def propose_of(i: int):
        return lambda: b"future" if i == 0 else b"now"

    def check(metadata: bytes):
        return WAIT if metadata == b"future" else ACCEPT

    c = Cluster(4, metadata=lambda i: (propose_of(i), check), **FAST)
    c.submit(1, request(1))
    c.tick_until(lambda: all(len(x) == 1 for x in c.ledgers), 200)
    assert all(r.view >= 1 for r in c.replicas)
    block = c.ledgers[0][0]
    assert block.proposal.metadata == b"now" and block.proposal.proposer != 0
    assert block.proposal.requests == (request(1),)
    c.assert_agreement()
    assert_no_equivocation(c.sent)
