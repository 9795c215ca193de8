"""Large transactions through a view change, with real processes (issue 7 §1; PBFT §4.4).

Before the fix a ViewChange carried the full proposals of its prepared
certificates and a NewView 2f+1 of them: with 60 KB transactions they
outgrew message_bytes_max (4 MiB), the transport dropped them on every
retransmission and the survivors of a primary crash went from view to view
without committing. Now they carry digests; forwarded request batches are
cut by bytes too.
"""
from __future__ import annotations

import pytest

from node.tools import localnet
from node.pb import client_pb2

from .conftest import make_tx
from .test_faults import Load

pytestmark = pytest.mark.e2e

VALUE_CHARS = 60_000  # a 60 KB transaction payload (node.core.tx allows 64 KiB)


class LargeLoad(Load):
    def batch(self, i: int) -> list:
        return [make_tx(self.key, self.chain, f"big-{id(self)}-{i}-{j}", chr(97 + j) * VALUE_CHARS)
                for j in range(6)]


def test_primary_sigkill_with_60kb_transactions_view_change_completes(net_factory, sender):
    # window 16: prepared certificates of up to 16 full 1 MiB blocks, far above 4 MiB if they carried bodies
    net = net_factory(nodes=4, chains=("demo",), checkpoint_interval_blocks=8, window_blocks=16)
    assert net.status(0)["demo"]["primary"] == 0
    loads = [LargeLoad([net.client(i)], sender, "demo") for i in (1, 2, 3)]  # backups forward to 0
    for load in loads:
        load.start()
    acked = lambda: sum(len(load.acked) for load in loads)  # noqa: E731
    try:
        localnet.wait_until(lambda: acked() >= 60, 60, what=f"large transactions acked before the kill\n{net.logs()}")
        assert net.kill(0) == "killed"
        acked_at_kill = acked()

        def moved_on():
            sts = [net.status(i) for i in (1, 2, 3)]
            return all(s and s["demo"]["view"] > 0 and not s["demo"]["view_changing"] for s in sts)

        localnet.wait_until(moved_on, 60, what=f"view change after the primary died\n{net.logs()}")
        localnet.wait_until(lambda: acked() >= acked_at_kill + 60, 60,
                            what=f"large transactions committed after the view change\n{net.logs()}")
    finally:
        for load in loads:
            load.halt.set()
        for load in loads:
            load.join(30)
    net.wait_same_head("demo", (1, 2, 3), timeout_s=60)
    for load in loads:
        assert not [e for e in load.errors if e.startswith("receipt")], load.errors
    # every acknowledged transaction is committed where its receipt said, on every survivor
    for i in (1, 2, 3):
        client = net.client(i)
        for load in loads:
            for tx_id, height in load.acked.items():
                r = client.GetTransaction(client_pb2.GetTransactionRequest(chain_id="demo", tx_id=tx_id), timeout=10)
                assert r.receipt.height == height and r.receipt.status == client_pb2.Receipt.OK
