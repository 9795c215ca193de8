"""The identity service's subject-tag endpoint (node/services/identity.py)
over real gRPC and TLS, in process, and `govchain tag` against it."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import grpc
import pytest
from nacl.bindings import crypto_scalarmult_ed25519_noclamp
from nacl.bindings import crypto_core_ed25519_is_valid_point
from nacl.signing import SigningKey

from node.identity import oprf
from node.identity.oprf import OprfKey
from node.net import tls
from node.net.client import aio_channel
from node.pb import identity_pb2, identity_pb2_grpc
from node.services.identity import IdentityService, TokenBuckets

REPO = Path(__file__).resolve().parents[2]
ID = "11010519491231002X"
KEY = OprfKey.generate()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recording(IdentityService):
    """The service as deployed, keeping the bytes of every request it got."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[bytes] = []

    async def Evaluate(self, request, context):
        self.requests.append(request.SerializeToString())
        return await super().Evaluate(request, context)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, tls.Material]:
    root = tmp_path_factory.mktemp("pki")
    tls.generate_ca(root)
    for name, node_key in (("identity-node", SigningKey.generate()), ("window-1", None), ("window-2", None)):
        tls.issue_cert(root, root / name, name, ["127.0.0.1"], node_key)
    load = lambda name: tls.Material.load(root / "ca.crt", root / f"{name}.crt", root / f"{name}.key")  # noqa: E731
    return {"server": load("identity-node"), "window-1": load("window-1"), "window-2": load("window-2"),
            "anonymous": tls.Material.load(root / "ca.crt"), "dir": root}


async def _serve(pki, key=KEY, *, burst=100, require_client_cert=True, clock=None, counters=None):
    service = Recording(key, ["window-1"], rate_per_minute=60, burst=burst, clock=clock or Clock(),
                        counters=counters)
    server = grpc.aio.server()
    identity_pb2_grpc.add_IdentityServicer_to_server(service, server)
    port = server.add_secure_port("127.0.0.1:0", pki["server"].server_credentials(require_client_cert))
    await server.start()
    return server, service, f"127.0.0.1:{port}"


async def _tag(address: str, material: tls.Material, id_number: str = ID) -> bytes:
    state, blinded = oprf.blind(id_number)
    async with aio_channel(address, material) as channel:
        reply = await identity_pb2_grpc.IdentityStub(channel).Evaluate(identity_pb2.EvaluateRequest(blinded=blinded))
    return oprf.finalize(state, reply.evaluated)


async def _refusal(address: str, material: tls.Material, blinded: bytes | None = None) -> grpc.aio.AioRpcError:
    blinded = blinded if blinded is not None else oprf.blind(ID)[1]
    async with aio_channel(address, material) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await identity_pb2_grpc.IdentityStub(channel).Evaluate(identity_pb2.EvaluateRequest(blinded=blinded),
                                                                 timeout=10)
    return info.value


def _direct(key: OprfKey, id_number: str) -> bytes:
    x = oprf.oprf_input(id_number)
    return oprf.derive_tag(x, crypto_scalarmult_ed25519_noclamp(bytes(key), oprf.hash_to_group(x)))


async def test_the_same_id_gives_the_same_tag_and_the_service_never_sees_it(pki):
    server, service, address = await _serve(pki)
    try:
        first, second = await _tag(address, pki["window-1"]), await _tag(address, pki["window-1"])
        assert first == second == _direct(KEY, ID)
        assert await _tag(address, pki["window-1"], "440524188001010014") != first
    finally:
        await server.stop(None)
    request_a, request_b = service.requests[:2]
    assert request_a != request_b  # re-randomized: a fresh blind every time
    x = oprf.oprf_input(ID)
    for request in (request_a, request_b):
        blinded = identity_pb2.EvaluateRequest.FromString(request).blinded
        assert crypto_core_ed25519_is_valid_point(blinded)
        for secret in (ID.encode(), ID[:17].encode(), x, oprf.hash_to_group(x)):
            assert secret not in request


async def test_without_the_key_the_tag_cannot_be_recomputed(pki):
    other_server, _, other = await _serve(pki, OprfKey.generate())
    try:
        assert await _tag(other, pki["window-1"]) != _direct(KEY, ID)
    finally:
        await other_server.stop(None)


async def test_callers_that_are_not_listed_windows_are_refused(pki):
    counters: dict[str, int] = {}
    server, service, address = await _serve(pki, counters=counters)
    try:
        unlisted = await _refusal(address, pki["window-2"])
        assert unlisted.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "certificate 'window-2' is not a window of this identity service" in unlisted.details()
        node = await _refusal(address, pki["server"])  # a validator node's own certificate
        assert node.code() == grpc.StatusCode.PERMISSION_DENIED and "validator node's" in node.details()
        # without a client certificate the TLS handshake itself fails: the node requires one
        assert (await _refusal(address, pki["anonymous"])).code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(None)
    assert len(service.requests) == 2  # the anonymous client never reached the service
    assert counters == {"subject-tag caller refused": 2}  # the node's bad-input counts (govchain status)
    lax, _, lax_address = await _serve(pki, require_client_cert=False)
    try:  # and if a port ever did not require one, the service refuses all the same
        anonymous = await _refusal(lax_address, pki["anonymous"])
        assert anonymous.code() == grpc.StatusCode.PERMISSION_DENIED
        assert anonymous.details().startswith("no client certificate")
    finally:
        await lax.stop(None)


@pytest.mark.parametrize("blinded, message", [
    (b"", "32 bytes"),
    (b"\x01" + bytes(31), "identity element"),
    (b"\xff" * 32, "not a valid group element"),
])
async def test_a_bad_point_is_invalid_argument(pki, blinded, message):
    server, _, address = await _serve(pki)
    try:
        refusal = await _refusal(address, pki["window-1"], blinded)
    finally:
        await server.stop(None)
    assert refusal.code() == grpc.StatusCode.INVALID_ARGUMENT and message in refusal.details()


async def test_the_rate_limit_refuses_with_a_retry_hint_and_refills(pki):
    clock = Clock()
    server, _, address = await _serve(pki, burst=2, clock=clock)
    try:
        await _tag(address, pki["window-1"])
        bad = await _refusal(address, pki["window-1"], b"\xff" * 32)  # a bad point costs a token too
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
        limited = await _refusal(address, pki["window-1"])
        assert limited.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "retry in 1.0 s" in limited.details()
        assert dict(limited.trailing_metadata())["retry-after-ms"] == "1000"
        clock.now += 1.0  # 60 per minute: one token a second
        assert await _tag(address, pki["window-1"]) == _direct(KEY, ID)
    finally:
        await server.stop(None)


def test_token_buckets_are_per_caller():
    clock = Clock()
    buckets = TokenBuckets(rate_per_minute=30, burst=1, clock=clock)
    assert buckets.take("a") == 0 and buckets.take("b") == 0
    assert buckets.take("a") == pytest.approx(2.0)
    clock.now += 1.0
    assert buckets.take("a") == pytest.approx(1.0)
    clock.now += 1.0
    assert buckets.take("a") == 0


async def test_govchain_tag_reads_the_id_from_stdin_and_prints_the_tag(pki):
    server, service, address = await _serve(pki)
    root = pki["dir"]
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "node.tools.cli", "tag", "--identity", address, "--id-number", "-", "--json",
            "--ca", str(root / "ca.crt"), "--cert", str(root / "window-1.crt"),
            "--cert-key", str(root / "window-1.key"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        out, err = await process.communicate(ID.lower().encode() + b"\n")
        unlisted = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "node.tools.cli", "tag", "--identity", address, "--id-number", ID,
            "--ca", str(root / "ca.crt"), "--cert", str(root / "window-2.crt"),
            "--cert-key", str(root / "window-2.key"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
        _, unlisted_err = await unlisted.communicate()
    finally:
        await server.stop(None)
    assert process.returncode == 0, err.decode()
    x = oprf.oprf_input(ID)
    output = crypto_scalarmult_ed25519_noclamp(bytes(KEY), oprf.hash_to_group(x))
    assert json.loads(out) == {"tag": _direct(KEY, ID).hex(), "oprf_output": output.hex()}
    assert unlisted.returncode == 1 and b"PERMISSION_DENIED" in unlisted_err
    assert len(service.requests) == 2
