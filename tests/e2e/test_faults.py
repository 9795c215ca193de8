"""Crash faults with real processes (docs/testing.md A1, S4, L1; PBFT §4.4 view change, §4.3 checkpoints)."""
from __future__ import annotations

import json
import threading
import time

import grpc
import pytest

from node.core import codec

from node.tools import localnet
from node.net.client import blocks_over_grpc
from node.core.genesis import load_genesis
from node.pb import client_pb2
from node.ledger.verify import verify_chain

from .conftest import make_tx, run_cli, submit_batch

pytestmark = pytest.mark.e2e


class Load(threading.Thread):
    """Submits small batches with wait_commit, round-robin over `addresses`,
    and records every transaction whose commit was acknowledged with a receipt."""

    def __init__(self, stubs: list, key, chain: str) -> None:
        super().__init__(daemon=True)
        self.stubs = stubs
        self.key, self.chain = key, chain
        self.acked: dict[bytes, int] = {}  # tx id -> height in its receipt
        self.submitted = 0
        self.errors: list[str] = []
        self.halt = threading.Event()

    def batch(self, i: int) -> list:
        return [make_tx(self.key, self.chain, f"load-{i}-{j}", str(i)) for j in range(3)]

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            i += 1
            txs = self.batch(i)
            self.submitted += len(txs)
            try:
                response = submit_batch(self.stubs[i % len(self.stubs)], txs, timeout_ms=4_000)
            except grpc.RpcError as exc:  # indeterminate: may or may not commit
                self.errors.append(exc.code().name)
                time.sleep(0.05)
                continue
            for r in response.results:
                if r.committed:
                    if r.receipt.tx_id != r.tx_id:
                        self.errors.append(f"receipt for {r.receipt.tx_id.hex()} answers {r.tx_id.hex()}")
                    self.acked[r.tx_id] = r.receipt.height
            time.sleep(0.01)


def test_primary_sigkill_under_load_view_change_loses_no_acked_tx(net_factory, sender):
    net = net_factory(nodes=4, chains=("demo",), checkpoint_interval_blocks=4, window_blocks=8)
    assert net.status(0)["demo"]["primary"] == 0  # replica 0 (specs[0]) leads view 0
    load = Load([net.client(i) for i in range(1, len(net.specs))], sender, "demo")
    load.start()
    try:
        localnet.wait_until(lambda: len(load.acked) >= 30, 20, what="acked transactions before the kill")
        assert net.kill(0) == "killed"
        height_at_kill = max(h for h in net.heights("demo", range(1, 4)).values())
        acked_at_kill = len(load.acked)

        # A view change happens on the survivors ...
        def moved_on():
            sts = [net.status(i) for i in range(1, 4)]
            return all(s and s["demo"]["view"] > 0 and not s["demo"]["view_changing"] for s in sts)

        localnet.wait_until(moved_on, 30, what=f"view change after the primary died\n{net.logs()}")
        # ... and commits resume under the new primary.
        localnet.wait_until(lambda: len(load.acked) >= acked_at_kill + 30, 30,
                            what=f"commits after the view change\n{net.logs()}")
    finally:
        load.halt.set()
        load.join(30)
    assert not load.is_alive()
    assert not [e for e in load.errors if e.startswith("receipt")], load.errors

    live = range(1, 4)
    head = net.wait_same_head("demo", live, at_least=height_at_kill + 1)
    view = net.status(1)["demo"]["view"]
    assert view > 0
    assert net.status(1)["demo"]["primary"] != 0

    # S4: every acknowledged transaction is in the committed log of every live node, where its receipt said.
    for i in live:
        client = net.client(i)
        for tx_id, height in load.acked.items():
            r = client.GetTransaction(client_pb2.GetTransactionRequest(chain_id="demo", tx_id=tx_id), timeout=10)
            assert r.receipt.height == height and r.receipt.status == client_pb2.Receipt.OK, (i, tx_id.hex())
    assert len(load.acked) <= load.submitted

    # The killed node restarts from its LevelDB and catches up to the same head.
    net.start(0)
    net.wait_ready()
    head = net.wait_same_head("demo", range(4), timeout_s=40)
    assert head["height"] >= height_at_kill + 1
    r = net.client(0).GetTransaction(client_pb2.GetTransactionRequest(
        chain_id="demo", tx_id=max(load.acked, key=load.acked.get)), timeout=10)
    assert r.receipt.height == max(load.acked.values())
    # It follows the new view, and the cluster still commits with it.
    assert localnet.wait_until(lambda: net.status(0)["demo"]["view"] >= view, 15, what="restarted node's view")
    txs = [make_tx(sender, "demo", "after-restart", "1")]
    response = submit_batch(net.client(0), txs)
    assert response.results[0].committed, response
    head = net.wait_same_head("demo", range(4), at_least=response.results[0].receipt.height)

    # S3/S5 on every node, the restarted one included: the chain verifies against genesis
    # and no transaction id appears twice.
    genesis = load_genesis(net.genesis("demo"))
    for i, spec in enumerate(net.specs):
        blocks = list(blocks_over_grpc(net.client(i), spec.client, "demo"))
        result = verify_chain(genesis, blocks)
        assert result.ok and result.height >= head["height"], (spec.department, result)
        ids = [r.id for _, block, _ in blocks for r in block.proposal.requests]
        assert len(ids) == len(set(ids)), f"{spec.department} committed a transaction twice"
        assert set(load.acked) <= set(ids)


def test_stopped_node_catches_up_across_checkpoints_and_rejoins(net_factory, sender):
    interval = 4
    net = net_factory(nodes=4, chains=("demo",), checkpoint_interval_blocks=interval, window_blocks=8)
    # One block before the stop, so the returning node has a ledger to continue.
    assert submit_batch(net.client(0), [make_tx(sender, "demo", "first", "1")]).results[0].committed
    net.wait_same_head("demo", range(4))
    assert net.stop(3) == "stopped"  # SIGTERM: graceful

    # Commit well past two stable checkpoints (and past the watermark window).
    for i in range(5 * interval):
        response = submit_batch(net.client(i % 3), [make_tx(sender, "demo", f"k{i}", str(i)) for _ in range(1)])
        assert response.results[0].committed, response
    head = net.wait_same_head("demo", range(3))
    assert head["height"] >= 1 + 5 * interval
    last = client_pb2.GetBlockRequest(chain_id="demo", height=head["height"] - head["height"] % interval)
    assert net.client(0).GetBlock(last, timeout=10).HasField("checkpoint"), "no stable checkpoint was formed"

    started = time.monotonic()
    net.start(3)
    caught_up = net.wait_same_head("demo", range(4), timeout_s=40, at_least=head["height"])
    assert caught_up["head"] == head["head"]
    # It fetched the stable-checkpoint proofs with the blocks (issue 8: 40 proofs against its peers' 108).
    for h in range(interval, head["height"] + 1, interval):
        at = client_pb2.GetBlockRequest(chain_id="demo", height=h)
        theirs = net.client(0).GetBlock(at, timeout=10)
        assert not theirs.HasField("checkpoint") or net.client(3).GetBlock(at, timeout=10).HasField("checkpoint"), h
    # Back in consensus within a few seconds: its peers are connected ...
    localnet.wait_until(lambda: all((s := net.status(i)) and s["demo"]["peers"] == 3 for i in range(4)), 10,
                        what="node 3 and its peers connected both ways")
    assert time.monotonic() - started < 30
    # ... and its votes count: with another node down, commits need node 3 (3 of 4 = 2f+1).
    assert net.kill(2) == "killed"
    response = submit_batch(net.client(3), [make_tx(sender, "demo", "needs-node-3", "yes")], timeout_ms=15_000)
    assert response.results[0].committed, response
    net.wait_same_head("demo", (0, 1, 3), at_least=response.results[0].receipt.height)
    q = net.client(3).QueryState(client_pb2.QueryStateRequest(chain_id="demo", contract="kv", key=b"needs-node-3"),
                                 timeout=10)
    assert q.found and q.value == b"yes"

    out = json.loads(run_cli("chain", "verify", "--node", net.specs[3].client, "--genesis",
                             str(net.genesis("demo")), "--json").stdout)
    assert out["ok"] and out["height"] >= head["height"] + 1 and out["checkpoints"] >= 1, out
