"""Prometheus metrics on a port of their own (docs/operations.md, "Metrics").

`NodeCollector` reads what the node already keeps (each ChainNode's status,
replica, counters and histograms, the node's bad-input counters, the peer
transport's links) when Prometheus scrapes; nothing on the consensus path
increments a metric object. `MetricsServer` serves the exposition over plain
HTTP with asyncio (node.services.http), on the node's event loop: the chains' state belongs to
that loop (docs/design.md, "Rule 5: edges are thin"), so a scrape reads it
between two steps of a chain, never half-way through one. prometheus_client's
own `start_http_server` would collect in a thread of its own, racing the
chains' dicts and counters. A scrape costs the loop well under a millisecond
per chain; the one expensive reading, the size of each LevelDB directory, is
cached for LEDGER_SIZE_TTL_S.

Label values are bounded: `chain` and `peer` (a department) come from the
genesis files, `reason` from the fixed strings the node counts under, `status`
from the receipt statuses, `decision` from the verification decisions.
"""
from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from importlib import metadata

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
                                            InfoMetricFamily, Metric)
from prometheus_client.registry import Collector

from node.chain.chain_node import ChainNode
from node.chain.stats import Histogram
from node.core.receipts import STATUSES
from node.services.http import HttpRequest, HttpResponse, HttpServer, Route
from node.services.verify import DECISIONS, VerifyStats

log = logging.getLogger("govchain.metrics")

LEDGER_SIZE_TTL_S = 30.0


def version() -> str:
    try:
        return metadata.version("govchain")
    except metadata.PackageNotFoundError:
        return "unknown"


def reason_label(reason: str) -> str:
    """"peer budget exceeded" -> "peer_budget_exceeded"."""
    return re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")


class DirectorySize:
    """The bytes of the files in a directory (LevelDB keeps its files flat),
    recomputed at most once per `ttl_s`."""

    def __init__(self, ttl_s: float = LEDGER_SIZE_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s, self._clock = ttl_s, clock
        self._cache: dict[str, tuple[float, int]] = {}

    def __call__(self, path: str) -> int:
        now = self._clock()
        hit = self._cache.get(path)
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        size = 0
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    try:
                        if entry.is_file(follow_symlinks=False):
                            size += entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:  # compaction removed it meanwhile
                        pass
        except OSError:
            pass
        self._cache[path] = (now, size)
        return size


def _histogram(name: str, doc: str, chains: dict[str, ChainNode], of: Callable[[ChainNode], Histogram]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=["chain"])
    for chain_id, chain in chains.items():
        h = of(chain)
        family.add_metric([chain_id], h.cumulative(), h.sum)
    return family


class NodeCollector(Collector):
    """Everything one node exposes, read at scrape time from `host`: the
    daemon's Node (config, chains, bad_input, transport)."""

    def __init__(self, host, ledger_size: Callable[[str], int] | None = None) -> None:
        self._host = host
        self._ledger_size = ledger_size or DirectorySize()
        self._version = version()

    def collect(self) -> Iterator[Metric]:
        host = self._host
        chains: dict[str, ChainNode] = dict(sorted(host.chains.items()))
        yield InfoMetricFamily("govchain_node", "This node: its department and govchain version.",
                               value={"department": host.config.department, "version": self._version})
        yield from self._chain_metrics(chains)
        yield from self._peer_metrics(chains)
        yield from _verify_metrics(host.verify_stats)
        bad = CounterMetricFamily("govchain_bad_input", "Input refused before it reached a chain (malformed "
                                  "requests, unknown chains, unauthorized peers, stream caps), by reason.",
                                  labels=["reason"])
        for reason, n in sorted(host.bad_input.items()):
            bad.add_metric([reason_label(reason)], n)
        yield bad

    def _chain_metrics(self, chains: dict[str, ChainNode]) -> Iterator[Metric]:
        def gauge(name: str, doc: str, value: Callable[[ChainNode, dict], float]) -> Metric:
            family = GaugeMetricFamily(name, doc, labels=["chain"])
            for chain_id, (chain, s) in statuses.items():
                family.add_metric([chain_id], value(chain, s))
            return family

        statuses = {chain_id: (chain, chain.status()) for chain_id, chain in chains.items()}
        yield gauge("govchain_height", "Height of the last block durable (fsynced) on this node.",
                    lambda c, s: s["height"])
        yield gauge("govchain_view", "The PBFT view this node is in.", lambda c, s: s["view"])
        yield gauge("govchain_view_changing", "1 while this node is changing views (no primary yet).",
                    lambda c, s: int(s["view_changing"]))
        yield gauge("govchain_is_primary", "1 when this node is the primary of its current view.",
                    lambda c, s: int(c.replica.is_primary))
        primary = GaugeMetricFamily("govchain_primary", "Replica index of the primary of this node's view; "
                                    "the label names its department.", labels=["chain", "primary"])
        views = CounterMetricFamily("govchain_view_changes", "Views this node moved up since it started "
                                    "(a view change that skips a view counts each).", labels=["chain"])
        committed = CounterMetricFamily("govchain_transactions_committed", "Transactions in blocks this node "
                                        "committed since it started, by receipt status.", labels=["chain", "status"])
        refused = CounterMetricFamily("govchain_admission_refused", "Client transactions this node refused to "
                                      "admit, by reason.", labels=["chain", "reason"])
        dropped = CounterMetricFamily("govchain_peer_messages_dropped", "Peer messages this chain dropped, by "
                                      "reason.", labels=["chain", "reason"])
        for chain_id, (chain, s) in statuses.items():
            primary.add_metric([chain_id, chain.genesis.validators[s["primary"]].department], s["primary"])
            views.add_metric([chain_id], chain.replica.view - chain.started_view)
            for status in STATUSES:
                committed.add_metric([chain_id, status], chain.committed_txs[status])
            for key, n in sorted(chain.counters.items()):
                kind, _, reason = key.partition(": ")
                family = refused if kind == "rejected" else dropped if kind == "dropped" else None
                if family is not None:
                    family.add_metric([chain_id, reason_label(reason)], n)
        yield from (primary, views, committed, refused, dropped)
        yield _histogram("govchain_commit_latency_seconds", "From a transaction's admission on this node to its "
                         "block being durable on this node (transactions admitted here only).", chains,
                         lambda c: c.commit_seconds)
        yield _histogram("govchain_fsync_duration_seconds", "One group commit's fsync of the chain's LevelDB, "
                         "as the chain waits for it.", chains, lambda c: c.fsync_seconds)
        yield gauge("govchain_mempool_transactions", "Transactions pending in the pool, not yet in a block.",
                    lambda c, s: s["mempool"])
        yield gauge("govchain_mempool_bytes", "Bytes of the transactions pending in the pool.",
                    lambda c, s: c.replica.pending_bytes)
        yield gauge("govchain_behind_blocks", "Blocks between this node's height and the height f+1 peers "
                    "claim in their latest status (0: not behind).", lambda c, s: c.replica.behind)
        yield gauge("govchain_state_transfer_fetching", "1 while this node fetches blocks by state transfer.",
                    lambda c, s: int(c.replica.fetching_to > 0))
        yield gauge("govchain_state_transfer_target_height", "The height state transfer is fetching up to "
                    "(0: not fetching).", lambda c, s: c.replica.fetching_to)
        yield gauge("govchain_ledger_size_bytes", f"Size of the chain's LevelDB directory on disk (refreshed "
                    f"at most every {LEDGER_SIZE_TTL_S:.0f} s).", lambda c, s: self._ledger_size(c.ledger.path))

    def _peer_metrics(self, chains: dict[str, ChainNode]) -> Iterator[Metric]:
        me = self._host.config.department
        peers = dict(sorted({v.department: v.address for chain in chains.values()
                             for v in chain.genesis.validators if v.department != me}.items()))
        transport = self._host.transport
        links = transport.links if transport is not None else {}
        connected = GaugeMetricFamily("govchain_peer_connected", "1 while this node's stream to the peer "
                                      "department is open.", labels=["peer"])
        send_dropped = CounterMetricFamily("govchain_peer_send_dropped", "Messages to the peer dropped because "
                                           "its outbound queue was full.", labels=["peer"])
        queued = GaugeMetricFamily("govchain_peer_send_queue_bytes", "Bytes waiting in the peer's outbound queue.",
                                   labels=["peer"])
        for department, address in peers.items():
            link = links.get(address)
            connected.add_metric([department], int(link is not None and link.connected))
            send_dropped.add_metric([department], link.dropped if link is not None else 0)
            queued.add_metric([department], link.queued_bytes if link is not None else 0)
        yield from (connected, send_dropped, queued)


def _verify_metrics(stats: VerifyStats | None) -> Iterator[Metric]:
    """Verification queries this node answered as a provider; no series on a node without [[sources]]."""
    queries = CounterMetricFamily("govchain_verification_queries", "Verification queries this node answered as "
                                  "provider, by decision (permit, deny: logged on the authz chain; refused: before "
                                  "logging) and reason.", labels=["decision", "reason"])
    seconds = HistogramMetricFamily("govchain_verification_query_seconds", "From a verification query's arrival "
                                    "to its sealed reply or refusal, the log commit wait included, by decision.",
                                    labels=["decision"])
    if stats is not None:
        for (decision, reason), n in sorted(stats.queries.items()):
            queries.add_metric([decision, reason_label(reason)], n)
        for decision in DECISIONS:
            h = stats.seconds[decision]
            seconds.add_metric([decision], h.cumulative(), h.sum)
    yield from (queries, seconds)


def metrics_registry(host) -> CollectorRegistry:
    """The node's collector and the process's CPU, memory and file descriptors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(host))
    ProcessCollector(namespace="", registry=registry)
    return registry


def metrics_route(registry: CollectorRegistry) -> Route:
    """GET /metrics: the exposition in the format the scraper accepts."""
    def route(request: HttpRequest) -> HttpResponse | None:
        if request.path != "/metrics":
            return None
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return HttpResponse("200 OK", encode(registry), content_type)
    return route


class MetricsServer(HttpServer):
    """GET /metrics over HTTP/1.1 (one request per connection) on the running loop."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(metrics_route(registry), not_found="metrics are at /metrics")
