"""Unit tests of the simulator's own parts: virtual disk, network, checker,
crypto. The oracle must be right before it judges the replica."""
from __future__ import annotations

import random
from dataclasses import replace

import pytest

from consensus import events as ev
from consensus import messages as m
from consensus.sim.checker import Checker, SafetyViolation
from consensus.sim.crypto import make_keys, wrong_key_signer
from consensus.sim.network import LinkFaults, Network
from consensus.sim.storage import Ledger, Storage
from consensus.signing import signable


def test_storage_crash_loses_only_unsynced_writes():
    s = Storage()
    s.write([ev.Write(key=("view",), value="v1")], sync=True)
    s.write([ev.Write(key=("pre_prepare", 1), value="pp1")], sync=False)
    s.write([ev.Write(key=("view",), value=None)], sync=False)  # unsynced delete
    assert s.get(("pre_prepare", 1)) == "pp1" and s.get(("view",)) is None
    assert s.crash() == 2
    assert s.durable_records() == {("view",): "v1"}


def test_storage_sync_makes_earlier_volatile_writes_durable():
    s = Storage()
    s.write([ev.Write(key=("a",), value=1)], sync=False)
    s.write([ev.Write(key=("b",), value=2)], sync=True)
    s.crash()
    assert s.durable_records() == {("a",): 1, ("b",): 2}


def test_network_one_way_partition_blocks_one_direction_until_healed():
    net = Network(3, random.Random(1))
    net.partition([0], [1], one_way=True)
    net.send(0, 0, 1, "a")
    net.send(0, 1, 0, "b")
    assert [x[2] for x in net.due(100)] == ["b"]
    net.partition([0], [1], one_way=True, undo=True)
    net.send(100, 0, 1, "c")
    assert [x[2] for x in net.due(200)] == ["c"]


def test_network_faults_are_deterministic_per_seed():
    def run(seed):
        net = Network(4, random.Random(seed), LinkFaults(loss=0.2, duplicate=0.2, delay_ms_max=50, slow=0.1))
        for i in range(200):
            net.send(i, i % 4, (i + 1) % 4, i)
        return [x[2] for x in net.due(10_000)]
    assert run(7) == run(7)
    assert run(7) != run(8)
    assert len(run(7)) != 200  # some loss and duplication happened


def test_signer_rejects_wrong_key_forgery():
    signers, verifier = make_keys(4, random.Random(1))
    p = m.Prepare(chain_id="sim", view=0, seq=1, digest=bytes(32), replica=2)
    assert verifier.verify(2, signable(p), signers[2].sign(signable(p)))
    assert not verifier.verify(2, signable(p), signers[3].sign(signable(p)))
    assert not verifier.verify(2, signable(p), wrong_key_signer(random.Random(2)).sign(signable(p)))


def _checker(n=4, correct=None):
    _, verifier = make_keys(n, random.Random(1))
    return Checker(n=n, chain_id="sim", verifier=verifier, correct=correct or [True] * n, registry={})


def test_checker_flags_correct_replica_double_vote():
    c = _checker()
    c.on_send(1, m.Prepare(chain_id="sim", view=0, seq=1, digest=b"a" * 32, replica=1))
    c.on_send(1, m.Prepare(chain_id="sim", view=0, seq=1, digest=b"a" * 32, replica=1))  # retransmit: fine
    with pytest.raises(SafetyViolation, match="equivocation"):
        c.on_send(1, m.Prepare(chain_id="sim", view=0, seq=1, digest=b"b" * 32, replica=1))


def test_checker_ignores_byzantine_double_vote():
    c = _checker(correct=[True, False, True, True])
    c.on_send(1, m.Commit(chain_id="sim", view=0, seq=1, digest=b"a" * 32, link=b"l" * 32, replica=1))
    c.on_send(1, m.Commit(chain_id="sim", view=0, seq=1, digest=b"b" * 32, link=b"l" * 32, replica=1))


def test_checker_flags_a_correct_replica_signing_two_links_for_one_commit():
    c = _checker()
    c.on_send(1, m.Commit(chain_id="sim", view=0, seq=2, digest=b"a" * 32, link=b"l" * 32, replica=1))
    with pytest.raises(SafetyViolation, match="equivocation"):
        c.on_send(1, m.Commit(chain_id="sim", view=0, seq=2, digest=b"a" * 32, link=b"k" * 32, replica=1))


def _committed(signers, seq, requests=(), view=0, ts=1, parent=None):
    """Block seq certified by replicas 0-2; its link extends `parent` (a ledger entry), or the genesis."""
    p = m.Proposal(chain_id="sim", seq=seq, proposer=0, timestamp_ms=ts, requests=tuple(requests))
    link = m.next_link(parent.header.link if parent else m.genesis_link("sim", b""), p.digest)
    commits = []
    for i in range(3):
        c = m.Commit(chain_id="sim", view=view, seq=seq, digest=p.digest, link=link, replica=i)
        commits.append(replace(c, signature=signers[i].sign(signable(c))))
    cert = m.CommitCertificate(chain_id="sim", view=view, seq=seq, digest=p.digest, link=link, commits=tuple(commits))
    return m.CommittedBlock(proposal=p, certificate=cert)


def test_checker_flags_disagreement_and_unsubmitted_requests():
    signers, verifier = make_keys(4, random.Random(1))
    req = m.Request(id=b"r" * 32, body=b"x")
    c = Checker(n=4, chain_id="sim", verifier=verifier, correct=[True] * 4, registry={req.id: b"x"})
    a, b = Ledger(), Ledger()
    c.on_commit(0, a.append(_committed(signers, 1, [req])), None)
    with pytest.raises(SafetyViolation, match="agreement"):
        c.on_commit(1, b.append(_committed(signers, 1, [req], ts=2)), None)
    bogus = m.Request(id=b"z" * 32, body=b"invented")
    with pytest.raises(SafetyViolation, match="validity"):
        c.on_commit(0, a.append(_committed(signers, 2, [bogus], parent=a.entries[0])), a.entries[0])


def test_checker_flags_a_block_whose_certified_link_does_not_extend_the_chain():
    signers, verifier = make_keys(4, random.Random(1))
    c = Checker(n=4, chain_id="sim", verifier=verifier, correct=[True] * 4, registry={})
    a, b = Ledger(), Ledger()
    c.on_commit(0, a.append(_committed(signers, 1)), None)
    b.append(_committed(signers, 1, ts=2))  # another history's block 1 (node 1 is not checked here)
    grafted = _committed(signers, 2, parent=b.entries[0])
    with pytest.raises(SafetyViolation, match="link-chain"):
        c.on_commit(0, a.append(grafted), a.entries[0])


def test_ledger_executes_a_duplicate_request_id_only_once():
    signers, verifier = make_keys(4, random.Random(1))
    req = m.Request(id=b"r" * 32, body=b"x")
    c = Checker(n=4, chain_id="sim", verifier=verifier, correct=[True] * 4, registry={req.id: b"x"})
    led = Ledger()
    c.on_commit(0, led.append(_committed(signers, 1, [req])), None)
    e2 = led.append(_committed(signers, 2, [req], parent=led.entries[0]))
    assert e2.executed == () and e2.duplicates == (req.id,)
    c.on_commit(0, e2, led.entries[0])


def test_checker_rejects_certificate_signed_with_wrong_keys():
    signers, verifier = make_keys(4, random.Random(1))
    forged = [wrong_key_signer(random.Random(i)) for i in range(4)]
    c = Checker(n=4, chain_id="sim", verifier=verifier, correct=[True] * 4, registry={})
    with pytest.raises(SafetyViolation, match="certificate"):
        c.on_commit(0, Ledger().append(_committed(forged, 1)), None)


# ---- signature caching in the core (consensus.signing / consensus.certificates) ---------------

class _CountingVerifier:
    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    def verify(self, replica, data, signature):
        self.calls += 1
        return self.inner.verify(replica, data, signature)


def test_verified_cache_never_accepts_a_signature_copied_onto_other_content():
    from consensus.certificates import VerifiedCache

    signers, verifier = make_keys(4, random.Random(1))
    inner = _CountingVerifier(verifier)
    cache = VerifiedCache(inner, size_max=8)
    p = m.Prepare(chain_id="sim", view=0, seq=1, digest=b"a" * 32, replica=1)
    sig = signers[1].sign(signable(p))
    assert cache.verify(1, signable(p), sig) and cache.verify(1, signable(p), sig)
    assert inner.calls == 1  # the second check was a hit
    other = m.Prepare(chain_id="sim", view=0, seq=1, digest=b"b" * 32, replica=1)
    assert not cache.verify(1, signable(other), sig)  # same signature, other bytes
    assert not cache.verify(2, signable(p), sig)  # same bytes and signature, other replica
    assert not cache.verify(1, signable(other), sig)  # rejections are not remembered
    assert inner.calls == 4
    assert cache.verify(1, signable(p), sig) and inner.calls == 4  # the good entry survived


def test_verified_cache_is_bounded():
    from consensus.certificates import VerifiedCache

    signers, verifier = make_keys(2, random.Random(1))
    cache = VerifiedCache(verifier, size_max=4)
    for seq in range(1, 20):
        c = m.Commit(chain_id="sim", view=0, seq=seq, digest=bytes(32), link=bytes(32), replica=0)
        assert cache.verify(0, signable(c), signers[0].sign(signable(c)))
        assert len(cache) <= 4
    cache.clear()
    assert len(cache) == 0


def test_signable_memo_never_goes_stale():
    import dataclasses

    from consensus.signing import with_signature

    signers, _ = make_keys(2, random.Random(1))
    p = m.Prepare(chain_id="sim", view=0, seq=1, digest=b"a" * 32, replica=1)
    first = signable(p)
    q = dataclasses.replace(p, digest=b"b" * 32)
    assert signable(q) != first and signable(p) is first
    signed = with_signature(p, signers[1])
    fresh = m.Prepare(chain_id="sim", view=0, seq=1, digest=b"a" * 32, replica=1, signature=signed.signature)
    assert signed == fresh and signable(signed) == signable(fresh) == first
    assert signed.signature == signers[1].sign(first) and p.signature == b""
    tampered = dataclasses.replace(signed, digest=b"c" * 32)  # keeps the signature, not the memo
    assert signable(tampered) != first


def test_replica_rejects_a_verified_signature_replayed_on_another_digest():
    # Byzantine replica copies replica 1's valid Prepare signature onto a Prepare
    # for another digest after replica 2 has verified (and cached) the original.
    from consensus.config import ReplicaConfig
    from consensus.replica import Replica

    signers, verifier = make_keys(4, random.Random(1))
    r = Replica(ReplicaConfig(chain_id="sim", validators=4, replica=2), signers[2], verifier)
    good = m.Prepare(chain_id="sim", view=0, seq=1, digest=b"a" * 32, replica=1)
    good = m.Prepare(chain_id="sim", view=0, seq=1, digest=b"a" * 32, replica=1,
                     signature=signers[1].sign(signable(good)))
    forged = m.Prepare(chain_id="sim", view=0, seq=1, digest=b"b" * 32, replica=1, signature=good.signature)
    for msg in (good, forged):
        r.advance(r.step(ev.MessageReceived(message=msg)))
    assert r.counters.get("bad signature") == 1 and "double vote" not in r.counters
