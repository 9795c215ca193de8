"""Prometheus metrics of real nodes (docs/operations.md, "Metrics"): scraped
over HTTP, parsed as Prometheus parses them, and moving as the chain commits;
a taken metrics port stops the node at start like its other ports."""
from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from node.tools import localnet

from .conftest import make_tx, run_cli, submit_batch

pytestmark = pytest.mark.e2e


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    """sample name -> {sorted label items: value}."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_metrics_move_as_transactions_commit(net_factory, sender):
    net = net_factory(nodes=4, chains=("demo",))
    entry, backup = net.specs[0], net.specs[3]
    assert entry.metrics and backup.metrics and entry.metrics != backup.metrics
    demo, ok = (("chain", "demo"),), (("chain", "demo"), ("status", "OK"))
    before = scrape(entry.metrics)
    assert before["govchain_node_info"][(("department", entry.department),
                                         ("version", dict(next(iter(before["govchain_node_info"])))["version"]))] == 1
    localnet.wait_until(lambda: all(v == 1 for v in scrape(entry.metrics)["govchain_peer_connected"].values()), 30,
                        what="every peer connected in the metrics")
    assert set(scrape(entry.metrics)["govchain_peer_connected"]) == {(("peer", s.department),) for s in net.specs[1:]}

    txs = [make_tx(sender, "demo", f"metrics-{i}", "v") for i in range(20)]
    response = submit_batch(net.client(0), txs)
    assert all(r.code == 0 and r.committed for r in response.results), response
    net.wait_same_head("demo", range(4), at_least=1)

    after = scrape(entry.metrics)
    assert after["govchain_height"][demo] > before["govchain_height"][demo]
    assert after["govchain_transactions_committed_total"][ok] >= before["govchain_transactions_committed_total"][ok] + 20
    latency = after["govchain_commit_latency_seconds_count"][demo] - before["govchain_commit_latency_seconds_count"][demo]
    assert latency >= 20  # every transaction admitted at node 0 and committed
    assert after["govchain_commit_latency_seconds_bucket"][demo + (("le", "+Inf"),)] == \
        after["govchain_commit_latency_seconds_count"][demo]
    assert after["govchain_fsync_duration_seconds_count"][demo] > before["govchain_fsync_duration_seconds_count"][demo]
    assert after["govchain_is_primary"][demo] == 1  # housing-registry is view 0's primary
    assert after["govchain_primary"][(("chain", "demo"), ("primary", entry.department))] == 0
    assert after["govchain_ledger_size_bytes"][demo] > 0

    # A backup, which admitted none of them, commits them too.
    other = scrape(backup.metrics)
    assert other["govchain_height"][demo] == after["govchain_height"][demo]
    assert other["govchain_transactions_committed_total"][ok] >= 20
    assert other["govchain_is_primary"][demo] == 0
    assert other["govchain_behind_blocks"][demo] == 0


def test_a_taken_metrics_port_stops_the_node_with_exit_code_2(net_factory):
    net = net_factory(nodes=1, chains=("demo",), start=False)
    spec = net.specs[0]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", spec.metrics_port))
        squatter.listen()
        proc = run_cli("node", "run", "--config", str(spec.config), check=False, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"cannot listen on 127.0.0.1:{spec.metrics_port} ([metrics] listen)" in proc.stderr
