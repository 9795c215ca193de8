"""Several chains in one node process (docs/design.md, Sub-chains: one replica and one LevelDB each)."""
from __future__ import annotations

import json

import pytest

from node.pb import client_pb2

from .conftest import make_tx, run_cli, submit_batch

pytestmark = pytest.mark.e2e


def test_two_chains_in_one_process_commit_independently(net_factory, sender):
    # "lab" is a test chain, so it runs the open kv store like demo (node.contracts.platform_contracts).
    net = net_factory(nodes=4, chains=("lab", "demo"))
    assert {c for c in net.status(0)} == {"lab", "demo"}

    for i in range(3):
        response = submit_batch(net.client(i), [make_tx(sender, "demo", f"d{i}", "demo")])
        assert response.results[0].committed
    demo = net.wait_same_head("demo", range(4), at_least=3)
    lab = net.wait_same_head("lab", range(4))
    assert lab["height"] == 0, "transactions on demo changed lab"

    for i in range(2):
        response = submit_batch(net.client(3 - i), [make_tx(sender, "lab", f"c{i}", "lab")])
        assert response.results[0].committed and response.results[0].receipt.height == i + 1
    lab = net.wait_same_head("lab", range(4), at_least=2)
    assert lab["height"] == 2
    assert net.wait_same_head("demo", range(4))["height"] == demo["height"], "transactions on lab changed demo"

    # State is per chain: each key lives only on the chain that wrote it.
    for i in range(4):
        q = lambda chain, key: net.client(i).QueryState(client_pb2.QueryStateRequest(  # noqa: E731
            chain_id=chain, contract="kv", key=key), timeout=10)
        assert q("demo", b"d0").value == b"demo" and not q("lab", b"d0").found
        assert q("lab", b"c0").value == b"lab" and not q("demo", b"c0").found

    # A transaction signed for one chain is no good on the other (its chain_id is signed).
    tx = make_tx(sender, "demo", "cross", "1")
    forged = client_pb2.Transaction(chain_id="lab", sender=tx.sender, nonce=tx.nonce, contract=tx.contract,
                                    method=tx.method, payload=tx.payload, signature=tx.signature)
    result = net.client(0).SubmitBatch(client_pb2.SubmitBatchRequest(txs=[forged]), timeout=10).results[0]
    assert result.code == 16  # UNAUTHENTICATED

    for chain, height in (("demo", demo["height"]), ("lab", 2)):
        out = json.loads(run_cli("chain", "verify", "--node", net.specs[1].client, "--genesis",
                                 str(net.genesis(chain)), "--json").stdout)
        assert out["ok"] and out["chain_id"] == chain and out["height"] == height, out
