"""Admission under overload on real node processes (docs/design.md,
"Admission"): a node whose admitted transactions wait too long for their
commit refuses a SubmitBatch as a whole, with one RESOURCE_EXHAUSTED that
names the chain, admits nothing and counts every refused transaction; a
batch that also names a chain that is not overloaded goes the per-transaction
way; the node admits again once its transactions commit.

The overload is real, not configured: two of the four validators are
stopped (SIGSTOP), so nothing commits and the 100 transactions the node
admitted first wait for their first commit."""
from __future__ import annotations

import os
import signal

import grpc
import pytest

from node.chain.chain_node import ADMIT_ALWAYS
from node.tools import localnet

from .conftest import make_tx, submit_batch

pytestmark = pytest.mark.e2e


def _overloaded_count(net, i: int, chain: str) -> int:
    return net.status(i)[chain]["dropped"].get("rejected: overloaded", 0)


def test_an_overloaded_node_refuses_a_whole_batch_at_once_and_admits_again_after_commits(net_factory, sender):
    net = net_factory(nodes=4, chains=("demo", "other"))
    client = net.client(1)
    stopped = [localnet.pid_of(net.specs[i]) for i in (2, 3)]
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        first = [make_tx(sender, "demo", f"k{i}", "v") for i in range(ADMIT_ALWAYS)]
        assert [r.code for r in submit_batch(client, first, wait=False).results] == [0] * ADMIT_ALWAYS
        before = _overloaded_count(net, 1, "demo")
        with pytest.raises(grpc.RpcError) as refused:
            submit_batch(client, [make_tx(sender, "demo", f"late{i}", "v") for i in range(10)], wait=False)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.details().startswith("demo: overloaded: 100 transactions admitted here wait for their first commit")
        assert _overloaded_count(net, 1, "demo") == before + 10

        # A chain that is not overloaded keeps the batch on the per-transaction path.
        mixed = submit_batch(client, [make_tx(sender, "demo", "m0", "v"), make_tx(sender, "other", "m1", "v")],
                             wait=False).results
        assert mixed[0].code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] and "overloaded" in mixed[0].error
        assert mixed[1].code == 0
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    net.wait_same_head("demo", range(4), at_least=1)
    localnet.wait_until(lambda: not net.status(1)["demo"]["mempool"], 30, what="the first 100 committed")
    again = submit_batch(client, [make_tx(sender, "demo", "after", "v")])
    assert again.results[0].code == 0 and again.results[0].committed
