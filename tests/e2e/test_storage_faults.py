"""Storage faults on a real 4-node cluster (docs/testing.md A4, A5, A8;
docs/design.md, "Storage integrity"): a node whose store lost writes it had
promised refuses to start and says how to repair; `govchain chain repair`
rebuilds it from the other nodes; damaged data is answered DATA_LOSS, never
served; afterwards every acknowledged transaction is on every node."""
from __future__ import annotations

import json
import os
import shutil
import time

import grpc
import pytest

from node.tools import localnet
from node.pb import client_pb2
from tests.e2e.conftest import make_tx, run_cli, submit_batch

pytestmark = pytest.mark.e2e


def acked_load(net, sender, batches: int, size: int = 20) -> list[bytes]:
    ids = []
    for b in range(batches):
        txs = [make_tx(sender, "demo", f"k{b}-{i}", str(i)) for i in range(size)]
        response = submit_batch(net.client(b % 3), txs)
        assert all(r.committed for r in response.results), response
        ids.extend(t.id for t in txs)
    return ids


def exits_with(net, i: int, timeout_s: float = 20) -> str:
    """Start node i, expect it to refuse (exit code 2); return its log."""
    spec = net.specs[i]
    spec.log.write_text("")
    net.start(i)
    localnet.wait_until(lambda: localnet.pid_of(spec) is None, timeout_s, what=f"node {i} to refuse to start")
    return spec.log.read_text()


def store(net, i: int) -> str:
    return os.path.join(net.specs[i].home, "data", "demo")


def repair(net, i: int, *sources: int) -> dict:
    args = ["chain", "repair", "--config", str(net.specs[i].config), "--chain", "demo", "--json"]
    for s in sources:
        args += ["--from", net.specs[s].client]
    return json.loads(run_cli(*args).stdout)


def all_acked_on(net, i: int, ids: list[bytes]) -> None:
    client = net.client(i)
    for tx_id in ids:
        # wait_for_ready: the cached channel may still be in reconnect backoff from the node's downtime
        r = client.GetTransaction(client_pb2.GetTransactionRequest(chain_id="demo", tx_id=tx_id), timeout=10,
                                  wait_for_ready=True)
        assert r.receipt.tx_id == tx_id


def test_truncated_store_refuses_to_start_and_repair_rebuilds_it(net_factory, sender):
    net = net_factory(nodes=4, chains=("demo",))
    ids = acked_load(net, sender, batches=6)
    head = net.wait_same_head("demo", range(4))
    assert net.stop(3) == "stopped"

    logs = sorted(n for n in os.listdir(store(net, 3)) if n.endswith(".log"))
    os.truncate(os.path.join(store(net, 3), logs[-1]), 0)  # the disk lost its newest fsynced writes
    log = exits_with(net, 3)
    assert "cannot start" in log and f"promised height {head['height']}" in log, log
    assert "govchain chain repair --config node.toml --chain demo" in log, log

    # It never ran as a voter: the others commit without it, and it must wait for none of this.
    ids += acked_load(net, sender, batches=2)
    out = repair(net, 3, 0, 1)
    assert out["height"] >= head["height"] + 2 and out["promised_height"] == head["height"], out
    assert os.path.isdir(out["damaged_store"])  # moved aside, never deleted

    net.start(3)
    net.wait_ready()
    ids += acked_load(net, sender, batches=1)
    final = net.wait_same_head("demo", range(4), timeout_s=40)
    all_acked_on(net, 3, ids)
    verified = json.loads(run_cli("chain", "verify", "--node", net.specs[3].client, "--genesis",
                                  str(net.genesis("demo")), "--json").stdout)
    assert verified["ok"] and verified["height"] >= final["height"], verified


def test_deleted_current_is_refused_not_recreated(net_factory, sender):
    net = net_factory(nodes=4, chains=("demo",))
    acked_load(net, sender, batches=2)
    net.wait_same_head("demo", range(4))
    assert net.stop(2) == "stopped"
    files_before = sorted(os.listdir(store(net, 2)))
    os.remove(os.path.join(store(net, 2), "CURRENT"))
    log = exits_with(net, 2)
    assert "no LevelDB CURRENT" in log and "govchain chain repair" in log, log
    assert sorted(os.listdir(store(net, 2))) == [n for n in files_before if n != "CURRENT"]
    verify = run_cli("chain", "verify", "--data-dir", os.path.join(net.specs[2].home, "data"), "--genesis",
                     str(net.genesis("demo")), check=False)
    assert verify.returncode != 0 and "no LevelDB CURRENT" in verify.stderr + verify.stdout
    assert not os.path.exists(os.path.join(store(net, 2), "CURRENT"))  # verification created nothing


def test_bit_flips_are_never_served_and_the_node_stays_down_until_repaired(net_factory, sender):
    net = net_factory(nodes=4, chains=("demo",))
    ids = acked_load(net, sender, batches=8)
    head = net.wait_same_head("demo", range(4))
    # A restart replays LevelDB's log into table files; damage those.
    net.stop(3)
    net.start(3)
    net.wait_same_head("demo", range(4))
    net.stop(3)
    tables = [n for n in os.listdir(store(net, 3)) if n.endswith(".ldb")]
    assert tables
    for name in tables:
        path = os.path.join(store(net, 3), name)
        data = bytearray(open(path, "rb").read())
        for k in range(64, len(data) * 3 // 4, 131):
            data[k] ^= 0x10
        open(path, "wb").write(bytes(data))

    net.specs[3].log.write_text("")
    net.start(3)
    reference = net.client(0)
    saw = set()
    deadline = time.monotonic() + 30
    while localnet.pid_of(net.specs[3]) is not None and time.monotonic() < deadline:
        for height in range(1, head["height"] + 1):
            request = client_pb2.GetBlockRequest(chain_id="demo", height=height)
            try:
                got = net.client(3).GetBlock(request, timeout=5)
            except grpc.RpcError as exc:
                saw.add(exc.code())
                assert exc.code() in (grpc.StatusCode.DATA_LOSS, grpc.StatusCode.UNAVAILABLE,
                                      grpc.StatusCode.NOT_FOUND), exc
                if exc.code() == grpc.StatusCode.DATA_LOSS:
                    assert "govchain chain repair" in exc.details()
                continue
            assert got == reference.GetBlock(request, timeout=5)  # never a damaged block
        time.sleep(0.2)
    assert localnet.pid_of(net.specs[3]) is None, "the node kept serving a damaged store"
    log = exits_with(net, 3)  # the damage is remembered: a supervisor's restart gets a clear refusal
    assert "cannot start" in log and "govchain chain repair" in log, log

    out = repair(net, 3, 0)
    assert out["height"] >= head["height"], out
    net.start(3)
    net.wait_ready()
    net.wait_same_head("demo", range(4), timeout_s=40)
    all_acked_on(net, 3, ids)


def test_more_storage_faults_than_f_stop_the_cluster_instead_of_forking(net_factory, sender):
    """Two of four stores truncated (one fault more than f=1): before, the
    two truncated nodes and a lagging one re-committed heights with other
    content. Now the truncated nodes refuse to start, the cluster stops
    committing, and after the repair every node holds the one history."""
    net = net_factory(nodes=4, chains=("demo",))
    ids = acked_load(net, sender, batches=4)
    head = net.wait_same_head("demo", range(4))
    for i in (2, 3):
        assert net.stop(i) == "stopped"
        logs = sorted(n for n in os.listdir(store(net, i)) if n.endswith(".log"))
        os.truncate(os.path.join(store(net, i), logs[-1]), 0)
    for i in (2, 3):
        assert "govchain chain repair" in exits_with(net, i)
    stalled = submit_batch(net.client(0), [make_tx(sender, "demo", "no-quorum", "x")], timeout_ms=3_000)
    assert not stalled.results[0].committed  # 2 of 4 cannot commit: no second history
    for i in (2, 3):
        assert repair(net, i, 0, 1)["height"] >= head["height"]
    net.start(2, 3)
    net.wait_ready()
    final = net.wait_same_head("demo", range(4), timeout_s=40, at_least=head["height"])
    at_head = client_pb2.GetBlockRequest(chain_id="demo", height=head["height"])
    assert net.client(0).GetBlock(at_head, timeout=10).header == net.client(3).GetBlock(at_head, timeout=10).header
    ids += acked_load(net, sender, batches=1)
    for i in range(4):
        all_acked_on(net, i, ids)
    assert final["height"] >= head["height"]


def _load(net, sender, clients, batches: int, tag: str) -> list[bytes]:
    ids = []
    for b in range(batches):
        txs = [make_tx(sender, "demo", f"{tag}{b}-{i}", tag) for i in range(10)]
        response = submit_batch(net.client(clients[b % len(clients)]), txs)
        assert all(r.committed for r in response.results), response
        ids.extend(t.id for t in txs)
    return ids


def _copy_data(net, i: int, to) -> None:
    shutil.copytree(os.path.join(net.specs[i].home, "data"), to)


def _put_data(net, i: int, source) -> None:
    data = os.path.join(net.specs[i].home, "data")
    shutil.rmtree(data)
    shutil.copytree(source, data)


def test_a_node_on_another_history_stops_instead_of_grafting_the_others_blocks(net_factory, sender, tmp_path):
    """Issue 8, finding 2 (docs/design.md, "Block binding"): a node whose
    store holds another history used to graft the others' certified blocks
    onto it by state transfer, and `chain verify` passed on it.

    Two histories with one genesis and one set of keys each need a quorum
    that certified them, so the test makes them the way more than f storage
    faults did: every store is copied at a common height, history A is
    committed by all four nodes, then the copies of nodes 0, 1 and 3 are put
    back (store and promise record together, so each is consistent with
    itself) and those three commit history B above the same height. Node 3
    then returns among 0, 1 (back on A) and 2 (still on A): its first
    fetched block is certified over a link it cannot reproduce (or a stable
    checkpoint over a block hash it did not compute), so it stops, marks its
    store damaged and refuses to start until `govchain chain repair`."""
    net = net_factory(nodes=4, chains=("demo",), checkpoint_interval_blocks=4, window_blocks=8)
    _load(net, sender, (0, 1, 2), batches=2, tag="common")
    common = net.wait_same_head("demo", range(4))
    for i in range(4):
        assert net.stop(i) == "stopped"
    for i in (0, 1, 3):
        _copy_data(net, i, tmp_path / f"common{i}")

    net.start()
    net.wait_ready()
    a_ids = _load(net, sender, (0, 1, 2), batches=8, tag="a")
    a = net.wait_same_head("demo", range(4))
    for i in range(4):
        assert net.stop(i) == "stopped"
    for i in (0, 1):
        _copy_data(net, i, tmp_path / f"a{i}")

    for i in (0, 1, 3):
        _put_data(net, i, tmp_path / f"common{i}")
    net.start(0, 1, 3)
    net.wait_ready((0, 1, 3))
    _load(net, sender, (0, 1), batches=2, tag="b")
    b = net.wait_same_head("demo", (0, 1, 3))
    assert common["height"] < b["height"] < a["height"] and b["head"] != a["head"]
    for i in (0, 1, 3):
        assert net.stop(i) == "stopped"

    for i in (0, 1):
        _put_data(net, i, tmp_path / f"a{i}")
    net.specs[3].log.write_text("")
    net.start()
    localnet.wait_until(lambda: localnet.pid_of(net.specs[3]) is None, 40, what="node 3 to stop")
    log = net.specs[3].log.read_text()
    assert "another history" in log or "DATA_LOSS" in log, log
    assert "govchain chain repair --config node.toml --chain demo" in log, log
    assert net.status(3) is None
    st = net.status(0)["demo"]
    assert st["height"] >= a["height"]  # node 3 never served or voted its blocks into the others

    log = exits_with(net, 3)  # remembered: a supervisor's restart is refused with the repair
    assert "cannot start" in log and "govchain chain repair" in log, log
    out = repair(net, 3, 0, 1)
    assert out["height"] >= a["height"], out
    net.start(3)
    net.wait_ready()
    a_ids += _load(net, sender, (0, 1, 2), batches=1, tag="after")
    final = net.wait_same_head("demo", range(4), timeout_s=40)
    all_acked_on(net, 3, a_ids)
    verified = json.loads(run_cli("chain", "verify", "--node", net.specs[3].client, "--genesis",
                                  str(net.genesis("demo")), "--json").stdout)
    assert verified["ok"] and verified["height"] >= final["height"], verified
