"""Separate, authenticated ports (docs/security.md): the peer port speaks
mutual TLS to validators of this node's chains only, each under its own
replica index; the client port serves clients only; one client cannot use
up either port for others."""
from __future__ import annotations

import asyncio
import dataclasses
import os

import grpc
import nacl.signing
import pytest

from consensus import messages as m
from consensus.signing import signable
from node.core import codec
from node.tools import localnet
from node.net import tls
from node.net.client import aio_channel, stub
from node.core.keys import load_signing_key
from node.pb import client_pb2, client_pb2_grpc, peer_pb2_grpc

from .conftest import make_tx, rpc_code, submit_batch

pytestmark = pytest.mark.e2e

UNAUTHORIZED = "unauthorized peer"
IMPOSTOR = "peer message under another identity"


def _material(ca: tls.Material, prefix) -> tls.Material:
    return tls.Material(ca=ca.ca, cert=prefix.with_name(prefix.name + ".crt").read_bytes(),
                        key=prefix.with_name(prefix.name + ".key").read_bytes())


def _peer_stub(address: str, material: tls.Material, server_name: str) -> peer_pb2_grpc.PeerStub:
    options = [("grpc.ssl_target_name_override", server_name)]
    return peer_pb2_grpc.PeerStub(grpc.secure_channel(address, material.channel_credentials(), options=options))


def _commit(key: nacl.signing.SigningKey, replica: int, chain_id: str = "demo"):
    msg = m.Commit(chain_id=chain_id, view=0, seq=1, digest=os.urandom(32), link=os.urandom(32), replica=replica)
    return codec.envelope_to_proto(dataclasses.replace(msg, signature=key.sign(signable(msg)).signature))


def _dropped(net, i: int) -> dict[str, int]:
    return dict(net.client(i).Status(client_pb2.StatusRequest(), timeout=5).dropped)


def test_peer_port_admits_validators_only_each_under_its_own_index(net_factory, tmp_path):
    net = net_factory(nodes=4, chains=("demo",))
    target, me = net.specs[1], net.specs[2]
    ca_dir = net.root / "tls"
    validator = _material(net.tls, net.root / me.department / "tls")
    deliver = [_commit(load_signing_key(me.key), 2)]

    # No client certificate, or one from another CA: the TLS handshake itself fails.
    other_ca = tmp_path / "other-ca"
    tls.generate_ca(other_ca)
    tls.issue_cert(other_ca, tmp_path / "forged", me.department, localnet.HOSTS, load_signing_key(me.key))
    for material in (tls.Material(ca=net.tls.ca), tls.Material(ca=net.tls.ca, cert=(tmp_path / "forged.crt").read_bytes(),
                                           key=(tmp_path / "forged.key").read_bytes())):
        assert rpc_code(_peer_stub(target.peer, material, target.department).Deliver, iter(deliver),
                        timeout=10) == grpc.StatusCode.UNAVAILABLE

    # A valid certificate of the network CA, but of no validator here: a department in no
    # genesis of this node, and an application's client certificate (no validator binding).
    stranger_key = nacl.signing.SigningKey.generate()
    tls.issue_cert(ca_dir, tmp_path / "tax-bureau", "tax-bureau", localnet.HOSTS, stranger_key)
    tls.issue_cert(ca_dir, tmp_path / "app", "housing-app")
    before = _dropped(net, 1).get(UNAUTHORIZED, 0)
    for name in ("tax-bureau", "app"):
        stranger = _peer_stub(target.peer, _material(net.tls, tmp_path / name), target.department)
        with pytest.raises(grpc.RpcError) as err:
            stranger.Deliver(iter([_commit(stranger_key, 2)]), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "only validators of this node's chains may connect" in err.value.details()
    assert _dropped(net, 1)[UNAUTHORIZED] == before + 2

    # The dialer's side: the server at this address must be the department meant.
    assert rpc_code(_peer_stub(target.peer, validator, net.specs[3].department).Deliver, iter(deliver),
                    timeout=10) == grpc.StatusCode.UNAVAILABLE

    # A validator delivers under its own index on its own chains only: the rest is dropped and counted.
    key = load_signing_key(me.key)
    envelopes = [_commit(key, 2), _commit(key, 0), _commit(key, 2, chain_id="no-such-chain"), _commit(key, 2)]
    before = _dropped(net, 1).get(IMPOSTOR, 0)
    ack = _peer_stub(target.peer, validator, target.department).Deliver(iter(envelopes), timeout=10)
    assert ack.messages_received == 2
    assert _dropped(net, 1)[IMPOSTOR] == before + 2


def test_each_port_serves_only_its_own_services(net_factory):
    net = net_factory(nodes=4, chains=("demo",))
    spec = net.specs[0]
    validator = _material(net.tls, net.root / spec.department / "tls")
    peer_port = grpc.secure_channel(spec.peer, validator.channel_credentials(),
                                    options=[("grpc.ssl_target_name_override", spec.department)])
    assert rpc_code(client_pb2_grpc.ClientStub(peer_port).Status, client_pb2.StatusRequest(),
                    timeout=10) == grpc.StatusCode.UNIMPLEMENTED
    client_port = grpc.secure_channel(spec.client, validator.channel_credentials())
    assert rpc_code(peer_pb2_grpc.PeerStub(client_port).Deliver, iter([]), timeout=10) == grpc.StatusCode.UNIMPLEMENTED
    # Plaintext reaches neither port.
    for address in (spec.client, spec.peer):
        assert rpc_code(stub(address).Status, client_pb2.StatusRequest(), timeout=5) == grpc.StatusCode.UNAVAILABLE
    assert net.client(0).Status(client_pb2.StatusRequest(), timeout=5).department == spec.department


def test_idle_stream_flood_starves_neither_clients_nor_peers(net_factory, sender, tmp_path):
    """One client holding 1,000 idle StreamBlocks gets client_streams_max (64) of them;
    another client still streams and submits, and a restarted validator reconnects."""
    net = net_factory(nodes=4, chains=("demo",), start=False)
    target = net.specs[0]  # serves only clients with a certificate: the cap is per certificate
    target.config.write_text(target.config.read_text().replace("require_client_cert = false",
                                                               "require_client_cert = true"))
    net.start()
    net.wait_ready()
    tls.issue_cert(net.root / "tls", tmp_path / "app", "flooding-app")
    app = _material(net.tls, tmp_path / "app")
    anonymous = tls.Material(ca=net.tls.ca)
    net.kill(3)

    async def scenario():
        async with aio_channel(target.client, app) as flood_channel, \
                aio_channel(target.client, net.tls) as honest_channel, \
                aio_channel(net.specs[1].client, anonymous) as anonymous_channel:
            flooder = client_pb2_grpc.ClientStub(flood_channel)
            idle = [flooder.StreamBlocks(client_pb2.StreamBlocksRequest(chain_id="demo", from_height=10**9))
                    for _ in range(1000)]
            assert await _ended(idle, 1000 - 64) == {grpc.StatusCode.RESOURCE_EXHAUSTED: 1000 - 64}
            assert await _refusal(flooder.StreamBlocks(client_pb2.StreamBlocksRequest(chain_id="demo"))) \
                == grpc.StatusCode.RESOURCE_EXHAUSTED
            # Without a certificate: refused by a node that requires one; capped per IP address elsewhere.
            assert await _refusal(client_pb2_grpc.ClientStub(aio_channel(target.client, anonymous)).Status(
                client_pb2.StatusRequest())) == grpc.StatusCode.UNAVAILABLE
            per_ip = [client_pb2_grpc.ClientStub(anonymous_channel).StreamBlocks(
                client_pb2.StreamBlocksRequest(chain_id="demo", from_height=10**9)) for _ in range(70)]
            assert await _ended(per_ip, 70 - 64) == {grpc.StatusCode.RESOURCE_EXHAUSTED: 70 - 64}

            # Another client streams blocks and submits.
            blocks = client_pb2_grpc.ClientStub(honest_channel).StreamBlocks(
                client_pb2.StreamBlocksRequest(chain_id="demo"))
            await asyncio.to_thread(submit_batch, net.client(0), [make_tx(sender, "demo", "during", "flood")])
            first = await asyncio.wait_for(blocks.read(), 30)
            assert first.header.height == 1

            # A validator that comes back connects: Deliver streams have the peer port's own pool.
            net.start(3)
            await asyncio.to_thread(net.wait_ready)
            await asyncio.to_thread(submit_batch, net.client(0), [make_tx(sender, "demo", "after", "restart")])
            await asyncio.to_thread(net.wait_same_head, "demo", range(4), 60, 2)
            for call in (blocks, *idle, *per_ip):
                call.cancel()

    asyncio.run(scenario())
    assert _dropped(net, 0)["client stream cap"] == 1000 - 64 + 1


def test_a_full_client_pool_leaves_the_peer_pool_alone(net_factory):
    """Even with the per-client cap out of the way, streams that fill the client port's
    concurrent_rpcs_max leave a validator's (new) Deliver stream its own pool."""
    net = net_factory(nodes=4, chains=("demo",), start=False)
    target, me = net.specs[0], net.specs[3]
    target.config.write_text(target.config.read_text().replace("concurrent_rpcs_max = 1000", "concurrent_rpcs_max = 50")
                             .replace("client_streams_max = 64", "client_streams_max = 1000"))
    net.start()
    net.wait_ready()
    peer = _peer_stub(target.peer, _material(net.tls, net.root / me.department / "tls"), target.department)

    async def scenario():
        async with aio_channel(target.client, net.tls) as channel:
            client = client_pb2_grpc.ClientStub(channel)
            idle = [client.StreamBlocks(client_pb2.StreamBlocksRequest(chain_id="demo", from_height=10**9))
                    for _ in range(50)]
            deadline = asyncio.get_running_loop().time() + 30  # until the server has taken all 50
            while await _refusal(client.Status(client_pb2.StatusRequest())) != grpc.StatusCode.RESOURCE_EXHAUSTED:
                assert asyncio.get_running_loop().time() < deadline, "the idle streams never filled the pool"
                await asyncio.sleep(0.05)
            ack = await asyncio.to_thread(peer.Deliver, iter([_commit(load_signing_key(me.key), 3)]), timeout=10)
            assert ack.messages_received == 1
            for call in idle:
                call.cancel()

    asyncio.run(scenario())


async def _ended(calls, count: int) -> dict[grpc.StatusCode, int]:
    """Once `count` of the calls have ended (30 s at most): their codes, counted."""
    deadline = asyncio.get_running_loop().time() + 30
    while sum(call.done() for call in calls) < count and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    codes = [await call.code() for call in calls if call.done()]
    return {code: codes.count(code) for code in set(codes)}


async def _refusal(call) -> grpc.StatusCode:
    """How a call ended (OK if it answered within 30 s, as an accepted idle stream does not)."""
    try:
        await asyncio.wait_for(call if not hasattr(call, "read") else call.read(), 30)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_insecure_network_works_and_warns(net_factory, sender):
    net = net_factory(nodes=4, chains=("demo",), insecure=True)
    assert net.tls is None
    response = submit_batch(net.client(0), [make_tx(sender, "demo", "plain", "text")])
    assert response.results[0].committed
    net.wait_same_head("demo", range(4), at_least=1)
    for spec in net.specs:
        log = spec.log.read_text()
        assert "WARNING govchain.node: !!! TLS IS OFF ([tls] insecure = true)" in log
        assert "(PLAINTEXT)" in log
    # Still one service per port.
    assert rpc_code(stub(net.specs[0].peer).Status, client_pb2.StatusRequest(),
                    timeout=5) == grpc.StatusCode.UNIMPLEMENTED
