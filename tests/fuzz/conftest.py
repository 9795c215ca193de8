"""A real network for the fuzz tests: node processes on 127.0.0.1 (as in
tests/e2e), started once per module, killed at the end."""
from __future__ import annotations

import grpc
import nacl.signing
import pytest

from node import localnet
from node.client import MESSAGE_BYTES_MAX
from tests.e2e.conftest import Net, make_tx, submit_batch

CHAIN = "demo"


def open_channel(spec: localnet.NodeSpec, port: str) -> grpc.Channel:
    """The one place the fuzz tests open a channel, to a node's "client" or
    "peer" port (spec.home holds what a TLS channel would need)."""
    address = spec.client if port == "client" else spec.peer
    return grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
                                                   ("grpc.max_send_message_length", MESSAGE_BYTES_MAX)])


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
