"""Issue 7 §3 on a real node: request-carrying peer messages that fail the
cheap checks (sender, role, envelope signature) cost no transaction
signature checks, and a validator that signs invalid requests stops costing
them after its first batch. Measured as the target process's CPU time: the
junk below cost it 0.7 s of Ed25519 per phase before the fix."""
from __future__ import annotations

import os

import grpc
import nacl.signing

from consensus import messages as m
from node.core import codec
from node.tools import localnet
from node.core.keys import load_signing_key
from node.pb import peer_pb2_grpc
from node.core.tx import Transaction

from .conftest import make_tx, submit_batch
from .test_bad_input import _signed

TXS_PER_BATCH = 1000
# Decoding, the envelope checks and the node's own ticks (measured 0.05-0.12 s);
# checking the 30,000 transaction signatures took 0.7 s more before the fix.
CPU_BUDGET_S = 0.35


def _junk_requests(sender: bytes, batch: int) -> tuple[m.Request, ...]:
    """Well-formed transactions with signatures that do not verify."""
    return tuple(codec.request_from_tx(Transaction(
        chain_id="demo", sender=sender, nonce=batch * TXS_PER_BATCH + i, contract="kv", method="put",
        payload=b'{"key": "junk", "value": "x"}', signature=os.urandom(64))) for i in range(TXS_PER_BATCH))


def _drops(net, i: int) -> dict[str, int]:
    return net.status(i)["demo"]["dropped"]


def _flood(net, target: int, messages) -> None:
    channel = grpc.insecure_channel(net.specs[target].peer, options=[("grpc.max_send_message_length", 64 << 20)])
    ack = peer_pb2_grpc.PeerStub(channel).Deliver(iter(codec.envelope_to_proto(msg) for msg in messages),
                                                   timeout=60)
    assert ack.messages_received == len(messages)


def _wait_counted(net, target: int, before: dict[str, int], want: dict[str, int]) -> dict[str, int]:
    def grown() -> dict[str, int]:
        now = _drops(net, target)
        return {k: now.get(k, 0) - before.get(k, 0) for k in want}

    localnet.wait_until(lambda: all(grown()[k] >= v for k, v in want.items()), 30,
                        what=f"drop counters {grown()} to reach {want}")
    return grown()


def test_peer_requests_failing_cheap_checks_or_signed_by_a_liar_cost_no_signature_checks(net_factory, sender):
    # Plaintext, so that anyone can open a peer stream (with TLS only validators get that far).
    net = net_factory(nodes=4, chains=("demo",), insecure=True)
    assert submit_batch(net.client(0), [make_tx(sender, "demo", "k", "v")]).results[0].committed
    target = 1  # a backup: replica 0 is the primary of view 0
    pid = localnet.pid_of(net.specs[target])
    keys = [load_signing_key(spec.key) for spec in net.specs]
    stranger = nacl.signing.SigningKey.generate()
    junk = bytes(stranger.verify_key)
    head = net.wait_same_head("demo", range(4), at_least=1)["height"]

    # Unauthenticated: a stranger's envelope signature, no signature, a PrePrepare from a non-primary.
    forged = [_signed(m.RequestBatch(chain_id="demo", requests=_junk_requests(junk, b), replica=2), stranger)
              for b in range(10)]
    unsigned = [m.RequestBatch(chain_id="demo", requests=_junk_requests(junk, b), replica=3) for b in range(10, 20)]
    not_primary = []
    for b in range(20, 30):
        p = m.Proposal(chain_id="demo", seq=head + 1, proposer=2, timestamp_ms=0, requests=_junk_requests(junk, b))
        not_primary.append(_signed(m.PrePrepare(chain_id="demo", view=0, seq=head + 1, digest=p.digest,
                                                proposal=p, replica=2), keys[2]))
    before, cpu = _drops(net, target), localnet.cpu_seconds(pid)
    _flood(net, target, forged + unsigned + not_primary)
    _wait_counted(net, target, before, {"dropped: bad signature": 20, "dropped: pre-prepare not from primary": 10})
    assert localnet.cpu_seconds(pid) - cpu < CPU_BUDGET_S

    # A validator's real key on batches of invalid transactions: the first batch is
    # checked and convicts the sender; what it sent meanwhile and after is dropped unchecked.
    liar = [_signed(m.RequestBatch(chain_id="demo", requests=_junk_requests(junk, b), replica=2), keys[2])
            for b in range(30, 60)]
    before, cpu = _drops(net, target), localnet.cpu_seconds(pid)
    _flood(net, target, liar)
    reasons = ("dropped: invalid request", "dropped: sender signed invalid requests", "dropped: peer budget exceeded")
    _wait_counted(net, target, before, {"dropped: invalid request": 1})
    localnet.wait_until(lambda: sum(_drops(net, target).get(k, 0) - before.get(k, 0) for k in reasons) == len(liar),
                        30, what=f"all {len(liar)} batches dropped")
    assert localnet.cpu_seconds(pid) - cpu < CPU_BUDGET_S

    # Nothing of it committed; the chain still commits through the target.
    assert submit_batch(net.client(target), [make_tx(sender, "demo", "after", "ok")]).results[0].committed
    assert net.status(target)["demo"]["height"] == head + 1
    net.wait_same_head("demo", range(4), at_least=head + 1)

