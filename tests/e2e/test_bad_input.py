"""Hostile input on every client RPC and on the peer Deliver stream
(docs/testing.md E1-E5, R1): each is refused with the documented status or
dropped and counted; the node stays up and its ledger does not change."""
from __future__ import annotations

import dataclasses
import os

import grpc
import nacl.signing
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from consensus import messages as m
from consensus.signing import signable
from node.core import codec
from node.tools import localnet
from node.net.client import channel as client_channel
from node.core.keys import load_signing_key
from node.pb import client_pb2, consensus_pb2, peer_pb2, peer_pb2_grpc
from node.core.tx import PAYLOAD_BYTES_MAX, Transaction

from .conftest import make_tx, rpc_code, submit_batch

pytestmark = pytest.mark.e2e

CLIENT_METHODS = {  # method -> (request streaming, response streaming)
    "Submit": (False, False), "SubmitBatch": (False, False), "SubmitStream": (True, True),
    "GetBlock": (False, False), "GetTransaction": (False, False), "QueryState": (False, False),
    "StreamBlocks": (False, True), "Status": (False, False),
}
MESSAGE_BYTES_MAX = 4 << 20  # the LimitsConfig default localnet uses
GARBAGE = b"\xff\xff\xff\xff\x0fnot a protobuf"


def _raw_call(channel: grpc.Channel, method: str, data: bytes, timeout: float = 10) -> grpc.StatusCode:
    """Send `data` as the request bytes of `method` (identity serializers)."""
    req_stream, resp_stream = CLIENT_METHODS.get(method.rsplit("/", 1)[-1], (True, False))
    ident = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        if req_stream and resp_stream:
            list(channel.stream_stream(method, **ident)(iter([data]), timeout=timeout))
        elif req_stream:
            channel.stream_unary(method, **ident)(iter([data]), timeout=timeout)
        elif resp_stream:
            list(channel.unary_stream(method, **ident)(data, timeout=timeout))
        else:
            channel.unary_unary(method, **ident)(data, timeout=timeout)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _node_dropped(net, i: int) -> dict[str, int]:
    return dict(net.client(i).Status(client_pb2.StatusRequest(), timeout=5).dropped)


def _heads(net) -> list[tuple[int, str]]:
    return [(s["demo"]["height"], s["demo"]["head"]) for s in (net.status(i) for i in range(4))]


def _signed(msg, key: nacl.signing.SigningKey):
    return dataclasses.replace(msg, signature=key.sign(signable(msg)).signature)


def test_client_rpcs_refuse_bad_input_with_precise_codes(net_factory, sender):
    net = net_factory(nodes=4, chains=("demo",))
    client = net.client(1)
    tx = make_tx(sender, "demo", "a", "1")
    first = submit_batch(client, [tx])
    assert first.results[0].committed
    heads = _heads(net)
    channel = client_channel(net.specs[1].client, net.tls)  # sends up to 64 MiB

    # Malformed bytes on every client RPC: INVALID_ARGUMENT (not UNKNOWN), counted, stream or not.
    before = _node_dropped(net, 1).get("malformed client request", 0)
    for method in CLIENT_METHODS:
        assert _raw_call(channel, f"/govchain.v1.Client/{method}", GARBAGE) == grpc.StatusCode.INVALID_ARGUMENT, method
    assert _node_dropped(net, 1)["malformed client request"] == before + len(CLIENT_METHODS)

    # Oversized messages: RESOURCE_EXHAUSTED, on unary and stream methods alike.
    big = client_pb2.SubmitRequest(tx=client_pb2.Transaction(chain_id="demo", payload=os.urandom(MESSAGE_BYTES_MAX)))
    big_bytes = big.SerializeToString()
    assert len(big_bytes) > MESSAGE_BYTES_MAX
    for method in ("Submit", "SubmitStream", "GetBlock"):
        assert _raw_call(channel, f"/govchain.v1.Client/{method}", big_bytes) == grpc.StatusCode.RESOURCE_EXHAUSTED

    # Forged signatures: UNAUTHENTICATED on Submit, and per transaction in batches and streams.
    other = nacl.signing.SigningKey.generate()
    good = make_tx(sender, "demo", "forged", "x")
    forgeries = [
        dataclasses.replace(good, signature=bytes(64)),
        dataclasses.replace(good, signature=other.sign(b"something else").signature),
        dataclasses.replace(good, sender=bytes(other.verify_key)),  # someone else's key, our signature
        dataclasses.replace(good, payload=b'{"key": "forged", "value": "y"}'),  # content changed after signing
    ]
    for forged in forgeries:
        assert rpc_code(client.Submit, client_pb2.SubmitRequest(tx=codec.tx_to_proto(forged)),
                        timeout=10) == grpc.StatusCode.UNAUTHENTICATED
    batch = submit_batch(client, forgeries, wait=False)
    assert [r.code for r in batch.results] == [grpc.StatusCode.UNAUTHENTICATED.value[0]] * len(forgeries)
    streamed = list(client.SubmitStream(iter(client_pb2.SubmitRequest(tx=codec.tx_to_proto(f)) for f in forgeries),
                                        timeout=10))
    assert [r.code for r in streamed] == [grpc.StatusCode.UNAUTHENTICATED.value[0]] * len(forgeries)

    # Unknown chain: FAILED_PRECONDITION on every chain-addressed RPC.
    elsewhere = make_tx(sender, "no-such-chain", "a", "1")
    assert rpc_code(client.Submit, client_pb2.SubmitRequest(tx=codec.tx_to_proto(elsewhere)),
                    timeout=10) == grpc.StatusCode.FAILED_PRECONDITION
    assert submit_batch(client, [elsewhere]).results[0].code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    for call, request in (
        (client.GetBlock, client_pb2.GetBlockRequest(chain_id="no-such-chain", height=1)),
        (client.GetTransaction, client_pb2.GetTransactionRequest(chain_id="no-such-chain", tx_id=tx.id)),
        (client.QueryState, client_pb2.QueryStateRequest(chain_id="no-such-chain", contract="kv", key=b"a")),
        (lambda r, timeout: list(client.StreamBlocks(r, timeout=timeout)),
         client_pb2.StreamBlocksRequest(chain_id="no-such-chain")),
    ):
        assert rpc_code(call, request, timeout=10) == grpc.StatusCode.FAILED_PRECONDITION, request

    # Malformed transaction fields: INVALID_ARGUMENT naming the field.
    signed = make_tx(sender, "demo", "b", "2")
    bad_fields = {
        "sender": client_pb2.Transaction(**{**_fields(signed), "sender": b"\x01" * 5}),
        "signature": client_pb2.Transaction(**{**_fields(signed), "signature": b"\x01" * 63}),
        "contract": client_pb2.Transaction(**{**_fields(signed), "contract": "no spaces allowed"}),
        "method": client_pb2.Transaction(**{**_fields(signed), "method": ""}),
        "payload": client_pb2.Transaction(**{**_fields(signed), "payload": b"x" * (PAYLOAD_BYTES_MAX + 1)}),
    }
    for field, pb in bad_fields.items():
        try:
            client.Submit(client_pb2.SubmitRequest(tx=pb), timeout=10)
            raise AssertionError(f"bad {field} accepted")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, exc)
            assert field in exc.details(), (field, exc.details())
    batch = client.SubmitBatch(client_pb2.SubmitBatchRequest(txs=list(bad_fields.values())), timeout=10)
    assert [r.code for r in batch.results] == [grpc.StatusCode.INVALID_ARGUMENT.value[0]] * len(bad_fields)

    # Replays: ALREADY_EXISTS, on the node that committed it and on any other, and within one batch.
    for i in range(4):
        assert rpc_code(net.client(i).Submit, client_pb2.SubmitRequest(tx=codec.tx_to_proto(tx)),
                        timeout=10) == grpc.StatusCode.ALREADY_EXISTS
    twice = make_tx(sender, "demo", "twice", "1")
    batch = submit_batch(client, [twice, twice])
    assert [r.code for r in batch.results] == [0, grpc.StatusCode.ALREADY_EXISTS.value[0]]
    assert batch.results[0].committed

    # NOT_FOUND for a missing block or transaction; INVALID_ARGUMENT for neither height nor hash.
    height = net.wait_same_head("demo", range(4))["height"]
    for request in (client_pb2.GetBlockRequest(chain_id="demo", height=height + 1),
                    client_pb2.GetBlockRequest(chain_id="demo", height=0),
                    client_pb2.GetBlockRequest(chain_id="demo", hash=os.urandom(32))):
        assert rpc_code(client.GetBlock, request, timeout=10) == grpc.StatusCode.NOT_FOUND, request
    assert rpc_code(client.GetTransaction, client_pb2.GetTransactionRequest(chain_id="demo", tx_id=os.urandom(32)),
                    timeout=10) == grpc.StatusCode.NOT_FOUND
    assert rpc_code(client.GetBlock, client_pb2.GetBlockRequest(chain_id="demo"),
                    timeout=10) == grpc.StatusCode.INVALID_ARGUMENT

    # Still up (and healthy), nothing but the two good transactions committed, and every node agrees.
    assert net.status(1) is not None
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert height == heads[1][0] + 1
    net.wait_same_head("demo", range(4), at_least=height)
    for forged in forgeries + [elsewhere]:
        assert rpc_code(client.GetTransaction, client_pb2.GetTransactionRequest(chain_id="demo", tx_id=forged.id),
                        timeout=10) == grpc.StatusCode.NOT_FOUND


def _fields(tx: Transaction) -> dict:
    return dict(chain_id=tx.chain_id, sender=tx.sender, nonce=tx.nonce, contract=tx.contract, method=tx.method,
                payload=tx.payload, signature=tx.signature)


def test_peer_stream_drops_and_counts_hostile_messages(net_factory, sender):
    # Plaintext, so that anyone can open a peer stream and the replicas' own checks are
    # what stands (with TLS the peer port first checks who speaks: tests/e2e/test_ports.py).
    net = net_factory(nodes=4, chains=("demo", "catalog"), insecure=True)
    for _ in range(3):
        assert submit_batch(net.client(0), [make_tx(sender, "demo", "k", "v")]).results[0].committed
    net.wait_same_head("demo", range(4), at_least=3)
    heads = _heads(net)
    target = 1  # a backup; replica 0 is the primary of view 0
    before_node = _node_dropped(net, target)
    before_chain = net.status(target)["demo"]["dropped"]
    keys = [load_signing_key(spec.key) for spec in net.specs]
    stranger = nacl.signing.SigningKey.generate()
    block1 = codec.from_proto(net.client(0).GetBlock(client_pb2.GetBlockRequest(chain_id="demo", height=1),
                                                     timeout=10).block)
    next_seq = heads[target][0] + 1

    def commit(**kw):
        return m.Commit(**{"chain_id": "demo", "view": 0, "seq": next_seq, "digest": os.urandom(32),
                           "link": os.urandom(32), "replica": 2, **kw})

    envelopes = [
        # garbage envelopes: no message, a malformed message, a message for another chain than its envelope
        peer_pb2.PeerEnvelope(),
        peer_pb2.PeerEnvelope(chain_id="demo", message=consensus_pb2.ConsensusMessage(
            prepare=consensus_pb2.Prepare(chain_id="demo", view=0, seq=next_seq, digest=b"short", replica=2))),
        peer_pb2.PeerEnvelope(chain_id="demo", message=codec.message_to_proto(_signed(
            commit(chain_id="catalog"), keys[2]))),
        # a chain this node does not serve
        codec.envelope_to_proto(_signed(commit(chain_id="no-such-chain"), keys[2])),
        # signed by a key that is no validator's (claiming to be replica 2, and the primary)
        codec.envelope_to_proto(_signed(commit(), stranger)),
        codec.envelope_to_proto(_signed(m.PrePrepare(
            chain_id="demo", view=0, seq=next_seq, digest=block1.proposal.digest,
            proposal=dataclasses.replace(block1.proposal, seq=next_seq), replica=0), stranger)),
        # a sender index outside the validator set
        codec.envelope_to_proto(_signed(commit(replica=9), stranger)),
        # a validator's Commit for another view
        codec.envelope_to_proto(_signed(commit(view=7), keys[2])),
        # a replay, byte for byte (Ed25519 is deterministic), of the primary's PrePrepare for block 1
        codec.envelope_to_proto(_signed(m.PrePrepare(
            chain_id="demo", view=block1.certificate.view, seq=1, digest=block1.proposal.digest,
            proposal=block1.proposal, replica=block1.proposal.proposer), keys[block1.proposal.proposer])),
    ]
    channel = grpc.insecure_channel(net.specs[target].peer)
    ack = peer_pb2_grpc.PeerStub(channel).Deliver(iter(envelopes), timeout=10)
    assert ack.messages_received == len(envelopes)
    # Raw garbage ends that stream with INVALID_ARGUMENT; an oversized one with RESOURCE_EXHAUSTED.
    deliver = "/govchain.v1.Peer/Deliver"
    assert _raw_call(channel, deliver, GARBAGE) == grpc.StatusCode.INVALID_ARGUMENT
    big = peer_pb2.PeerEnvelope(chain_id="demo", message=consensus_pb2.ConsensusMessage(
        request_batch=consensus_pb2.RequestBatch(chain_id="demo", requests=[consensus_pb2.Request(
            id=os.urandom(32), body=os.urandom(MESSAGE_BYTES_MAX))])))
    assert _raw_call(channel, deliver, big.SerializeToString()) == grpc.StatusCode.RESOURCE_EXHAUSTED

    # the empty envelope names no chain ("unknown chain"); 2 malformed above + the raw garbage
    want_node = {"malformed peer message": 3, "unknown chain": 2}
    want_chain = {"dropped: bad signature": 2, "dropped: unknown sender": 1, "dropped: vote for another view": 1,
                  "dropped: outside watermarks": 1}

    def counted():
        node, chain = _node_dropped(net, target), net.status(target)["demo"]["dropped"]
        return (all(node.get(k, 0) - before_node.get(k, 0) >= v for k, v in want_node.items())
                and all(chain.get(k, 0) - before_chain.get(k, 0) >= v for k, v in want_chain.items()))

    localnet.wait_until(counted, 10, what=f"drop counters: node {_node_dropped(net, target)}, "
                                          f"chain {net.status(target)['demo']['dropped']}")
    # Up, ledger unchanged on every node, and the chain still commits with the target's help.
    assert _heads(net) == heads
    assert net.status(target)["catalog"]["height"] == 0
    response = submit_batch(net.client(target), [make_tx(sender, "demo", "after", "ok")])
    assert response.results[0].committed
    net.wait_same_head("demo", range(4), at_least=heads[0][0] + 1)
