"""Paper-style unit tests of consensus/replica.py: one protocol rule per test.

Section references: Castro & Liskov, "Practical Byzantine Fault Tolerance",
OSDI'99 (§4.1 client, §4.2 normal case, §4.3 garbage collection, §4.4 view
changes, §4.5.2 liveness) and "Practical Byzantine Fault Tolerance and
Proactive Recovery", TOCS'02 (§4.3 normal case, §4.4 garbage collection,
§4.5 view changes, §5 recovery, §6.1.4 request batching, §6.3.2 state
transfer).

Single rules are tested on one Replica fed hand-signed messages (the keyed
hash signer of the harness); behaviour that needs several replicas uses the
harness's lock-step Cluster. Tests marked `bug` reproduce defects in
consensus/replica.py and fail until they are fixed.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus import events as ev
from consensus import messages as m
from consensus.certificates import valid_commit_certificate, valid_committed_block, valid_stable_checkpoint
from consensus.config import ReplicaConfig
from consensus.replica import MisuseError, Replica, new_view_pre_prepares
from consensus.signing import signable
from tests.consensus.harness import CHAIN, Cluster, KeyedHashSigner, KeyedHashVerifier, request

VERIFIER = KeyedHashVerifier()


# ---- helpers: one replica, hand-signed messages ----------------------------------------------

def make_config(me: int = 1, n: int = 4, **params) -> ReplicaConfig:
    return ReplicaConfig(chain_id=CHAIN, validators=n, replica=me, **params)


def make_replica(me: int = 1, n: int = 4, restored: ev.RestoredState | None = None, **params) -> Replica:
    return Replica(make_config(me, n, **params), KeyedHashSigner(me), VERIFIER, restored=restored)


def sign(msg, key: int | None = None):
    """Sign `msg` with the key of `key` (default: its claimed sender)."""
    signer = KeyedHashSigner(msg.replica if key is None else key)
    return replace(msg, signature=signer.sign(signable(msg)))


def proposal(seq: int, reqs=(), proposer: int = 0, ts: int = 0) -> m.Proposal:
    return m.Proposal(chain_id=CHAIN, seq=seq, proposer=proposer, timestamp_ms=ts, requests=tuple(reqs))


def pre_prepare(seq: int, reqs=(), *, view: int = 0, n: int = 4, sender: int | None = None, ts: int = 0,
                digest: bytes | None = None) -> m.PrePrepare:
    sender = view % n if sender is None else sender
    p = proposal(seq, reqs, sender, ts)
    return sign(m.PrePrepare(chain_id=CHAIN, view=view, seq=seq, digest=p.digest if digest is None else digest,
                             proposal=p, replica=sender))


def link_over(*digests: bytes) -> bytes:
    """link(k) over the digests of seqs 1..k (docs/design.md, "Block binding")."""
    link = m.genesis_link(CHAIN, b"")
    for digest in digests:
        link = m.next_link(link, digest)
    return link


def vote(kind, pp: m.PrePrepare, replica: int, digest: bytes | None = None, *, below=()):
    """A Prepare or Commit for pp; a Commit's link covers `below`, the digests of seqs 1..seq-1."""
    digest = pp.digest if digest is None else digest
    link = {"link": link_over(*below, digest)} if kind is m.Commit else {}
    return sign(kind(chain_id=CHAIN, view=pp.view, seq=pp.seq, digest=digest, replica=replica, **link))


def step(rep: Replica, event: ev.Event) -> ev.Ready:
    ready = rep.step(event)
    rep.advance(ready)
    return ready


def deliver(rep: Replica, msg: m.Message) -> ev.Ready:
    return step(rep, ev.MessageReceived(message=msg))


def sent(ready: ev.Ready, kind) -> list:
    return [s.message for s in ready.messages if isinstance(s.message, kind)]


def written(ready: ev.Ready) -> dict:
    return {w.key: w.value for w in ready.persist}


def prepared_cert(seq: int, reqs=(), *, view: int = 0, n: int = 4) -> m.PreparedCertificate:
    pp = pre_prepare(seq, reqs, view=view, n=n)
    f = (n - 1) // 3
    backups = [r for r in range(n) if r != pp.replica][: 2 * f]
    return m.PreparedCertificate(pre_prepare=pp, prepares=tuple(vote(m.Prepare, pp, r) for r in backups))


def view_change(replica: int, view: int, prepared=(),
                checkpoint: m.StableCheckpoint = m.GENESIS_CHECKPOINT) -> m.ViewChange:
    """Its certificates carry PrePrepare headers, as on the wire."""
    headers = tuple(replace(pc, pre_prepare=pc.pre_prepare.header()) for pc in prepared)
    return sign(m.ViewChange(chain_id=CHAIN, view=view, checkpoint=checkpoint, prepared=headers, replica=replica))


def new_view(view: int, vcs, *, n: int = 4, pre_prepares=None) -> m.NewView:
    primary = view % n
    if pre_prepares is None:
        pre_prepares = new_view_pre_prepares(make_config(primary, n), view, tuple(vcs), KeyedHashSigner(primary))[1]
    return sign(m.NewView(chain_id=CHAIN, view=view, view_changes=tuple(vcs), pre_prepares=tuple(pre_prepares),
                          replica=primary))


def committed_block(seq: int, reqs=(), *, view: int = 0, signers=(0, 1, 2), n: int = 4, below=(),
                    ts: int = 0) -> m.CommittedBlock:
    """Block seq certified by `signers`; its link covers `below`, the digests of seqs 1..seq-1."""
    p = proposal(seq, reqs, proposer=view % n, ts=ts)
    link = link_over(*below, p.digest)
    commits = tuple(sign(m.Commit(chain_id=CHAIN, view=view, seq=seq, digest=p.digest, link=link, replica=r))
                    for r in signers)
    cert = m.CommitCertificate(chain_id=CHAIN, view=view, seq=seq, digest=p.digest, link=link, commits=commits)
    return m.CommittedBlock(proposal=p, certificate=cert)


def committed_chain(*reqs, first: int = 1, below=(), **kw) -> list[m.CommittedBlock]:
    """Consecutive certified blocks from seq `first`, one per entry of `reqs`."""
    blocks, below = [], list(below)
    for seq, r in enumerate(reqs, first):
        blocks.append(committed_block(seq, r, below=below, **kw))
        below.append(blocks[-1].proposal.digest)
    return blocks


def accepted_backup(seq_reqs: dict[int, tuple] | None = None, me: int = 1, n: int = 4, **params):
    """A backup that accepted PrePrepares of view 0 for the given seqs."""
    rep = make_replica(me, n, **params)
    pps = {}
    for seq, reqs in (seq_reqs or {1: (request(1),)}).items():
        pps[seq] = pre_prepare(seq, reqs, n=n)
        ready = deliver(rep, pps[seq])
        assert sent(ready, m.Prepare), ready.dropped
    return rep, pps


def assert_no_equivocation(sent_msgs) -> None:
    """docs/testing.md S8: a replica never signs two votes for one (view, seq, phase)."""
    seen: dict[tuple, tuple[bytes, bytes]] = {}
    for frm, msg in sent_msgs:
        votes = msg.pre_prepares if isinstance(msg, m.NewView) else (msg,)
        for v in votes:
            if isinstance(v, (m.PrePrepare, m.Prepare, m.Commit)) and v.replica == frm:
                key = (frm, type(v).__name__, v.view, v.seq)
                signed = (v.digest, getattr(v, "link", b""))  # a Commit's link is signed too
                assert seen.setdefault(key, signed) == signed, f"equivocation {key}"


def ids_of(ledger) -> list[bytes]:
    return [r.id for b in ledger for r in b.proposal.requests]


FAST = dict(request_timeout_ticks=5, view_change_timeout_ticks=5, view_change_timeout_max_ticks=40,
            status_interval_ticks=5, retransmit_interval_ticks=5)


# ==== primary: sequence assignment and batching (§4.2) =========================================

def test_primary_assigns_consecutive_seqs_and_batches_by_batch_txs_max() -> None:
    """OSDI'99 §4.2 / TOCS'02 §4.3: the primary assigns consecutive sequence
    numbers; TOCS'02 §6.1.4: it batches requests, at most batch_txs_max each."""
    rep = make_replica(me=0, batch_txs_max=2, in_flight_blocks_max=8)
    reqs = [request(i) for i in range(5)]
    ready = step(rep, ev.RequestsSubmitted(requests=tuple(reqs)))
    pps = sent(ready, m.PrePrepare)
    assert [pp.seq for pp in pps] == [1, 2]  # two full batches at once
    assert [len(pp.proposal.requests) for pp in pps] == [2, 2]
    ready = step(rep, ev.Tick(now_ms=10))  # the partial batch goes out after batch_wait_ticks
    pps += sent(ready, m.PrePrepare)
    assert [pp.seq for pp in pps] == [1, 2, 3]
    assert [r for pp in pps for r in pp.proposal.requests] == reqs  # arrival order, each once
    assert all(pp.view == 0 and pp.replica == 0 and pp.digest == pp.proposal.digest for pp in pps)
    assert all(VERIFIER.verify(0, signable(pp), pp.signature) for pp in pps)


def test_primary_batches_by_batch_bytes_max() -> None:
    """TOCS'02 §6.1.4: a batch is also bounded in bytes (batch_bytes_max)."""
    rep = make_replica(me=0, batch_bytes_max=250, batch_txs_max=1000)
    reqs = [m.Request(id=bytes([i]) * 32, body=bytes([i]) * 100) for i in range(5)]
    ready = step(rep, ev.RequestsSubmitted(requests=tuple(reqs)))
    ready2 = step(rep, ev.Tick(now_ms=10))
    pps = sent(ready, m.PrePrepare) + sent(ready2, m.PrePrepare)
    sizes = [sum(len(r.body) for r in pp.proposal.requests) for pp in pps]
    assert len(pps) >= 3 and all(0 < s <= 250 for s in sizes)
    assert [pp.seq for pp in pps] == list(range(1, len(pps) + 1))
    assert [r for pp in pps for r in pp.proposal.requests] == reqs


def test_primary_batch_fits_the_batch_bytes_max_backups_enforce() -> None:
    """TOCS'02 §6.1.4. Regression: the primary once measured a batch by request bodies only
    (Replica._propose: `size + len(req.body) > cfg.batch_bytes_max`) while
    backups reject proposals whose `Proposal.size_bytes` (bodies + 32-byte ids,
    Replica._proposal_problem: "proposal too large") exceeds batch_bytes_max.
    A correct primary therefore proposes blocks every correct backup refuses;
    every new primary does the same, so the chain stalls in view changes. With
    the default 1 MiB limit this happens with ~1 KiB transactions."""
    c = Cluster(4, batch_bytes_max=100, batch_txs_max=1000, **FAST)
    reqs = [m.Request(id=bytes([i]) * 32, body=bytes([i]) * 40) for i in range(2)]
    c.submit(0, *reqs)
    c.tick(3)
    sizes = [msg.proposal.size_bytes for frm, msg in c.sent if isinstance(msg, m.PrePrepare)]
    assert sizes and max(sizes) <= 100, f"proposal sizes {sizes}; backups dropped: {c.replicas[1].counters}"
    assert sorted(ids_of(c.ledgers[1])) == sorted(r.id for r in reqs)


def test_primary_keeps_at_most_in_flight_blocks_max_outstanding() -> None:
    """OSDI'99 §4.2: the primary bounds outstanding sequence numbers (here by
    in_flight_blocks_max, inside the high watermark)."""
    rep = make_replica(me=0, batch_txs_max=1, in_flight_blocks_max=3)
    ready = step(rep, ev.RequestsSubmitted(requests=tuple(request(i) for i in range(10))))
    ready2 = step(rep, ev.Tick(now_ms=10))
    assert [pp.seq for pp in sent(ready, m.PrePrepare) + sent(ready2, m.PrePrepare)] == [1, 2, 3]


def test_primary_sequence_assignment_is_durable_before_its_pre_prepare_leaves() -> None:
    """DESIGN rule 2 / TOCS'02 §4.3: the primary's PrePrepare (its seq
    assignment) is persisted, with fsync, in the Ready that sends it."""
    rep = make_replica(me=0, batch_txs_max=1)
    ready = step(rep, ev.RequestsSubmitted(requests=(request(1),)))
    (pp,) = sent(ready, m.PrePrepare)
    assert written(ready)[("pre_prepare", pp.seq)] == pp
    assert ready.sync


# ==== backup: accepting a PrePrepare (§4.2) =====================================================

def test_backup_accepts_pre_prepare_from_primary_and_prepares_durably() -> None:
    """OSDI'99 §4.2: a backup accepts a PrePrepare signed by the view's primary,
    in its view, inside the watermarks, whose digest matches the request, and
    multicasts a matching Prepare. DESIGN rule 2: the accepted PrePrepare is
    durable (sync) in the same Ready as that Prepare."""
    rep = make_replica(me=1)
    pp = pre_prepare(1, (request(1),))
    ready = deliver(rep, pp)
    (prep,) = sent(ready, m.Prepare)
    assert (prep.view, prep.seq, prep.digest, prep.replica) == (0, 1, pp.digest, 1)
    assert VERIFIER.verify(1, signable(prep), prep.signature)
    assert written(ready)[("pre_prepare", 1)] == pp and ready.sync
    assert ready.dropped == ()


@pytest.mark.parametrize("case, reason", [
    ("not from primary", "pre-prepare not from primary"),
    ("other view", "pre-prepare for another view"),
    ("seq 0", "outside watermarks"),
    ("above high watermark", "outside watermarks"),
    ("digest mismatch", "proposal does not match pre-prepare"),
    ("bad signature", "bad signature"),
    ("signed by another replica", "bad signature"),
])
def test_backup_rejects_invalid_pre_prepare(case: str, reason: str) -> None:
    """OSDI'99 §4.2: a backup accepts a PrePrepare only if the signature is
    correct, it is in view v, from the primary of v, its digest is the
    request's digest, and h < seq <= H. Rejections are counted, never raised."""
    rep = make_replica(me=1, window_blocks=64, checkpoint_interval_blocks=16)
    good = pre_prepare(1, (request(1),))
    pp = {
        "not from primary": pre_prepare(1, (request(1),), sender=2),
        "other view": pre_prepare(1, (request(1),), view=1, sender=0),
        "seq 0": pre_prepare(0, (request(1),)),
        "above high watermark": pre_prepare(65, (request(1),)),
        "digest mismatch": sign(replace(good, digest=b"\x07" * 32)),
        "bad signature": replace(good, signature=b"\x00" * 16),
        "signed by another replica": sign(good, key=2),
    }[case]
    ready = deliver(rep, pp)
    assert sent(ready, m.Prepare) == [] and ready.persist == ()
    assert reason in ready.dropped and rep.counters[reason] == 1
    ready = deliver(rep, good)  # the slot is still free for the real PrePrepare
    assert sent(ready, m.Prepare)


def test_backup_accepts_pre_prepare_at_the_high_watermark_only() -> None:
    """OSDI'99 §4.2: h < seq <= H, H = h + window_blocks."""
    rep = make_replica(me=1, window_blocks=8, checkpoint_interval_blocks=4, in_flight_blocks_max=8)
    assert sent(deliver(rep, pre_prepare(8)), m.Prepare)
    assert not sent(deliver(rep, pre_prepare(9)), m.Prepare)
    assert rep.counters["outside watermarks"] == 1


def test_backup_rejects_conflicting_pre_prepare_for_same_view_and_seq() -> None:
    """OSDI'99 §4.2: a backup accepts a PrePrepare for (v, n) only if it has not
    accepted one for (v, n) with a different digest: the primary equivocated.
    The conflict is counted and no second Prepare is signed."""
    rep, pps = accepted_backup({1: (request(1),)})
    other = pre_prepare(1, (request(2),))
    assert other.digest != pps[1].digest
    ready = deliver(rep, other)
    assert sent(ready, m.Prepare) == [] and ready.persist == ()
    assert rep.counters["conflicting pre-prepare"] == 1
    ready = deliver(rep, pps[1])  # a retransmission of the accepted one is harmless, not a conflict
    assert sent(ready, m.Prepare) == [] and rep.counters["conflicting pre-prepare"] == 1


def test_backup_forged_conflicting_pre_prepare_is_not_blamed_on_the_primary() -> None:
    """docs/testing.md S9 / E1: only signed evidence may accuse a replica. Regression:
    Replica._on_pre_prepare counts "conflicting pre-prepare" *before* it checks
    the signature, so anyone can make a correct primary look like an
    equivocator by sending unsigned garbage for an accepted (view, seq); the
    same ordering in Replica._on_vote counts unsigned "double vote"s.
    Fix: verify the signature before comparing with the logged message."""
    rep, pps = accepted_backup({1: (request(1),)})
    forged = replace(pre_prepare(1, (request(2),)), signature=b"\x00" * 16)
    deliver(rep, forged)
    forged_prepare = replace(vote(m.Prepare, pps[1], 2), digest=b"\x09" * 32, signature=b"\x00" * 16)
    deliver(rep, vote(m.Prepare, pps[1], 2))
    deliver(rep, forged_prepare)
    assert rep.counters.get("conflicting pre-prepare", 0) == 0
    assert rep.counters.get("double vote", 0) == 0
    assert rep.counters.get("bad signature", 0) == 2


def test_backup_rejects_proposal_with_duplicate_request() -> None:
    """Exactly-once (docs/testing.md S5): a proposal that repeats a request, or
    proposes one already in flight at another seq, is refused."""
    rep, _ = accepted_backup({1: (request(1),)})
    ready = deliver(rep, pre_prepare(2, (request(1),)))  # in flight at seq 1
    assert not sent(ready, m.Prepare) and "duplicate request in proposal" in ready.dropped
    ready = deliver(rep, pre_prepare(3, (request(5), request(5))))
    assert not sent(ready, m.Prepare) and "duplicate request in proposal" in ready.dropped


# ==== prepared and committed (§4.2) ============================================================

def test_backup_prepared_needs_2f_prepares_from_distinct_replicas() -> None:
    """OSDI'99 §4.2: prepared(m, v, n, i) needs the PrePrepare plus 2f Prepares
    from different backups (its own included) that match it. With n = 7
    (f = 2): repeats of one replica's Prepare count once, a Prepare from the
    primary does not count, a Prepare for another digest does not count."""
    rep, pps = accepted_backup({1: (request(1),)}, me=1, n=7)  # own Prepare: 1 of 4
    pp = pps[1]
    for _ in range(3):
        assert not sent(deliver(rep, vote(m.Prepare, pp, 2)), m.Commit)  # 2 of 4, repeated
    assert not sent(deliver(rep, vote(m.Prepare, pp, 0)), m.Commit)  # the primary does not prepare
    assert rep.counters["prepare from primary"] == 1
    assert not sent(deliver(rep, vote(m.Prepare, pp, 3, digest=b"\x01" * 32)), m.Commit)  # mismatching
    assert not sent(deliver(rep, vote(m.Prepare, pp, 4)), m.Commit)  # 3 of 4
    ready = deliver(rep, vote(m.Prepare, pp, 5))  # 4 of 4 = 2f
    (commit,) = sent(ready, m.Commit)
    assert (commit.view, commit.seq, commit.digest, commit.replica) == (0, 1, pp.digest, 1)


def test_backup_double_vote_is_counted_once_and_not_for_both_digests() -> None:
    """OSDI'99 §4.2 / docs/testing.md D3: a replica that signs two Prepares for one
    (view, seq) is counted as a double voter and its second vote is ignored:
    it cannot help a conflicting digest towards a certificate."""
    rep, pps = accepted_backup({1: (request(1),)}, me=1, n=4)
    pp = pps[1]
    other = b"\x05" * 32
    deliver(rep, vote(m.Prepare, pp, 2, digest=other))  # 2's first vote: another digest
    ready = deliver(rep, vote(m.Prepare, pp, 2))  # 2's second vote: the primary's digest
    assert rep.counters["double vote"] == 1
    assert not sent(ready, m.Commit)  # 2 is not counted for pp's digest: only own Prepare matches
    ready = deliver(rep, vote(m.Prepare, pp, 3))
    assert sent(ready, m.Commit)  # own + 3 = 2f


def test_backup_committed_needs_2f_plus_1_matching_commits() -> None:
    """OSDI'99 §4.2: committed-local(m, v, n, i) holds when prepared holds and
    the replica has 2f+1 matching Commits from distinct replicas (its own
    included); only then is the block handed out for execution."""
    rep, pps = accepted_backup({1: (request(1),)}, me=1, n=4)
    pp = pps[1]
    assert sent(deliver(rep, vote(m.Prepare, pp, 2)), m.Commit)  # prepared: own Commit = 1 of 3
    assert deliver(rep, vote(m.Commit, pp, 2)).committed == ()  # 2 of 3
    assert deliver(rep, vote(m.Commit, pp, 2)).committed == ()  # a repeat does not count
    assert deliver(rep, vote(m.Commit, pp, 3, digest=b"\x02" * 32)).committed == ()  # mismatching
    assert rep.executed_seq == 0
    ready = deliver(rep, vote(m.Commit, pp, 0))  # 3 of 3 = 2f+1
    (block,) = ready.committed
    assert block.proposal == pp.proposal and block.seq == 1 and rep.executed_seq == 1
    assert {c.replica for c in block.certificate.commits} == {0, 1, 2}


def test_backup_commits_without_prepared_do_not_commit() -> None:
    """OSDI'99 §4.2: committed-local requires prepared; 2f+1 Commits alone are
    not enough for a replica that has not prepared the request."""
    rep, pps = accepted_backup({1: (request(1),)}, me=1, n=4)
    pp = pps[1]
    for r in (0, 2, 3):
        assert deliver(rep, vote(m.Commit, pp, r)).committed == ()
    ready = deliver(rep, vote(m.Prepare, pp, 2))  # now prepared: commits already known complete it
    assert [b.seq for b in ready.committed] == [1]


def test_replica_commit_certificate_verifies_offline_and_fails_when_tampered() -> None:
    """DESIGN data model: a commit certificate (2f+1 signed Commits) proves a
    block final to anyone holding the validator keys (OSDI'99 §4.2
    committed predicate). Tampering with any signature, signer or field, or
    dropping below 2f+1 distinct signers, breaks it."""
    rep, pps = accepted_backup({1: (request(1),)}, me=1, n=4)
    pp = pps[1]
    deliver(rep, vote(m.Prepare, pp, 2))
    deliver(rep, vote(m.Commit, pp, 2))
    (block,) = deliver(rep, vote(m.Commit, pp, 3)).committed
    cert = block.certificate
    assert valid_commit_certificate(cert, 4, KeyedHashVerifier())
    assert valid_committed_block(block, CHAIN, 4, KeyedHashVerifier())
    c0 = cert.commits[0]
    tampered = [
        replace(cert, commits=(replace(c0, signature=bytes([c0.signature[0] ^ 1]) + c0.signature[1:]),
                               *cert.commits[1:])),
        replace(cert, commits=cert.commits[:2]),  # 2f signers only
        replace(cert, commits=(c0, c0, cert.commits[1])),  # one signer twice
        replace(cert, commits=(replace(c0, replica=3), *cert.commits[1:])),  # someone else's name
        replace(cert, digest=b"\x00" * 32),
        replace(cert, seq=2),
        replace(cert, chain_id="other"),
    ]
    for bad in tampered:
        assert not valid_commit_certificate(bad, 4, KeyedHashVerifier())
    assert not valid_committed_block(replace(block, proposal=proposal(1, (request(9),))), CHAIN, 4,
                                     KeyedHashVerifier())


def test_backup_executes_in_seq_order_when_commits_complete_out_of_order() -> None:
    """OSDI'99 §4.2: a replica executes the request of seq n only after it has
    executed every request with a lower seq, even if n committed first."""
    rep, pps = accepted_backup({1: (request(1),), 2: (request(2),)}, me=1, n=4)
    below = {1: (), 2: (pps[1].digest,)}
    for seq in (2, 1):
        deliver(rep, vote(m.Prepare, pps[seq], 2))
        deliver(rep, vote(m.Commit, pps[seq], 2, below=below[seq]))
        ready = deliver(rep, vote(m.Commit, pps[seq], 3, below=below[seq]))
        if seq == 2:
            assert ready.committed == () and rep.executed_seq == 0  # 2 waits for 1
    assert [b.seq for b in ready.committed] == [1, 2]
    assert rep.executed_seq == 2


def test_backup_prepared_certificate_is_durable_before_its_commit_leaves() -> None:
    """DESIGN rule 2 / TOCS'02 §4.3: the prepared certificate is persisted
    (sync) in the same Ready as the Commit that depends on it."""
    rep, pps = accepted_backup({1: (request(1),)}, me=1, n=4)
    ready = deliver(rep, vote(m.Prepare, pps[1], 2))
    assert sent(ready, m.Commit)
    cert = written(ready)[("prepared", 1)]
    assert cert.digest == pps[1].digest and cert.view == 0 and ready.sync
    assert {p.replica for p in cert.prepares} == {1, 2}


class DurabilityCheckedCluster(Cluster):
    """Checks DESIGN rule 2 on every Ready: each vote a replica signs is backed
    by a durable record after this Ready's persist, and if that record was
    written in this Ready, the Ready is fsynced."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.checked: Counter = Counter()

    def handle(self, i: int, ready: ev.Ready) -> None:
        after = dict(self.durable[i])
        for w in ready.persist:
            if w.value is None:
                after.pop(w.key, None)
            else:
                after[w.key] = w.value
        fresh = {w.key for w in ready.persist if w.value is not None}
        for send in ready.messages:
            msg = send.message
            if msg.replica != i:
                continue
            if isinstance(msg, (m.PrePrepare, m.Prepare, m.Commit)):
                key = ("prepared" if isinstance(msg, m.Commit) else "pre_prepare", msg.seq)
                rec = after.get(key)
                assert rec is not None and (rec.view, rec.digest) == (msg.view, msg.digest), (i, msg, rec)
            elif isinstance(msg, (m.ViewChange, m.NewView)):
                key = ("view",)
                rec = after.get(key)
                assert rec is not None and rec.view == msg.view, (i, msg, rec)
                if isinstance(msg, m.NewView):
                    for pp in msg.pre_prepares:
                        assert after[("pre_prepare", pp.seq)].digest == pp.digest
                        assert ready.sync
            else:
                continue
            assert key not in fresh or ready.sync, (i, type(msg).__name__)
            self.checked[type(msg).__name__] += 1
        super().handle(i, ready)


def test_replica_durable_records_precede_every_vote_through_a_view_change() -> None:
    """DESIGN rule 2 ("never sign what you might forget"), TOCS'02 §4.3/§4.5:
    PrePrepares, Prepares, Commits, ViewChanges and NewViews each leave in a
    Ready whose persist (with sync) holds the record they depend on -- the
    accepted PrePrepare, the prepared certificate, the new view number."""
    c = DurabilityCheckedCluster(4, **FAST)
    c.submit(1, request(1))
    c.tick(3)
    c.crash(0)
    c.submit(1, request(2))
    c.tick_until(lambda: all(len(c.ledgers[i]) == 2 for i in (1, 2, 3)), 100)
    for kind in ("PrePrepare", "Prepare", "Commit", "ViewChange", "NewView"):
        assert c.checked[kind] > 0, kind
    c.assert_agreement()


# ==== checkpoints and garbage collection (§4.3) ================================================

def test_replica_checkpoint_every_k_blocks_stable_after_2f_plus_1_matching() -> None:
    """OSDI'99 §4.3 / TOCS'02 §4.4: every K = checkpoint_interval_blocks blocks
    a replica multicasts a signed Checkpoint; it becomes stable with 2f+1
    matching ones (its own included), and the log up to it is discarded --
    slots, and the durable PrePrepare/prepared records."""
    K = 4
    c = Cluster(4, checkpoint_interval_blocks=K, window_blocks=2 * K, batch_txs_max=1, **FAST)
    late = {1}  # replica 1 hears only replica 2's checkpoints for now: own + 1 = 2 < 2f+1
    c.drop = lambda frm, to, msg: isinstance(msg, m.Checkpoint) and to in late and frm != 2
    for i in range(K):
        c.submit(0, request(i))
        c.tick(2)
    assert all(len(c.ledgers[i]) == K for i in range(4))
    ckpts = [(frm, msg) for frm, msg in c.sent if isinstance(msg, m.Checkpoint)]
    assert sorted(frm for frm, _ in ckpts) == [0, 1, 2, 3] and {msg.seq for _, msg in ckpts} == {K}
    assert len({msg.digest for _, msg in ckpts}) == 1  # every replica signs the same chain digest
    r1 = c.replicas[1]
    assert r1.stable.seq == 0 and 1 in r1._slots and ("pre_prepare", 1) in c.durable[1]
    for i in (0, 2, 3):
        assert c.replicas[i].stable.seq == K
        assert not any(s <= K for s in c.replicas[i]._slots)
        assert not any(k[0] in ("pre_prepare", "prepared") and k[1] <= K for k in c.durable[i])
        assert {p.replica for p in c.replicas[i].stable.proof} >= {i} and len(c.replicas[i].stable.proof) == 3
    # A checkpoint with another digest (3 is faulty here) does not count towards stability.
    (ckpt3, ckpt0) = (next(x for f, x in ckpts if f == r) for r in (3, 0))
    c.inject(1, sign(replace(ckpt3, digest=b"\x00" * 32)))
    assert r1.stable.seq == 0
    c.inject(1, ckpt0)  # a matching one does: own + 2 + 0 = 2f+1
    assert r1.stable.seq == K and c.durable[1][("checkpoint",)].seq == K
    assert not any(k[0] in ("pre_prepare", "prepared") and k[1] <= K for k in c.durable[1])


def test_replica_log_memory_bounded_over_a_long_run() -> None:
    """OSDI'99 §4.3 / TOCS'02 §4.4: garbage collection bounds the log. Over 300
    blocks with window 8 the number of slots never exceeds the window, nor do
    durable records, checkpoint votes or request bookkeeping grow."""
    c = Cluster(4, ledger_dedup=True, checkpoint_interval_blocks=4, window_blocks=8, batch_txs_max=1,
                in_flight_blocks_max=4, **FAST)
    peak = Counter()
    i = 0
    while len(c.ledgers[0]) < 300:
        c.submit(i % 4, request(i), request(i + 1))
        i += 2
        c.tick()
        for j, r in enumerate(c.replicas):
            peak["slots"] = max(peak["slots"], len(r._slots))
            peak["durable"] = max(peak["durable"], len(c.durable[j]))
            peak["checkpoints"] = max(peak["checkpoints"], len(r._checkpoints) + len(r._own_checkpoint))
            peak["ids"] = max(peak["ids"], len(r._committed_ids) + len(r._in_flight) + r.pending_count)
            assert r.high_watermark - r.low_watermark == 8
    c.tick(3)
    assert all(len(ledger) >= 300 for ledger in c.ledgers)
    c.assert_agreement()
    assert peak["slots"] <= 8, peak
    assert peak["durable"] <= 2 * 8 + 2, peak  # pre_prepare + prepared per slot, view, checkpoint
    assert peak["checkpoints"] <= 6, peak
    assert peak["ids"] <= 40, peak
    assert min(r.stable.seq for r in c.replicas) >= 292


# ==== view changes (§4.4, §4.5.2) ==============================================================

def test_replica_view_change_after_primary_crash() -> None:
    """OSDI'99 §4.4 / TOCS'02 §4.5: when the primary fails, backups time out,
    move to view v+1 whose primary sends a NewView, and requests commit again."""
    c = Cluster(4, **FAST)
    c.submit(1, request(1))
    c.tick(3)
    assert [len(x) for x in c.ledgers] == [1, 1, 1, 1]
    c.crash(0)
    c.submit(2, request(2))
    c.tick_until(lambda: all(len(c.ledgers[i]) == 2 for i in (1, 2, 3)), 100)
    assert [(c.replicas[i].view, c.replicas[i].view_changing) for i in (1, 2, 3)] == [(1, False)] * 3
    assert c.ledgers[1][1].proposal.requests == (request(2),)
    assert c.ledgers[1][1].certificate.view == 1
    assert any(isinstance(msg, m.NewView) and frm == 1 for frm, msg in c.sent)
    c.assert_agreement()
    assert_no_equivocation(c.sent)


def test_backup_joins_view_change_after_f_plus_1_view_changes() -> None:
    """OSDI'99 §4.5.2: a replica that receives valid ViewChanges from f+1 other
    replicas for views above its own joins the smallest such view even though
    its timer has not expired; f of them are not enough."""
    rep = make_replica(me=1, n=7)  # f = 2
    assert deliver(rep, view_change(2, 5)).messages == ()
    assert deliver(rep, view_change(3, 3)).messages == ()
    assert (rep.view, rep.view_changing) == (0, False)  # f = 2 replicas ahead: not enough
    ready = deliver(rep, view_change(4, 4))  # f + 1 = 3 ahead: views {5, 3, 4}
    (vc,) = sent(ready, m.ViewChange)
    assert (rep.view, rep.view_changing) == (3, True) and vc.view == 3 and vc.replica == 1
    assert written(ready)[("view",)] == ev.ViewRecord(view=3, changing=True) and ready.sync


def test_backup_single_view_change_with_huge_view_does_not_move_it() -> None:
    """OSDI'99 §4.5.2: faulty replicas (at most f) cannot force a view change.
    One ViewChange for view 2**60 from a faulty replica leaves a correct
    replica in its view, even as its timers run and it keeps working."""
    rep = make_replica(me=1, n=4, **FAST)
    ready = deliver(rep, view_change(3, 2**60))
    assert ready.messages == () and ready.persist == ()
    for t in range(50):
        ready = step(rep, ev.Tick(now_ms=10 * t))
        assert not sent(ready, m.ViewChange)
    assert (rep.view, rep.view_changing) == (0, False)
    ready = deliver(rep, pre_prepare(1, (request(1),)))  # still serving view 0
    assert sent(ready, m.Prepare)


def test_replica_view_change_timeout_backs_off_and_is_capped() -> None:
    """OSDI'99 §4.5.2: if the timer of view v+1 expires before the NewView
    arrives, a replica moves to v+2 and waits twice as long (here T, 2T, 4T,
    ... capped at view_change_timeout_max_ticks). It moves on only after a
    quorum reached its view (replica.py's documented departure)."""
    T, MAX = 10, 50
    rep = make_replica(me=6, n=7, view_change_timeout_ticks=T, view_change_timeout_max_ticks=MAX,
                       request_timeout_ticks=1000, status_interval_ticks=1000, retransmit_interval_ticks=1000)
    for r in (1, 2, 3):  # f + 1 = 3 replicas are in view 1: join now
        deliver(rep, view_change(r, 1))
    assert (rep.view, rep.view_changing) == (1, True)
    # No quorum in view 1 yet: the timer expires but the replica stays put.
    for t in range(3 * MAX):
        step(rep, ev.Tick(now_ms=t))
    assert rep.view == 1
    deliver(rep, view_change(4, 1))  # now 2f + 1 = 5 (with itself) are in view 1
    intervals = []
    for view in range(1, 6):  # primaries 1..5 never send their NewView
        ticks = 0
        while rep.view == view:
            step(rep, ev.Tick(now_ms=0))
            ticks += 1
            assert ticks <= 2 * MAX
        intervals.append(ticks)
        assert (rep.view, rep.view_changing) == (view + 1, True)
        for r in (1, 2, 3, 4):
            deliver(rep, view_change(r, view + 1))
    # the first interval is partly spent already: the timer restarted at the last no-quorum expiry
    assert intervals[0] <= T
    assert intervals[1:] == [2 * T, 4 * T, MAX, MAX]


def _view1_new_view_fixture():
    """ViewChanges for view 1 from 0, 1 and 3, where 0 and 3 prepared
    request 1 at seq 1 in view 0, and the correct NewView of primary 1."""
    pc = prepared_cert(1, (request(1),))
    vcs = (view_change(0, 1, (pc,)), view_change(1, 1), view_change(3, 1, (pc,)))
    return pc, vcs, new_view(1, vcs)


def test_backup_accepts_new_view_whose_o_set_matches_its_view_changes() -> None:
    """OSDI'99 §4.4: a backup accepts a NewView for v+1 if it is signed by the
    new primary, carries 2f+1 valid ViewChanges, and its O set is exactly the
    one the backup recomputes; it then prepares every PrePrepare in O."""
    pc, vcs, nv = _view1_new_view_fixture()
    assert [(pp.digest, pp.proposal) for pp in nv.pre_prepares] == [(pc.digest, None)]  # headers only
    rep = make_replica(me=2)
    deliver(rep, pc.pre_prepare)  # it has the body from view 0
    ready = deliver(rep, nv)
    assert (rep.view, rep.view_changing) == (1, False)
    (prep,) = sent(ready, m.Prepare)
    assert (prep.view, prep.seq, prep.digest) == (1, 1, pc.digest)
    assert written(ready)[("view",)] == ev.ViewRecord(view=1, changing=False) and ready.sync


@pytest.mark.parametrize("tamper", ["null instead of prepared", "missing entry", "extra entry",
                                    "other digest", "view changes of other view", "too few view changes",
                                    "duplicate view change", "forged view change", "not from new primary",
                                    "body in new view", "body in view change"])
def test_backup_rejects_tampered_new_view(tamper: str) -> None:
    """OSDI'99 §4.4: a NewView whose O set does not follow from its ViewChanges,
    or whose ViewChanges are not 2f+1 valid distinct ones for v+1, or which is
    not from the primary of v+1, is rejected; the backup stays out of v+1."""
    pc, vcs, nv = _view1_new_view_fixture()
    primary_signer = KeyedHashSigner(1)
    null = replace(nv.pre_prepares[0], digest=m.null_proposal(CHAIN, 1, 1).digest)
    extra = m.PrePrepare(chain_id=CHAIN, view=1, seq=2, digest=m.null_proposal(CHAIN, 2, 1).digest,
                         proposal=None, replica=1)
    other = replace(nv.pre_prepares[0], digest=proposal(1, (request(2),), proposer=1).digest)
    with_body = replace(nv.pre_prepares[0], proposal=pc.pre_prepare.proposal)
    vc_with_body = sign(replace(vcs[0], prepared=(pc,)))
    resign = lambda pps: tuple(replace(p, signature=primary_signer.sign(signable(p))) for p in pps)  # noqa: E731
    bad = {
        "null instead of prepared": new_view(1, vcs, pre_prepares=resign([null])),
        "missing entry": new_view(1, vcs, pre_prepares=()),
        "extra entry": new_view(1, vcs, pre_prepares=resign([nv.pre_prepares[0], extra])),
        "other digest": new_view(1, vcs, pre_prepares=resign([other])),
        "view changes of other view": new_view(
            1, (view_change(0, 2, (pc,)), view_change(1, 2), view_change(3, 2, (pc,)))),
        "too few view changes": new_view(1, vcs[:2]),
        "duplicate view change": new_view(1, (vcs[0], vcs[0], vcs[1])),
        "forged view change": new_view(1, (vcs[0], vcs[1], replace(vcs[2], signature=b"\x00" * 16))),
        "not from new primary": sign(replace(nv, replica=3)),
        "body in new view": new_view(1, vcs, pre_prepares=resign([with_body])),
        "body in view change": new_view(1, (vc_with_body, vcs[1], vcs[2])),
    }[tamper]
    rep = make_replica(me=2)
    deliver(rep, pc.pre_prepare)  # it has the body from view 0
    ready = deliver(rep, bad)
    assert (rep.view, rep.view_changing) == (0, False)
    assert not sent(ready, m.Prepare) and ready.persist == ()
    if tamper != "not from new primary":
        assert ready.dropped, tamper
    assert sent(deliver(rep, nv), m.Prepare)  # the genuine NewView still works afterwards


def test_replica_prepared_request_survives_view_change() -> None:
    """OSDI'99 §4.4 / TOCS'02 §4.5: a request prepared in view v is carried by
    the ViewChanges into the new primary's O set and commits in v+1 at the
    same seq with the same digest."""
    c = Cluster(4, **FAST)
    c.drop = lambda frm, to, msg: isinstance(msg, m.Commit) and msg.view == 0  # nobody commits in view 0
    c.submit(0, request(1))
    c.tick(2)
    (pp,) = [msg for frm, msg in c.sent if isinstance(msg, m.PrePrepare)]
    assert all(c.replicas[i]._slots[1].prepared is not None for i in range(4))  # prepared everywhere
    assert not any(c.ledgers)
    c.crash(0)
    c.tick_until(lambda: all(c.ledgers[i] for i in (1, 2, 3)), 100)
    for i in (1, 2, 3):
        block = c.ledgers[i][0]
        assert (block.seq, block.proposal.digest) == (1, pp.digest)
        assert block.certificate.view >= 1
    c.assert_agreement()
    assert_no_equivocation(c.sent)


# ==== garbage and misuse (DESIGN rule 2) =======================================================

def _garbage(rep_me: int = 1):
    good = vote(m.Prepare, pre_prepare(1, (request(1),)), 2)
    return [
        (replace(good, signature=b"\x00" * 16), "bad signature"),
        (replace(good, signature=b""), "bad signature"),
        (replace(good, signature=good.signature[:-1]), "bad signature"),
        (replace(good, signature=good.signature + b"\x00"), "bad signature"),
        (sign(good, key=3), "bad signature"),  # 3 signs in 2's name
        (sign(replace(good, replica=4)), "unknown sender"),
        (sign(replace(good, replica=2**31)), "unknown sender"),
        (replace(good, replica=-1), "unknown sender"),
        (sign(replace(good, chain_id="other")), "other chain"),
        (sign(replace(good, replica=rep_me)), "from self"),
        (sign(m.Status(chain_id=CHAIN, view=0, executed_seq=5, stable_seq=0, replica=2), key=3), "bad signature"),
        (replace(sign(m.FetchBlocks(chain_id=CHAIN, from_seq=1, to_seq=3, replica=2)), to_seq=9), "bad signature"),
        (sign(m.FetchBlocks(chain_id=CHAIN, from_seq=5, to_seq=3, replica=2)), "bad fetch range"),
        (sign(m.RequestBatch(chain_id=CHAIN, requests=(request(1),), replica=2), key=0), "bad signature"),
        (m.BlocksReply(chain_id=CHAIN, blocks=(committed_block(1, signers=(0, 2)),), replica=2),
         "block with invalid certificate"),
        # a checkpoint claimed without its 2f+1 proof
        (view_change(2, 1, checkpoint=m.StableCheckpoint(seq=16, digest=b"\x01" * 32, proof=())),
         "invalid view-change"),
    ]


def test_replica_drops_and_counts_bad_signature_unknown_sender_other_chain() -> None:
    """DESIGN rule 2 / docs/testing.md E1, E2, E4: messages with a bad signature,
    from a non-member, for another chain, or otherwise invalid are dropped and
    counted; they change nothing and step() never raises."""
    rep = make_replica(me=1)
    expected = Counter()
    for msg, reason in _garbage():
        ready = deliver(rep, msg)
        assert reason in ready.dropped, (msg, ready.dropped)
        assert ready.persist == () and ready.committed == () and ready.serve == ()
        assert not sent(ready, (m.Prepare, m.Commit, m.ViewChange))
        expected[reason] += 1
    assert Counter(rep.counters) == expected
    assert (rep.view, rep.executed_seq, rep.pending_count) == (0, 0, 0)
    assert sent(deliver(rep, pre_prepare(1, (request(1),))), m.Prepare)  # still healthy


UINT64 = st.integers(min_value=0, max_value=2**64 - 1)
SMALL = st.integers(min_value=0, max_value=12)
NUM = st.one_of(SMALL, UINT64)
REPLICA = st.one_of(st.integers(min_value=0, max_value=6), st.integers(min_value=0, max_value=2**32 - 1))
DIGEST = st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40))
SIG = st.binary(max_size=20)
CHAIN_ID = st.sampled_from([CHAIN, "other", ""])
REQUEST = st.builds(m.Request, id=DIGEST, body=st.binary(max_size=20))
PROPOSAL = st.builds(m.Proposal, chain_id=CHAIN_ID, seq=NUM, proposer=REPLICA, timestamp_ms=NUM,
                     requests=st.lists(REQUEST, max_size=3).map(tuple))


def _vote_st(kind):
    link = {"link": DIGEST} if kind is m.Commit else {}
    return st.builds(kind, chain_id=CHAIN_ID, view=NUM, seq=NUM, digest=DIGEST, replica=REPLICA, signature=SIG,
                     **link)


PRE_PREPARE = st.builds(m.PrePrepare, chain_id=CHAIN_ID, view=NUM, seq=NUM, digest=DIGEST, proposal=PROPOSAL,
                        replica=REPLICA, signature=SIG)
PREPARED = st.builds(m.PreparedCertificate, pre_prepare=PRE_PREPARE,
                     prepares=st.lists(_vote_st(m.Prepare), max_size=3).map(tuple))
COMMIT_CERT = st.builds(m.CommitCertificate, chain_id=CHAIN_ID, view=NUM, seq=NUM, digest=DIGEST, link=DIGEST,
                        commits=st.lists(_vote_st(m.Commit), max_size=4).map(tuple))
CHECKPOINT = st.builds(m.Checkpoint, chain_id=CHAIN_ID, seq=NUM, digest=DIGEST, replica=REPLICA, signature=SIG)
VIEW_CHANGE = st.builds(m.ViewChange, chain_id=CHAIN_ID, view=NUM,
                        checkpoint=st.builds(m.StableCheckpoint, seq=NUM, digest=DIGEST,
                                             proof=st.lists(CHECKPOINT, max_size=3).map(tuple)),
                        prepared=st.lists(PREPARED, max_size=2).map(tuple), replica=REPLICA, signature=SIG)
GARBAGE = st.one_of(
    PRE_PREPARE, _vote_st(m.Prepare), _vote_st(m.Commit),
    st.builds(m.Checkpoint, chain_id=CHAIN_ID, seq=NUM, digest=DIGEST, replica=REPLICA, signature=SIG),
    VIEW_CHANGE,
    st.builds(m.NewView, chain_id=CHAIN_ID, view=NUM, view_changes=st.lists(VIEW_CHANGE, max_size=3).map(tuple),
              pre_prepares=st.lists(PRE_PREPARE, max_size=2).map(tuple), replica=REPLICA, signature=SIG),
    st.builds(m.RequestBatch, chain_id=CHAIN_ID, requests=st.lists(REQUEST, max_size=3).map(tuple),
              replica=REPLICA, signature=SIG),
    st.builds(m.Status, chain_id=CHAIN_ID, view=NUM, executed_seq=NUM, stable_seq=NUM, replica=REPLICA, signature=SIG),
    st.builds(m.FetchBlocks, chain_id=CHAIN_ID, from_seq=NUM, to_seq=NUM, replica=REPLICA, signature=SIG),
    st.builds(m.BlocksReply, chain_id=CHAIN_ID,
              blocks=st.lists(st.builds(m.CommittedBlock, proposal=PROPOSAL, certificate=COMMIT_CERT),
                              max_size=2).map(tuple),
              checkpoints=st.lists(st.builds(m.StableCheckpoint, seq=NUM, digest=DIGEST,
                                             proof=st.lists(CHECKPOINT, max_size=3).map(tuple)),
                                   max_size=2).map(tuple), replica=REPLICA, signature=SIG),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(GARBAGE, min_size=1, max_size=6))
def test_replica_step_never_raises_on_garbage_messages(msgs) -> None:
    """DESIGN rule 2 / docs/testing.md E5: arbitrary well-typed messages with any
    uint64/uint32 field values (what the codec can produce) and unforgeable
    signatures never raise out of step(), never get signed votes, durable
    writes or committed blocks out of a replica, and leave it working."""
    rep, pps = accepted_backup({1: (request(1),)}, me=1)
    for msg in msgs:
        ready = deliver(rep, msg)
        assert ready.committed == () and ready.serve == ()
        assert ready.persist == ()
        assert not sent(ready, (m.Prepare, m.Commit, m.ViewChange, m.PrePrepare))
    assert (rep.view, rep.view_changing, rep.executed_seq) == (0, False, 0)
    assert sent(deliver(rep, vote(m.Prepare, pps[1], 2)), m.Commit)


def test_replica_step_before_advance_raises_misuse_error() -> None:
    """DESIGN rule 2: only misuse by the caller raises. step() before the
    previous Ready was advanced, advance() of a stale or foreign Ready, and a
    BlockExecuted for a block never committed are misuse."""
    rep = make_replica(me=1)
    first = rep.step(ev.Tick(now_ms=1))
    with pytest.raises(MisuseError):
        rep.step(ev.Tick(now_ms=2))
    with pytest.raises(MisuseError):
        rep.advance(ev.Ready())
    rep.advance(first)
    with pytest.raises(MisuseError):
        rep.advance(first)  # twice
    with pytest.raises(MisuseError):
        rep.step(ev.BlockExecuted(seq=16, block_hash=b"\x00" * 32))  # checkpoint seq, never executed
    with pytest.raises(MisuseError):
        make_replica(me=2).step("not an event")  # type: ignore[arg-type]


# ==== request de-duplication (§4.1, docs/testing.md S5 / E3) =======================================

def test_primary_same_request_submitted_twice_commits_once() -> None:
    """OSDI'99 §4.1: a request is executed once even if the client resends it,
    to the same or to another replica, before or after it commits."""
    c = Cluster(4)
    c.submit(0, request(1), request(1))
    c.submit(2, request(1))
    c.tick(3)
    c.submit(0, request(1))
    c.submit(3, request(1), request(2))
    c.tick(3)
    for i in range(4):
        assert sorted(ids_of(c.ledgers[i])) == sorted([request(1).id, request(2).id])


def test_replica_request_dedup_survives_view_change() -> None:
    """OSDI'99 §4.1/§4.4, docs/testing.md E3: a request committed in view 0 and
    resubmitted to every replica after the primary crashed and the view
    changed is not committed again."""
    c = Cluster(4, **FAST)
    c.submit(0, request(1))
    c.tick(3)
    c.crash(0)
    for i in (1, 2, 3):
        c.submit(i, request(1), request(2))
    c.tick_until(lambda: all(len(c.ledgers[i]) >= 2 for i in (1, 2, 3)), 100)
    assert c.replicas[1].view >= 1
    for i in (1, 2, 3):
        c.submit(i, request(1), request(2), request(3))
    c.tick_until(lambda: all(request(3).id in ids_of(c.ledgers[i]) for i in (1, 2, 3)), 100)
    for i in (1, 2, 3):
        ids = ids_of(c.ledgers[i])
        assert sorted(ids) == sorted({request(j).id for j in (1, 2, 3)}), i


def test_replica_request_dedup_survives_restart_of_every_replica() -> None:
    """docs/testing.md A3/E3: after every replica restarts from its RestoredState
    (durable records + the ledger, which answers is_committed), a replayed
    request id is not committed a second time."""
    c = Cluster(4, ledger_dedup=True, **FAST)
    c.submit(1, request(1))
    c.tick(3)
    assert all(len(x) == 1 for x in c.ledgers)
    for i in range(4):
        c.crash(i)
        c.restart(i)
        assert c.replicas[i].executed_seq == 1
    for i in range(4):
        c.submit(i, request(1))
    c.submit(2, request(2))
    c.tick_until(lambda: all(request(2).id in ids_of(c.ledgers[i]) for i in range(4)), 100)
    c.tick(10)
    for i in range(4):
        assert ids_of(c.ledgers[i]) == [request(1).id, request(2).id]


def test_primary_does_not_repropose_request_committed_below_new_view_floor() -> None:
    """OSDI'99 §4.1/§4.4, docs/testing.md S5, DESIGN "the same id never commits
    twice". Regression: request r committed at seq 1 in view 0 only at replica 0
    (Commits and Status heartbeats to 1, 2, 3 are lost). In view 1 the NewView includes 0's
    ViewChange (executed_seq 1), so min-s = 1 and the O set is empty. The new
    primary 1 has not executed seq 1 yet (it fetches it), still has r in
    _pending, and Replica._enter_view rebuilds _in_flight only from *decided*
    slots, so `_unproposed` holds r and _maybe_propose puts r into seq 2.
    Backups 2 and 3 have not executed seq 1 either and their _in_flight was
    rebuilt the same way, so _proposal_problem's duplicate check passes: r is
    committed at seq 1 and again at seq 2 on every replica.
    Fix: a replica may not propose (primary: _maybe_propose) nor accept a
    non-null PrePrepare (backup: _on_pre_prepare) while executed_seq <
    _view_floor -- is_committed() is incomplete until it has caught up to the
    NewView's min-s; the primary's retransmission gets it accepted later."""
    c = Cluster(4, **FAST)
    c.drop = lambda frm, to, msg: (
        (isinstance(msg, m.Commit | m.Status) and msg.view == 0 and to != 0)
        or (isinstance(msg, m.ViewChange) and frm == 3 and to == 1 and msg.view == 1))
    c.submit(1, request(7))  # pending at 1 (forwarded to the primary)
    c.tick(2)
    assert len(c.ledgers[0]) == 1 and not c.ledgers[1]
    # Everyone reaches view 1 and catches up to the floor (seq 1) by state transfer.
    c.tick_until(lambda: all(len(x) >= 1 for x in c.ledgers) and all(r.view >= 1 for r in c.replicas), 200)
    c.drop = lambda frm, to, msg: False
    c.submit(2, request(8))
    c.tick_until(lambda: all(request(8).id in ids_of(x) for x in c.ledgers), 200)
    c.assert_agreement()
    for i in range(4):
        ids = ids_of(c.ledgers[i])
        layout = [(b.seq, b.certificate.view, [r.id.hex()[:8] for r in b.proposal.requests]) for b in c.ledgers[i]]
        twice = len(ids) != len(set(ids))
        assert not twice, f"replica {i} committed a request twice: (seq, view, ids) {layout}"


# ==== restart (TOCS'02 §5, docs/testing.md A1/A2/S8) =================================================

def test_backup_restart_never_signs_conflicting_prepare() -> None:
    """TOCS'02 §5 (recovery) / docs/testing.md S8: a replica rebuilt from its
    durable records after a crash never signs a Prepare for a (view, seq) it
    voted on before with another digest -- even when a Byzantine primary
    offers it a conflicting PrePrepare after the restart. (Control: the same
    replica restarted with no records would sign it.)"""
    c = Cluster(4, retransmit_interval_ticks=2, status_interval_ticks=50)
    c.drop = lambda frm, to, msg: to != 2 or not isinstance(msg, m.PrePrepare)
    c.submit(0, request(1))
    c.tick(1)
    (before,) = [msg for frm, msg in c.sent if frm == 2 and isinstance(msg, m.Prepare)]
    c.crash(2)
    c.restart(2)
    conflicting = pre_prepare(1, (request(2),))
    assert conflicting.digest != before.digest
    ready = c.inject(2, conflicting)
    assert not sent(ready, m.Prepare)
    assert c.replicas[2].counters["conflicting pre-prepare"] == 1
    c.tick(4)  # retransmissions re-send the same vote
    mine = [msg for frm, msg in c.sent if frm == 2 and isinstance(msg, m.Prepare | m.Commit)
            and (msg.view, msg.seq) == (0, 1)]
    assert len(mine) >= 2 and {x.digest for x in mine} == {before.digest}
    assert_no_equivocation(c.sent)
    amnesiac = make_replica(me=2)  # the control: no durable records
    assert sent(deliver(amnesiac, conflicting), m.Prepare)


def test_backup_restart_after_commit_keeps_its_commit_vote() -> None:
    """TOCS'02 §5 / docs/testing.md S8: a replica that sent a Commit and restarted
    re-sends the same Commit and never signs a Prepare or Commit for another
    digest at that (view, seq)."""
    c = Cluster(4, **FAST)
    c.drop = lambda frm, to, msg: isinstance(msg, m.Commit)  # everyone prepares, nobody commits
    c.submit(0, request(1))
    c.tick(1)
    (commit,) = [msg for frm, msg in c.sent if frm == 3 and isinstance(msg, m.Commit)]
    c.crash(3)
    c.restart(3)
    r3 = c.replicas[3]
    assert r3._slots[1].sent_commit and r3._slots[1].prepared.digest == commit.digest
    ready = c.inject(3, pre_prepare(1, (request(2),)))
    assert not sent(ready, (m.Prepare, m.Commit))
    c.drop = lambda frm, to, msg: False
    c.tick_until(lambda: all(len(x) == 1 for x in c.ledgers), 50)
    assert c.ledgers[3][0].proposal.digest == commit.digest
    assert_no_equivocation(c.sent)


def test_replica_restart_resumes_view_and_stable_checkpoint() -> None:
    """TOCS'02 §5: the view number and the stable checkpoint are durable; a
    restarted replica comes back in the same view and does not regress."""
    c = Cluster(4, checkpoint_interval_blocks=2, window_blocks=4, batch_txs_max=1, **FAST)
    c.submit(1, request(1))
    c.tick(2)
    c.crash(0)
    c.submit(1, request(2), request(3))
    c.tick_until(lambda: all(len(c.ledgers[i]) >= 3 for i in (1, 2, 3)), 100)
    view, stable = c.replicas[2].view, c.replicas[2].stable.seq
    assert view >= 1 and stable >= 2
    c.crash(2)
    c.restart(2)
    r2 = c.replicas[2]
    assert (r2.view, r2.view_changing, r2.stable.seq, r2.executed_seq) == (view, False, stable, 3)
    c.submit(1, request(4))
    c.tick_until(lambda: all(len(c.ledgers[i]) >= 4 for i in (1, 2, 3)), 100)
    c.assert_agreement()
    assert_no_equivocation(c.sent)


# ==== state transfer (TOCS'02 §6.3.2) =========================================================

def test_replica_state_transfer_catches_up_after_missing_checkpoints() -> None:
    """TOCS'02 §6.3.2 (OSDI'99 §4.3): a replica that missed more than two
    checkpoint intervals -- the others garbage-collected the messages it would
    need -- learns it is behind (Status), fetches the certified blocks with
    FetchBlocks/BlocksReply, verifies them, and rejoins the normal case."""
    K = 4
    c = Cluster(4, checkpoint_interval_blocks=K, window_blocks=2 * K, batch_txs_max=1, fetch_blocks_max=5, **FAST)
    c.submit(0, request(0))
    c.tick(2)
    c.crash(3)  # cut off (no restart: it keeps its memory)
    for i in range(1, 3 * K + 3):
        c.submit(0, request(i))
        c.tick(2)
    assert len(c.ledgers[0]) == 3 * K + 3 and len(c.ledgers[3]) == 1
    assert min(c.replicas[i].stable.seq for i in (0, 1, 2)) > 1 + 2 * K
    c.down.discard(3)
    c.tick_until(lambda: len(c.ledgers[3]) == len(c.ledgers[0]), 100)
    fetches = [msg for frm, msg in c.sent if frm == 3 and isinstance(msg, m.FetchBlocks)]
    assert fetches and fetches[0].from_seq == 2
    replies = [msg for frm, msg in c.sent if isinstance(msg, m.BlocksReply)]
    assert replies and all(len(r.blocks) <= 5 for r in replies)  # fetch_blocks_max per reply
    assert "block with invalid certificate" not in c.replicas[3].counters
    c.submit(3, request(100))
    c.tick_until(lambda: all(request(100).id in ids_of(x) for x in c.ledgers), 50)
    c.assert_agreement()
    assert [b.proposal.digest for b in c.ledgers[3]] == [b.proposal.digest for b in c.ledgers[0]]


def test_replica_behind_on_stable_checkpoints_gets_the_proof_from_a_peer() -> None:
    """OSDI'99 §4.3 / TOCS'02 §4.4 and §6.3.2: a replica that caught up by
    state transfer still needs a stable checkpoint to move its watermarks.
    The replicas that made it stable garbage-collected its votes; their
    Status-triggered answer is the proof (2f+1 signed Checkpoints), which the
    lagging replica validates and adopts. Before, replicas re-sent only their
    own vote, and only if it was part of their proof: here (n = 7) replica 5
    executed the checkpoint late (its proof is 0..4) and two signers are
    down, so the lagging replica 6 heard 3 votes + its own < 2f+1, dropped
    every PrePrepare above its high watermark and nothing committed."""
    K = 4
    c = Cluster(7, checkpoint_interval_blocks=K, window_blocks=2 * K, batch_txs_max=1, fetch_blocks_max=4, **FAST)
    c.crash(6)
    c.drop = lambda frm, to, msg: to == 5 and isinstance(msg, m.Commit) and msg.seq == 3 * K
    for i in range(3 * K + 1):
        c.submit(0, request(i))
        c.tick(2)
    c.tick_until(lambda: c.replicas[5].executed_seq == 3 * K + 1)  # by state transfer
    assert {c.replicas[i].stable.seq for i in range(6)} == {3 * K}
    assert {p.replica for p in c.replicas[5].stable.proof} == {0, 1, 2, 3, 4}
    c.down = {1, 2}  # 6 is back: 0, 3, 4, 5, 6 are exactly a quorum
    c.tick_until(lambda: c.replicas[6].executed_seq == 3 * K + 1, 100)
    c.submit(0, request(100))
    c.tick_until(lambda: all(request(100).id in ids_of(c.ledgers[i]) for i in c.up()), 100)
    r6 = c.replicas[6]
    assert r6.stable.seq >= 3 * K and valid_stable_checkpoint(r6.stable, CHAIN, 7, VERIFIER)
    c.assert_agreement()


@pytest.mark.parametrize("forgery", ["tampered signature", "2f signers", "one signer thrice",
                                     "certificate of another block", "other chain", "out of order"])
def test_backup_rejects_blocks_reply_with_forged_certificate(forgery: str) -> None:
    """TOCS'02 §6.3.2 / docs/testing.md E8: fetched blocks are applied only if their
    commit certificate verifies (2f+1 distinct valid Commits for this chain,
    seq and digest) and they extend the executed prefix; otherwise the reply
    is dropped and counted."""
    good = committed_block(1, (request(1),))
    cert, c0 = good.certificate, good.certificate.commits[0]
    bad = {
        "tampered signature": replace(good, certificate=replace(cert, commits=(
            replace(c0, signature=b"\x00" * 16), *cert.commits[1:]))),
        "2f signers": committed_block(1, (request(1),), signers=(0, 1)),
        "one signer thrice": replace(good, certificate=replace(cert, commits=(c0, c0, c0))),
        "certificate of another block": replace(good, proposal=proposal(1, (request(2),))),
        "other chain": replace(good, proposal=replace(good.proposal, chain_id="other")),
        "out of order": committed_block(2, (request(1),), below=(good.proposal.digest,)),
    }[forgery]
    rep = make_replica(me=3)
    ready = deliver(rep, m.BlocksReply(chain_id=CHAIN, blocks=(bad,), replica=0))
    assert ready.committed == () and rep.executed_seq == 0
    assert len(ready.dropped) == 1 and sum(rep.counters.values()) == 1
    ready = deliver(rep, m.BlocksReply(chain_id=CHAIN, blocks=(good, committed_block(2, below=(good.proposal.digest,))),
                                       replica=0))
    assert [b.seq for b in ready.committed] == [1, 2] and rep.executed_seq == 2


def test_replica_serves_fetch_blocks_only_for_executed_range() -> None:
    """TOCS'02 §6.3.2: a replica answers FetchBlocks with blocks it executed,
    at most fetch_blocks_max of them; the shell reads them from its ledger."""
    rep = make_replica(me=0, fetch_blocks_max=3)
    deliver(rep, m.BlocksReply(chain_id=CHAIN, blocks=tuple(committed_chain((), (), ())), replica=1))
    assert rep.executed_seq == 3
    ready = deliver(rep, sign(m.FetchBlocks(chain_id=CHAIN, from_seq=2, to_seq=100, replica=2)))
    assert ready.serve == (ev.ServeBlocks(to=2, from_seq=2, to_seq=3),)
    ready = deliver(rep, sign(m.FetchBlocks(chain_id=CHAIN, from_seq=4, to_seq=9, replica=2)))
    assert ready.serve == ()


# ==== adaptive request timeout (departure from the paper; Aardvark) =============================

def test_backup_slow_but_progressing_cluster_keeps_its_view() -> None:
    """Clement et al., Aardvark (NSDI'09): a timeout tuned for a fast cluster
    turns overload into view-change storms. The request timeout stretches to
    4x the recent block latency, so blocks that slow down gradually to 4x the
    configured timeout commit without a view change; with a fixed timeout the
    cluster would change views once a block took over 2x it (escalate, then
    change)."""
    c = Cluster(4, request_timeout_ticks=10, view_change_timeout_ticks=10,
                view_change_timeout_max_ticks=400, retransmit_interval_ticks=1)
    for k, latency in enumerate(range(4, 44, 4)):
        c.drop = lambda frm, to, msg: isinstance(msg, m.Commit)  # commits lost until released
        c.submit(0, request(500 + k))
        c.tick(latency)
        c.drop = lambda frm, to, msg: False
        c.tick(2)
        assert all(len(x) == k + 1 for x in c.ledgers), f"block {k + 1} (latency {latency}) did not commit"
    assert latency == 40 and [r.view for r in c.replicas] == [0, 0, 0, 0]


def test_backup_stretched_timeout_still_replaces_a_crashed_primary() -> None:
    """OSDI'99 §4.4 liveness: the stretch is capped at
    view_change_timeout_max_ticks, so after a slow period a crashed primary
    is still replaced."""
    c = Cluster(4, request_timeout_ticks=10, view_change_timeout_ticks=10,
                view_change_timeout_max_ticks=60, retransmit_interval_ticks=1)
    for k, latency in enumerate(range(4, 44, 4)):
        c.drop = lambda frm, to, msg: isinstance(msg, m.Commit)
        c.submit(0, request(600 + k))
        c.tick(latency)
        c.drop = lambda frm, to, msg: False
        c.tick(2)
    c.crash(0)
    c.submit(1, request(700))
    c.tick_until(lambda: all(request(700).id in ids_of(c.ledgers[i]) for i in (1, 2, 3)), 400)
    assert all(c.replicas[i].view >= 1 for i in (1, 2, 3))


def test_backup_long_queue_draining_in_order_keeps_its_view() -> None:
    """Aardvark again, for the per-request timer: 40 requests arrive at once
    and leave one per block, so the last waits 4x the request timeout. The
    timer stretches with the request latency (arrival to execution) of the
    requests that did execute, so a queue that drains in order is no reason
    to change views."""
    c = Cluster(4, request_timeout_ticks=10, view_change_timeout_ticks=10, batch_txs_max=1,
                in_flight_blocks_max=1, view_change_timeout_max_ticks=400)
    c.submit(1, *(request(800 + i) for i in range(40)))
    c.tick_until(lambda: all(len(x) == 40 for x in c.ledgers), 100)
    assert [r.view for r in c.replicas] == [0, 0, 0, 0]


def test_backup_censored_request_changes_view_although_other_blocks_commit() -> None:
    """OSDI'99 §4.4: a backup's timer runs per request, not per block. The
    primary keeps committing new requests but never proposes one that a
    backup forwarded. The backup's timer expires: it sends the request to
    every replica; their timers expire too: they send it again; then they
    change views. Within three request timeouts plus a view change and a
    state transfer the primary is replaced and the request commits. (With
    one progress timer, every commit restarted it.)"""
    censored = request(900)
    c = Cluster(4, **FAST)
    c.drop = lambda frm, to, msg: to == 0 and isinstance(msg, m.RequestBatch) and censored in msg.requests
    c.submit(1, censored)
    for k in range(1, 60):
        c.submit(0, request(1000 + k))  # the primary commits a block every tick
        c.tick()
        if censored.id in ids_of(c.ledgers[1]):
            break
    assert k <= 3 * 5 + 5 + 10, k
    assert all(censored.id in ids_of(c.ledgers[i]) for i in (1, 2, 3))
    assert all(r.view >= 1 for r in c.replicas[1:])
    assert len(c.ledgers[1]) > 10  # blocks kept committing while it waited


# ==== regressions from the code review =========================================================

def test_backup_rejects_state_transfer_block_with_swapped_body() -> None:
    """TOCS'02 §6.2 (state transfer) / docs/testing.md S1, S6: a certified block
    whose request bodies were swapped under the same ids is rejected: the
    proposal digest covers every body, so the certificate no longer matches."""
    c = Cluster(4)
    c.crash(3)
    c.submit(0, request(1))
    c.tick_until(lambda: len(c.ledgers[0]) >= 1)
    good = c.ledgers[0][0]
    fake = m.Request(id=good.proposal.requests[0].id, body=b"garbage")
    swapped = m.CommittedBlock(proposal=replace(good.proposal, requests=(fake,)), certificate=good.certificate)
    assert swapped.proposal.digest != good.proposal.digest
    c.down.discard(3)
    c.inject(3, m.BlocksReply(chain_id=CHAIN, blocks=(swapped,), replica=1))
    assert c.replicas[3].executed_seq == 0 and not c.ledgers[3]
    assert c.replicas[3].counters["block with invalid certificate"] == 1


def test_backup_rejects_pre_prepare_whose_body_differs_from_the_submitted_one() -> None:
    """OSDI'99 §4.2: a faulty primary cannot pair a request id a backup holds
    with other bytes (which would poison the id with a failed transaction)."""
    rep = make_replica(me=1)
    rep.advance(rep.step(ev.RequestsSubmitted(requests=(request(1),))))
    forged = m.Request(id=request(1).id, body=b"other bytes")
    ready = deliver(rep, pre_prepare(1, (forged,)))
    assert not sent(ready, m.Prepare)
    assert rep.counters["request body differs from the one submitted"] == 1


def test_replica_restart_after_view_change_never_commits_a_second_block_at_a_height() -> None:
    """OSDI'99 §4.4 + docs/testing.md A3 (power loss of all nodes): seq 1 commits
    only at replica 3, the cluster moves to view 1, then every replica
    restarts. The prepared certificates kept until garbage collection carry
    seq 1 into the new view and the view record keeps the NewView floor, so
    no quorum can put another block at height 1."""
    c = Cluster(4, request_timeout_ticks=20, view_change_timeout_ticks=20)

    def lossy(frm, to, msg):
        return ((isinstance(msg, m.Commit) and msg.seq == 1 and to != 3)
                or (isinstance(msg, m.ViewChange) and frm == 0 and to == 1)
                or isinstance(msg, m.FetchBlocks | m.BlocksReply))

    c.drop = lossy
    c.submit(0, request(1))
    c.deliver_all()
    assert [r.executed_seq for r in c.replicas] == [0, 0, 0, 1]
    c.tick_until(lambda: all(r.view == 1 and not r.view_changing for r in c.replicas), 400)
    for i in range(4):
        c.crash(i)
    for i in range(3):
        c.restart(i)
    c.queue.clear()
    c.drop = lambda frm, to, msg: False
    c.submit(1, request(2))
    c.tick(5)
    c.restart(3)
    c.tick_until(lambda: all(request(2).id in ids_of(x) for x in c.ledgers), 400)
    c.assert_agreement()
    assert all(x[0].proposal.requests[0].id == request(1).id for x in c.ledgers)
