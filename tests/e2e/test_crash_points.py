"""docs/testing.md A2: a node dies at each crash point of its commit path (before
and after the group fsync, between block writes, after acknowledging) with
no cleanup. After a restart it rejoins, loses no acknowledged transaction,
and its chain verifies against the genesis keys. A raised internal error
stops the node (fail-stop) instead of leaving a half-working chain."""
from __future__ import annotations

import nacl.signing
import pytest

from node.tools import localnet
from node.net.client import blocks_over_grpc
from node.core.failpoints import POINTS
from node.core.genesis import load_genesis
from node.pb import client_pb2
from node.ledger.verify import verify_chain
from tests.e2e.conftest import make_tx, submit_batch

pytestmark = pytest.mark.e2e
VICTIM = 1  # a backup: its own durability is what is tested; the cluster keeps committing


def commit_until(net, victim_dead, key, rounds_after: int = 3, rounds_max: int = 80) -> list[bytes]:
    """Commit batches through node 2 until the victim dies, then a few more; returns acked ids."""
    acked, after = [], 0
    for r in range(rounds_max):
        reply = submit_batch(net.client(2), [make_tx(key, "demo", f"k{r}-{i}", "v") for i in range(10)])
        acked += [res.tx_id for res in reply.results if res.committed]
        if victim_dead():
            after += 1
            if after > rounds_after:
                return acked
    raise AssertionError(f"the fail point never fired\n{net.logs()}")


@pytest.mark.parametrize("point", POINTS)
def test_node_dies_at_crash_point_and_loses_nothing_acknowledged(net_factory, point):
    net = net_factory(nodes=4, chains=("demo",), start=False, checkpoint_interval_blocks=4, window_blocks=8)
    net.start(0, 2, 3)
    victim = net.specs[VICTIM]
    localnet.start(victim, env={"GOVCHAIN_FAIL_POINT": f"{point}:12"})
    net.wait_ready()
    acked = commit_until(net, lambda: localnet.pid_of(victim) is None, nacl.signing.SigningKey.generate())
    assert "ready" in victim.log.read_text()  # it ran, then died at the point without a word
    localnet.start(victim)  # no fail point this time
    net.wait_same_head("demo", range(4), timeout_s=60)
    client = net.client(VICTIM)
    for tx_id in acked:  # nothing the cluster acknowledged is missing on the victim
        client.GetTransaction(client_pb2.GetTransactionRequest(chain_id="demo", tx_id=tx_id), timeout=10)
    result = verify_chain(load_genesis(net.genesis("demo")), blocks_over_grpc(localnet.client_stub(victim), victim.client, "demo"))
    assert result.ok, result.problem


def test_internal_error_stops_the_node(net_factory):
    net = net_factory(nodes=4, chains=("demo",), start=False)
    net.start(0, 2, 3)
    victim = net.specs[VICTIM]
    localnet.start(victim, env={"GOVCHAIN_FAIL_POINT": "commit-block:3:raise"})
    net.wait_ready()
    commit_until(net, lambda: "internal error" in victim.log.read_text(), nacl.signing.SigningKey.generate(),
                 rounds_after=0)
    localnet.wait_until(lambda: localnet.pid_of(victim) is None, 30, what="the node to stop itself")
    log = victim.log.read_text()
    assert "chain demo stopped: internal error" in log and "FailPointError" in log
    assert "node stopped after an internal error" in log
