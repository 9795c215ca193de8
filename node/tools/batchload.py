"""Open-loop load for overload benchmarks: pre-signed transactions in
SubmitBatch calls (no commit wait), commits observed on StreamBlocks.

Unlike node.tools.load (one SubmitStream per client, waiting for each commit),
the offered rate here does not slow down when the cluster does: batches
leave on schedule whatever the answers, as from many independent clients.
Signing happens before the clock starts, so the generator's CPU goes into
sending, not into Ed25519. Latency is from sending a batch to seeing its
transaction's block on the stream; only admitted transactions count.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field

import grpc
from nacl.signing import SigningKey

from node.core import codec
from node.pb import client_pb2, client_pb2_grpc
from node.core.tx import sign_transaction
from node.tools.localnet import cpu_seconds

IN_FLIGHT_CALLS_MAX = 256
_CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}  # a lookup per refused tx: keep the generator cheap


@dataclass
class BatchLoadResult:
    offered_rate: float
    duration_s: float
    offered: int = 0
    admitted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    committed: int = 0
    committed_in_window: int = 0  # committed between warm-up and the end of offering
    window_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_cores: dict[str, float] = field(default_factory=dict)  # while offering: the nodes' and this generator's

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 1)

    @property
    def committed_tps(self) -> float:
        return round(self.committed_in_window / self.window_s, 1) if self.window_s else 0.0

    def to_json(self) -> dict:
        return {"offered_rate": self.offered_rate, "offered": self.offered, "admitted": self.admitted,
                "refused": dict(self.refused), "committed": self.committed, "committed_tps": self.committed_tps,
                "latency_ms": {"p50": self.percentile(50), "p99": self.percentile(99)},
                **({"cpu_cores": self.cpu_cores} if self.cpu_cores else {})}



def load_channel(address: str) -> grpc.aio.Channel:
    """A plaintext channel to a benchmark node's client port that takes large batches both ways."""
    return grpc.aio.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20),
                                                       ("grpc.max_receive_message_length", 64 << 20)])


def presign(chain: str, count: int, run: int, batch: int) -> list[tuple[client_pb2.SubmitBatchRequest, list[bytes]]]:
    """`count` signed kv puts as SubmitBatch requests of `batch`, with their ids."""
    keys = [SigningKey(run.to_bytes(16, "big") + bytes([i]) * 16) for i in range(16)]
    out = []
    for start in range(0, count, batch):
        txs = [sign_transaction(keys[i % 16], chain_id=chain, nonce=i, contract="kv", method="put",
                                payload=json.dumps({"key": f"o{run}-{i}", "value": "v"}).encode())
               for i in range(start, min(count, start + batch))]
        out.append((client_pb2.SubmitBatchRequest(txs=[codec.tx_to_proto(t) for t in txs]), [t.id for t in txs]))
    return out


async def run_batch_load(addresses: list[str], *, chain: str, rate: float, duration_s: float, batch: int = 100,
                         warmup_s: float = 2.0, drain_s: float = 10.0, run: int | None = None,
                         node_pids: tuple[int, ...] = ()) -> BatchLoadResult:
    """`node_pids`: processes whose CPU, with this one's, is reported while offering."""
    run = time.time_ns() if run is None else run
    requests = presign(chain, int(rate * duration_s), run, batch)
    result = BatchLoadResult(offered_rate=rate, duration_s=duration_s)
    sent_at: dict[bytes, float] = {}
    channels = [load_channel(a) for a in addresses]
    stubs = [client_pb2_grpc.ClientStub(c) for c in channels]
    slots = asyncio.Semaphore(IN_FLIGHT_CALLS_MAX)
    window = (0.0, 0.0)  # set when offering starts
    trace_dir = os.environ.get("GOVCHAIN_TRACE")  # per admitted tx: sent, answered, seen (node.chain.chain_node.TRACE_DIR)
    trace: dict[bytes, list[float]] = {}

    async def watch() -> None:
        status = await stubs[0].Status(client_pb2.StatusRequest())
        height = next(c.height for c in status.chains if c.chain_id == chain)
        async for block in stubs[0].StreamBlocks(client_pb2.StreamBlocksRequest(chain_id=chain,
                                                                                 from_height=height + 1)):
            now = time.perf_counter()
            for receipt in block.receipts:
                sent = sent_at.pop(receipt.tx_id, None)
                if sent is None:
                    continue
                result.committed += 1
                result.latencies_ms.append((now - sent) * 1000)
                if trace_dir and receipt.tx_id in trace:
                    trace[receipt.tx_id].append(now)
                if window[0] <= now <= window[1]:
                    result.committed_in_window += 1

    async def send(i: int, request, ids: list[bytes]) -> None:
        try:
            response = await stubs[i % len(stubs)].SubmitBatch(request, timeout=30)
        except grpc.aio.AioRpcError as exc:  # the whole call (an overloaded node refuses it at once)
            result.refused[exc.code().name] = result.refused.get(exc.code().name, 0) + len(ids)
            for tx_id in ids:
                sent_at.pop(tx_id, None)
            return
        finally:
            slots.release()
        answered = time.perf_counter()
        for tx_id, r in zip(ids, response.results):
            if r.code == 0:
                result.admitted += 1
                if trace_dir and tx_id in sent_at:
                    trace[tx_id] = [sent_at[tx_id], answered]
            else:
                sent_at.pop(tx_id, None)
                name = _CODE_NAMES.get(r.code, str(r.code))
                result.refused[name] = result.refused.get(name, 0) + 1

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)  # the stream is open before the first commit
    start = time.perf_counter()
    window = (start + warmup_s, start + duration_s)
    nodes_cpu, own_cpu = [cpu_seconds(p) for p in node_pids], time.process_time()
    calls = []
    for i, (request, ids) in enumerate(requests):
        due = start + i * batch / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        now = time.perf_counter()
        for tx_id in ids:
            sent_at[tx_id] = now
        result.offered += len(ids)
        calls.append(asyncio.create_task(send(i, request, ids)))
    await asyncio.gather(*calls)
    if node_pids:
        offered_s = time.perf_counter() - start
        result.cpu_cores = {
            "nodes": round(sum(cpu_seconds(p) - c for p, c in zip(node_pids, nodes_cpu)) / offered_s, 2),
            "generator": round((time.process_time() - own_cpu) / offered_s, 2)}
    result.window_s = window[1] - window[0]
    deadline = time.perf_counter() + drain_s
    while time.perf_counter() < deadline and result.committed < result.admitted:
        await asyncio.sleep(0.1)
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    for c in channels:
        await c.close()
    if trace_dir:
        with open(os.path.join(trace_dir, f"client-{run}-{rate:.0f}.json"), "w") as f:
            json.dump([[k.hex()[:16], *v] for k, v in trace.items()], f)
    return result
