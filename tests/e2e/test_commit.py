"""Four node processes agree (docs/testing.md S1, S2, S3, S6; PBFT §4.2 normal case)."""
from __future__ import annotations

import json

import grpc
import pytest

from node.core import codec
from node.pb import client_pb2

from .conftest import make_tx, run_cli, submit_batch

pytestmark = pytest.mark.e2e


def _stream(client, txs, timeout_ms=10_000):
    requests = (client_pb2.SubmitRequest(tx=codec.tx_to_proto(t), wait_commit=True, timeout_ms=timeout_ms)
                for t in txs)
    return list(client.SubmitStream(requests, timeout=30))


def test_cluster_commits_identical_verifiable_ledgers(net_factory, sender):
    net = net_factory(nodes=4, chains=("demo",), checkpoint_interval_blocks=4, window_blocks=8)
    written: dict[str, str] = {}
    tx_ids: set[bytes] = set()

    # SubmitBatch with wait_commit, to different nodes (backups forward to the primary).
    for round_ in range(6):
        txs = [make_tx(sender, "demo", f"batch-{round_}-{j}", f"v{round_}.{j}") for j in range(5)]
        response = submit_batch(net.client(round_ % 4), txs)
        assert [r.code for r in response.results] == [0] * 5, response
        for tx, r in zip(txs, response.results):
            assert r.committed and r.receipt.status == client_pb2.Receipt.OK, r
            assert r.tx_id == tx.id
            tx_ids.add(tx.id)
            written[json.loads(tx.payload)["key"]] = json.loads(tx.payload)["value"]

    # SubmitStream: one result per request, every one committed.
    txs = [make_tx(sender, "demo", f"stream-{j}", f"s{j}") for j in range(40)]
    results = _stream(net.client(2), txs)
    assert len(results) == len(txs)
    assert {r.tx_id for r in results} == {t.id for t in txs}
    assert all(r.code == 0 and r.committed and r.receipt.status == client_pb2.Receipt.OK for r in results), results
    for tx in txs:
        tx_ids.add(tx.id)
        written[json.loads(tx.payload)["key"]] = json.loads(tx.payload)["value"]

    head = net.wait_same_head("demo", range(4))
    height = head["height"]
    assert height >= 7  # 6 batches + at least one block for the stream
    assert height >= 8, "need two checkpoint intervals for the checkpoint assertions below"

    # S1/S6: same header hash and state root at every height on every node; every tx exactly once.
    seen_ids: list[bytes] = []
    checkpoints = 0
    for h in range(1, height + 1):
        views = []
        for i in range(4):
            r = net.client(i).GetBlock(client_pb2.GetBlockRequest(chain_id="demo", height=h), timeout=10)
            header = codec.from_proto(r.header)
            views.append((header.hash, header.state_root, header.parent_hash, header.tx_root))
            if i == 0:
                block = codec.from_proto(r.block)
                seen_ids += [req.id for req in block.proposal.requests]
                checkpoints += r.HasField("checkpoint")
        assert len(set(views)) == 1, f"nodes disagree at height {h}: {views}"
    assert sorted(seen_ids) == sorted(tx_ids), "committed log differs from the acknowledged transactions"
    assert checkpoints >= 1, "no stable checkpoint stored although height >= 2 * checkpoint_interval_blocks"

    # QueryState on every node returns every written value.
    for i in range(4):
        for key, value in written.items():
            q = net.client(i).QueryState(client_pb2.QueryStateRequest(chain_id="demo", contract="kv",
                                                                      key=key.encode()), timeout=10)
            assert q.found and q.value.decode() == value, (i, key, q)
            assert q.height == height
        missing = net.client(i).QueryState(client_pb2.QueryStateRequest(chain_id="demo", contract="kv",
                                                                        key=b"never-written"), timeout=10)
        assert not missing.found

    # S3: an independent offline verifier accepts every node's chain (CLI, human and --json).
    genesis = str(net.genesis("demo"))
    for spec in net.specs:
        human = run_cli("chain", "verify", "--node", spec.client, "--genesis", genesis)
        assert human.stdout.startswith(f"OK: demo verified {height} blocks"), human.stdout
        out = json.loads(run_cli("chain", "verify", "--node", spec.client, "--genesis", genesis, "--json").stdout)
        assert out == {"chain_id": "demo", "ok": True, "height": height, "checkpoints": out["checkpoints"],
                       "problem": ""}
        assert out["checkpoints"] >= 1

    # ... and a stopped node's data dir verifies offline too.
    assert net.stop(3) == "stopped"
    out = json.loads(run_cli("chain", "verify", "--data-dir", str(net.specs[3].data_dir), "--genesis", genesis,
                             "--json").stdout)
    assert out["ok"] and out["height"] == height, out
    human = run_cli("chain", "verify", "--data-dir", str(net.specs[3].data_dir), "--genesis", genesis)
    assert human.stdout.startswith("OK: demo"), human.stdout

    # The other three still serve and still agree.
    with pytest.raises(grpc.RpcError):
        net.client(3).Status(client_pb2.StatusRequest(), timeout=1)
    assert net.wait_same_head("demo", range(3))["height"] == height
