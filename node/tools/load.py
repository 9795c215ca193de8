"""Load generator: signed kv transactions over streaming submit.

Several client keys each keep one SubmitStream (wait_commit) open to a node,
spread across the nodes. Transactions are signed ahead of time, so signing
does not limit the offered rate. Only transactions whose commit the node
confirmed (a receipt came back) count as committed.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field

import grpc
from nacl.signing import SigningKey

from node.core import codec
from node.net.client import aio_channel
from node.pb import client_pb2, client_pb2_grpc
from node.net.tls import Material
from node.core.tx import sign_transaction

SIGN_AHEAD_S = 1.0


@dataclass
class LoadResult:
    offered_rate: float
    duration_s: float
    submitted: int = 0
    committed: int = 0
    rejected: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 1)

    def to_json(self) -> dict:
        return {"offered_rate": self.offered_rate, "submitted": self.submitted, "committed": self.committed,
                "rejected": self.rejected, "committed_tps": round(self.committed / self.duration_s, 1),
                "latency_ms": {"p50": self.percentile(50), "p95": self.percentile(95), "p99": self.percentile(99)},
                "duration_s": round(self.duration_s, 2)}


def _signed_batch(key: SigningKey, chain: str, start_nonce: int, count: int, client: int) -> list:
    return [codec.tx_to_proto(sign_transaction(
        key, chain_id=chain, nonce=start_nonce + i, contract="kv", method="put",
        payload=json.dumps({"key": f"c{client}-{start_nonce + i}", "value": "v"}).encode()))
        for i in range(count)]


async def _client(index: int, address: str, chain: str, rate: float, duration_s: float, result: LoadResult,
                  sent_at: dict[bytes, float], run_id: int, tls: Material | None) -> None:
    key = SigningKey(bytes([index % 256]) * 16 + run_id.to_bytes(16, "big"))
    interval = 1.0 / rate
    async with aio_channel(address, tls) as channel:
        client = client_pb2_grpc.ClientStub(channel)

        async def requests():
            start = time.perf_counter()
            nonce = 0
            while True:
                elapsed = time.perf_counter() - start
                if elapsed >= duration_s:
                    return
                due = int(elapsed / interval) + 1 - nonce  # how many we owe by now
                if due <= 0:
                    await asyncio.sleep(interval)
                    continue
                for tx in _signed_batch(key, chain, nonce, min(due, 200), index):
                    nonce += 1
                    result.submitted += 1
                    sent_at[codec.tx_from_proto(tx).id] = time.perf_counter()
                    yield client_pb2.SubmitRequest(tx=tx, wait_commit=True, timeout_ms=30_000)
                await asyncio.sleep(0)

        try:
            async for r in client.SubmitStream(requests()):
                if r.code != 0:
                    result.rejected += 1
                    name = grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == r.code)).name
                    result.errors[name] = result.errors.get(name, 0) + 1
                elif r.committed:
                    result.committed += 1
                    sent = sent_at.pop(r.tx_id, None)
                    if sent is not None:
                        result.latencies_ms.append((time.perf_counter() - sent) * 1000)
        except grpc.aio.AioRpcError as exc:
            result.errors[exc.code().name] = result.errors.get(exc.code().name, 0) + 1


async def _progress(result: LoadResult, duration_s: float, started: float) -> None:
    width = 30
    while True:
        await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - started
        done = min(1.0, elapsed / duration_s)
        bar = "#" * int(done * width) + "." * (width - int(done * width))
        sys.stderr.write(f"\r[{bar}] {elapsed:5.1f}s committed {result.committed} "
                         f"({result.committed / max(elapsed, 1e-9):.0f} tx/s) p50 {result.percentile(50)} ms   ")
        sys.stderr.flush()


async def run_load(addresses: list[str], *, chain: str, rate: float, duration_s: float, clients: int = 8,
                   progress: bool = True, drain_s: float = 10.0, tls: Material | None = None) -> LoadResult:
    """Offer `rate` tx/s for `duration_s`, then wait up to `drain_s` for commits
    (over TLS with the CA in `tls`, plaintext when it is None)."""
    result = LoadResult(offered_rate=rate, duration_s=duration_s)
    sent_at: dict[bytes, float] = {}
    run_id = time.time_ns()
    started = time.perf_counter()
    ticker = asyncio.create_task(_progress(result, duration_s, started)) if progress else None
    try:
        await asyncio.wait_for(asyncio.gather(*(
            _client(i, addresses[i % len(addresses)], chain, rate / clients, duration_s, result, sent_at, run_id, tls)
            for i in range(clients))), duration_s + drain_s)
    except asyncio.TimeoutError:
        result.errors["not committed before drain timeout"] = len(sent_at)
    finally:
        if ticker:
            ticker.cancel()
            sys.stderr.write("\n")
    result.duration_s = time.perf_counter() - started
    return result
