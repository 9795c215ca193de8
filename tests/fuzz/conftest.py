"""A real network for the fuzz tests: node processes on 127.0.0.1 (as in
tests/e2e), started once per module, killed at the end."""
from __future__ import annotations

import contextlib
from pathlib import Path

import grpc
import nacl.signing
import pytest

from node.tools import localnet

from node.net import tls
from node.net.client import channel
from tests.e2e.conftest import Net, make_tx, submit_batch

CHAIN = "demo"


def open_channel(spec: localnet.NodeSpec, port: str, *, peer_as: localnet.NodeSpec | None = None) -> grpc.Channel:
    """The one place the fuzz tests open a channel to a node's "client" port
    (with the tools' client certificate) or its "peer" port, where only a
    validator gets in: the fuzzer then presents `peer_as`'s validator
    certificate, so its junk reaches the replicas as a faulty validator's."""
    if port == "client":
        return channel(spec.client, spec.client_tls)
    ca = Path(spec.home).parent / "tls" / "ca.crt"
    home = Path(peer_as.home)
    return channel(spec.peer, tls.Material.load(ca, home / "tls.crt", home / "tls.key"))


@pytest.fixture(scope="module")
def fuzz_net(tmp_path_factory):
    """Four validators of chain `demo` with a few committed blocks."""
    root = tmp_path_factory.mktemp("fuzz")
    net = Net(root, localnet.create_network(root, nodes=4, chains=(CHAIN,)), (CHAIN,))
    try:
        net.start()
        net.wait_ready()
        key = nacl.signing.SigningKey.generate()
        for i in range(3):
            assert submit_batch(net.client(0), [make_tx(key, CHAIN, f"k{i}", "v")]).results[0].committed
        yield net
    finally:
        net.kill_all()


@contextlib.contextmanager
def healthy_after(net: Net):
    """Around a test: afterwards every node is alive and answers Status, none
    logged a traceback meanwhile, and chain `demo` still commits."""
    offsets = [spec.log.stat().st_size for spec in net.specs]
    yield
    for spec, offset in zip(net.specs, offsets):
        with open(spec.log, errors="replace") as f:
            f.seek(offset)
            logged = f.read()
        assert "Traceback" not in logged, f"{spec.department}:\n{logged[-4000:]}"
    assert all(net.status(i) is not None for i in range(len(net.specs))), net.logs(40)
    key = nacl.signing.SigningKey.generate()
    assert submit_batch(net.client(1), [make_tx(key, CHAIN, "after-fuzz", "ok")]).results[0].committed
