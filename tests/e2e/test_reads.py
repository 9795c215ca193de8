"""Cross-chain reads on 4 real node processes (docs/design.md, "Cross-chain
reads"): chain `rd` reads chain `cat`; a transaction on rd copies cat's kv
value as of the height its block names. Every node computes the same state
roots and records the same read heights."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from node.tools import localnet
from node.pb import client_pb2
from node.core.tx import sign_transaction

from .conftest import REPO, make_tx, submit_batch

pytestmark = pytest.mark.e2e


def _start(spec: localnet.NodeSpec) -> None:
    """localnet.start, with the test contract registered (tests/e2e/reads_node.py)."""
    with open(spec.log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "e2e" / "reads_node.py"), "node", "run", "--config", str(spec.config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    spec.pid_file.write_text(str(proc.pid))


def _copy(sender, nonce: int):
    return sign_transaction(sender, chain_id="rd", nonce=nonce, contract="readtest", method="copy",
                            payload=json.dumps({"chain": "cat", "key": "k"}).encode())


def test_chain_reading_another_gets_identical_state_roots_and_read_heights_on_every_node(net_factory, sender):
    net = net_factory(nodes=4, chains=("cat", "rd"), start=False)
    path = net.genesis("rd")
    genesis = json.loads(path.read_text())
    genesis["reads"] = ["cat"]
    genesis["contracts"].append({"name": "readtest", "version": 1})
    path.write_text(json.dumps(genesis))
    localnet.reseal(net.specs, path)  # a changed genesis, signed again by its founders
    for spec in net.specs:
        _start(spec)
    net.wait_ready()

    outputs = []
    for round_, value in enumerate(("v1", "v2", "v3")):
        put = submit_batch(net.client(round_ % 4), [make_tx(sender, "cat", "k", value)])
        assert put.results[0].committed
        cat_height = put.results[0].receipt.height
        net.wait_same_head("cat", range(4), at_least=cat_height)
        copied = submit_batch(net.client((round_ + 1) % 4), [_copy(sender, 1000 + round_)]).results[0]
        assert copied.committed and copied.receipt.status == client_pb2.Receipt.OK, copied
        outputs.append(json.loads(copied.receipt.output))
    # The primary names its durable height of cat when it cuts the block, so a
    # copy may read cat before the put it follows; but heights never go back.
    heights = [o["height"] for o in outputs]
    assert heights == sorted(heights) and heights[-1] >= 1
    # cat's blocks 1, 2, 3 put v1, v2, v3: each copy holds cat's value at exactly its height
    assert all(o["value"] == (None, "v1", "v2", "v3")[o["height"]] for o in outputs), outputs
    print("copies:", outputs)

    head = net.wait_same_head("rd", range(4), at_least=3)
    roots = {}
    for i in range(4):
        for h in range(1, head["height"] + 1):
            block = net.client(i).GetBlock(client_pb2.GetBlockRequest(chain_id="rd", height=h), timeout=10)
            roots.setdefault(h, set()).add(block.header.state_root)
    assert all(len(r) == 1 for r in roots.values()), roots
    recorded = {net.client(i).QueryState(client_pb2.QueryStateRequest(
        chain_id="rd", contract="_reads", key=b"cat"), timeout=10).value for i in range(4)}
    assert len(recorded) == 1 and int.from_bytes(recorded.pop(), "big") >= heights[-1]
    copies = {net.client(i).QueryState(client_pb2.QueryStateRequest(
        chain_id="rd", contract="readtest", key=b"k"), timeout=10).value for i in range(4)}
    assert len(copies) == 1 and json.loads(copies.pop()) == outputs[-1]


def test_node_refuses_to_start_when_a_chain_reads_a_chain_it_does_not_serve(net_factory):
    net = net_factory(nodes=4, chains=("rd",), start=False)
    path = net.genesis("rd")
    genesis = json.loads(path.read_text())
    genesis["reads"] = ["cat"]
    path.write_text(json.dumps(genesis))
    localnet.reseal(net.specs, path)
    proc = subprocess.run([sys.executable, "-m", "node", "node", "run", "--config", str(net.specs[0].config)],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2, proc.stderr
    assert "chain rd: its genesis reads cat, which this node does not serve" in proc.stderr
