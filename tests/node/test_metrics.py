"""The metrics endpoint (docs/operations.md, "Metrics"): the collector's
names, types, labels and values read from real ChainNodes, the histograms,
the ledger-size cache, and the HTTP server."""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from nacl.signing import SigningKey
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from consensus import events as ev
from consensus import messages as m
from node.chain.admission import Outcome
from node.core import codec
from node.chain.chain_node import ChainNode
from node.chain.stats import Histogram
from node.contracts import registry_for as contracts_for
from node.core.genesis import make_genesis
from node.core.tx import sign_transaction
from node.ledger.ledger import Ledger
from node.net.transport import Transport
from node.services.metrics import DirectorySize, MetricsServer, NodeCollector, metrics_registry, reason_label
from node.services.verify import DENY_REASONS, DENY_TAG, VerifyStats

KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
DEPARTMENTS = ("housing-registry", "power-company", "public-security", "market-regulation")

# Every family the collector exposes, with its type: a renamed or dropped
# metric breaks dashboards and alerts, so it must break this list too.
FAMILIES = {
    "govchain_node_info": "gauge",  # an info metric: exposed as a gauge of 1 in the text format
    "govchain_height": "gauge",
    "govchain_view": "gauge",
    "govchain_view_changing": "gauge",
    "govchain_is_primary": "gauge",
    "govchain_primary": "gauge",
    "govchain_view_changes": "counter",
    "govchain_transactions_committed": "counter",
    "govchain_admission_refused": "counter",
    "govchain_peer_messages_dropped": "counter",
    "govchain_commit_latency_seconds": "histogram",
    "govchain_fsync_duration_seconds": "histogram",
    "govchain_mempool_transactions": "gauge",
    "govchain_mempool_bytes": "gauge",
    "govchain_behind_blocks": "gauge",
    "govchain_state_transfer_fetching": "gauge",
    "govchain_state_transfer_target_height": "gauge",
    "govchain_ledger_size_bytes": "gauge",
    "govchain_peer_connected": "gauge",
    "govchain_peer_send_dropped": "counter",
    "govchain_peer_send_queue_bytes": "gauge",
    "govchain_bad_input": "counter",
    "govchain_verification_queries": "counter",
    "govchain_verification_query_seconds": "histogram",
}


def scrape(registry) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label items: value} for every sample, and the families' types under "__types__"."""
    out: dict = {"__types__": {}}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        out["__types__"][family.name] = family.type
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.fixture
def make_chain(tmp_path):
    ledgers, pools = [], []

    def make(validators: int, me: int = 0, chain_id: str = "demo") -> ChainNode:
        genesis = make_genesis(chain_id, [(DEPARTMENTS[i], KEYS[i].verify_key, f"127.0.0.1:{7001 + i}")
                                          for i in range(validators)], contracts=[("kv", 1)])
        ledgers.append(Ledger(str(tmp_path / f"{chain_id}-{len(ledgers)}"), chain_id, genesis.hash, create=True))
        pools.append(concurrent.futures.ThreadPoolExecutor(1))
        return ChainNode(genesis=genesis, department=DEPARTMENTS[me], signing_key=KEYS[me], ledger=ledgers[-1],
                         registry=contracts_for(chain_id, [("kv", 1)]), tick_ms=5, transport=Transport(16, 4 << 20),
                         mempool_max=1000, pool=pools[-1])

    yield make
    for ledger in ledgers:
        ledger.close()
    for pool in pools:
        pool.shutdown()


def host(chains: dict[str, ChainNode], department: str = DEPARTMENTS[0], bad_input=None, transport=None,
         verify_stats=None):
    return SimpleNamespace(config=SimpleNamespace(department=department), chains=chains,
                           bad_input=bad_input if bad_input is not None else {}, transport=transport,
                           verify_stats=verify_stats)


def _tx(chain_id: str, nonce: int, value: str = "v"):
    return sign_transaction(SigningKey(b"\x09" * 32), chain_id=chain_id, nonce=nonce, contract="kv", method="put",
                            payload=json.dumps({"key": "k", "value": value}).encode())


async def test_collector_reads_a_committing_chain(make_chain) -> None:
    """A one-validator chain commits alone: height, committed transactions,
    both histograms, refusals and the primary all show what happened."""
    chain = make_chain(1)
    chain.start()
    try:
        txs = [_tx("demo", n) for n in range(3)]
        admissions = await asyncio.gather(*(chain.admit(tx) for tx in txs))
        assert all(a.outcome is Outcome.ADMITTED for a in admissions)
        await asyncio.wait_for(asyncio.gather(*(chain.wait_committed(tx.id) for tx in txs)), 10)
        replay = await chain.admit(txs[0])
        assert replay.outcome is Outcome.ALREADY_EXISTS
        registry = metrics_registry(host({"demo": chain}, bad_input={"malformed peer message": 2}))
        got = scrape(registry)
    finally:
        await chain.stop()

    types = got["__types__"]
    assert {name: types.get(name) for name in FAMILIES} == FAMILIES
    assert "process_cpu_seconds" in types  # the process collector rides along
    demo = (("chain", "demo"),)
    assert got["govchain_height"][demo] == chain.durable_height >= 1
    assert got["govchain_transactions_committed_total"][demo + (("status", "OK"),)] == 3
    assert got["govchain_transactions_committed_total"][demo + (("status", "DUPLICATE"),)] == 0
    assert got["govchain_commit_latency_seconds_count"][demo] == 3
    assert got["govchain_commit_latency_seconds_bucket"][demo + (("le", "+Inf"),)] == 3
    assert 0 < got["govchain_commit_latency_seconds_sum"][demo] < 30
    assert got["govchain_fsync_duration_seconds_count"][demo] >= 1
    assert got["govchain_admission_refused_total"][(("chain", "demo"), ("reason", "replay"))] == 1
    assert got["govchain_is_primary"][demo] == 1
    assert got["govchain_primary"][(("chain", "demo"), ("primary", DEPARTMENTS[0]))] == 0
    assert got["govchain_view"][demo] == 0 and got["govchain_view_changes_total"][demo] == 0
    assert got["govchain_mempool_transactions"][demo] == 0 and got["govchain_mempool_bytes"][demo] == 0
    assert got["govchain_state_transfer_fetching"][demo] == 0 and got["govchain_behind_blocks"][demo] == 0
    assert got["govchain_ledger_size_bytes"][demo] > 0
    assert got["govchain_bad_input_total"][(("reason", "malformed_peer_message"),)] == 2
    (info_labels, info), = got["govchain_node_info"].items()
    assert info == 1 and dict(info_labels)["department"] == DEPARTMENTS[0] and dict(info_labels)["version"]
    assert got.get("govchain_peer_connected", {}) == {}  # a lone validator has no peers


async def test_collector_labels_peers_drops_and_pending_bytes(make_chain) -> None:
    """A backup of a four-validator chain (not started: nothing connects)."""
    chains = {"demo": make_chain(4, me=1), "item": make_chain(4, me=1, chain_id="item")}
    demo = chains["demo"]
    demo.deliver(m.Prepare(chain_id="demo", view=0, seq=1, digest=bytes(32), replica=9), 100)
    demo.counters["dropped: peer budget exceeded"] += 2
    demo.replica.advance(demo.replica.step(ev.RequestsSubmitted(requests=(codec.request_from_tx(_tx("demo", 1)),))))
    got = scrape(metrics_registry(host(chains, department=DEPARTMENTS[1], transport=Transport(16, 4 << 20))))

    dropped = got["govchain_peer_messages_dropped_total"]
    assert dropped[(("chain", "demo"), ("reason", "unknown_sender"))] == 1
    assert dropped[(("chain", "demo"), ("reason", "peer_budget_exceeded"))] == 2
    assert not any(dict(labels)["chain"] == "item" for labels in dropped)
    assert got["govchain_mempool_transactions"][(("chain", "demo"),)] >= 1
    assert got["govchain_mempool_bytes"][(("chain", "demo"),)] > 0
    assert got["govchain_is_primary"][(("chain", "demo"),)] == 0
    assert got["govchain_primary"][(("chain", "demo"), ("primary", DEPARTMENTS[0]))] == 0
    # One series per peer department, shared by both chains; this node is not its own peer.
    peers = {(("peer", d),): 0.0 for d in DEPARTMENTS if d != DEPARTMENTS[1]}
    assert got["govchain_peer_connected"] == peers
    assert got["govchain_peer_send_dropped_total"] == peers
    assert set(got["govchain_height"]) == {(("chain", "demo"),), (("chain", "item"),)}


def test_collector_reads_verification_stats() -> None:
    """Queries by decision and a bounded reason, latency by decision; a
    node that answers no verification queries has the families, no series."""
    stats = VerifyStats()
    stats.observe("permit", "", 0.02)
    stats.observe("permit", "", 0.3)
    stats.observe("deny", DENY_TAG, 0.04)
    stats.observe("refused", "already_exists", 0.001)
    got = scrape(metrics_registry(host({}, verify_stats=stats)))
    queries = got["govchain_verification_queries_total"]
    assert queries[(("decision", "permit"), ("reason", ""))] == 2
    assert queries[(("decision", "deny"), ("reason", "the_tag_does_not_match_the_id_number"))] == 1
    assert queries[(("decision", "refused"), ("reason", "already_exists"))] == 1
    # every deny reason is there from the start (rate() sees the first one), refusals once seen
    assert len(queries) == 1 + len(DENY_REASONS) + 1 and sum(queries.values()) == 4
    assert got["govchain_verification_query_seconds_count"] == {
        (("decision", "permit"),): 2, (("decision", "deny"),): 1, (("decision", "refused"),): 1}
    assert got["govchain_verification_query_seconds_sum"][(("decision", "permit"),)] == pytest.approx(0.32)
    permit_buckets = {dict(k)["le"]: v for k, v in got["govchain_verification_query_seconds_bucket"].items()
                      if dict(k)["decision"] == "permit"}
    assert permit_buckets["0.025"] == 1 and permit_buckets["0.25"] == 1 and permit_buckets["0.5"] == 2
    assert permit_buckets["+Inf"] == 2

    off = scrape(metrics_registry(host({})))
    assert off["__types__"]["govchain_verification_queries"] == "counter"
    assert "govchain_verification_queries_total" not in off and "govchain_verification_query_seconds_count" not in off


def test_reason_labels_are_snake_case() -> None:
    assert reason_label("peer budget exceeded") == "peer_budget_exceeded"
    assert reason_label("pre-prepare for another view") == "pre_prepare_for_another_view"
    assert reason_label("unauthorized peer") == "unauthorized_peer"


def test_histogram_buckets_are_cumulative_with_le_inclusive() -> None:
    h = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 2.0):
        h.observe(value)
    assert h.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert h.count == 4 and h.sum == pytest.approx(2.65)


def test_directory_size_is_cached(tmp_path: Path) -> None:
    now = [0.0]
    size = DirectorySize(ttl_s=30, clock=lambda: now[0])
    (tmp_path / "a.ldb").write_bytes(b"x" * 100)
    assert size(str(tmp_path)) == 100
    (tmp_path / "b.ldb").write_bytes(b"x" * 50)
    assert size(str(tmp_path)) == 100  # cached
    now[0] = 31
    assert size(str(tmp_path)) == 150
    assert size(str(tmp_path / "missing")) == 0


async def _http(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    return status, {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}, body


async def test_server_serves_metrics_only_and_refuses_a_taken_port(make_chain) -> None:
    server = MetricsServer(metrics_registry(host({"demo": make_chain(1)})))
    port = await server.listen("127.0.0.1", 0)
    try:
        status, headers, body = await _http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == "HTTP/1.1 200 OK" and headers["content-type"].startswith("text/plain; version=0.0.4")
        assert int(headers["content-length"]) == len(body) and b"govchain_height{chain=\"demo\"} 0.0" in body
        status, headers, _ = await _http(port, b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; "
                                               b"version=1.0.0\r\n\r\n")
        assert headers["content-type"].startswith("application/openmetrics-text")
        assert (await _http(port, b"GET / HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 404 Not Found"
        assert (await _http(port, b"POST /metrics HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 405 Method Not Allowed"
        assert (await _http(port, b"x" * 10_000))[0] == ""  # an endless head: closed without an answer
        with pytest.raises(OSError):
            await MetricsServer(metrics_registry(host({}))).listen("127.0.0.1", port)
    finally:
        await server.stop()
    again = MetricsServer(metrics_registry(host({})))  # closed: the port is free again (a restart rebinds at once)
    assert await again.listen("127.0.0.1", port) == port
    await again.stop()
