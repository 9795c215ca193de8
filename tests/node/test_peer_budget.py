"""Issue 7 §3: what one peer can make a node hold is bounded in bytes. The
verification pool is stalled (its jobs never run) to isolate the budget: a
validator that keeps sending request batches has one verification job in the
pool and at most its byte budget waiting; the rest is dropped and counted."""
from __future__ import annotations

import asyncio
import concurrent.futures
import os

from nacl.signing import SigningKey

from consensus import messages as m
from consensus.signing import with_signature
from node import codec
from node.chain import ChainNode
from node.contracts import registry_for
from node.crypto import Ed25519Signer
from node.genesis import make_genesis
from node.ledger import Ledger
from node.transport import Transport
from node.tx import Transaction


class StalledPool(concurrent.futures.Executor):
    def __init__(self) -> None:
        self.jobs = 0

    def submit(self, fn, /, *args, **kwargs):
        self.jobs += 1
        return concurrent.futures.Future()  # never runs


def test_one_peer_holds_at_most_its_byte_budget_and_one_verification_job(tmp_path) -> None:
    keys = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
    genesis = make_genesis("demo", [(f"d{i}", keys[i].verify_key, f"127.0.0.1:{7001 + i}") for i in range(4)],
                           batch_bytes_max=64 << 10, in_flight_blocks_max=2)
    ledger = Ledger(str(tmp_path / "ledger"), "demo", genesis.hash)
    pool = StalledPool()

    async def flood() -> ChainNode:
        chain = ChainNode(genesis=genesis, department="d1", signing_key=keys[1], ledger=ledger,
                          registry=registry_for(["kv"]), tick_ms=10, transport=Transport(16, 4 << 20),
                          mempool_max=1000, pool=pool)
        for b in range(40):
            requests = tuple(codec.request_from_tx(Transaction(
                chain_id="demo", sender=bytes(32), nonce=b * 100 + i, contract="kv", method="put",
                payload=b"x" * 100, signature=os.urandom(64))) for i in range(100))
            batch = with_signature(m.RequestBatch(chain_id="demo", requests=requests, replica=2),
                                   Ed25519Signer(keys[2]))
            chain.deliver(batch, codec.envelope_to_proto(batch).ByteSize())
        return chain

    chain = asyncio.run(flood())
    ledger.close()
    budget = (2 + 2) * (64 << 10)  # (in_flight_blocks_max + 2) x batch_bytes_max
    held = chain._buffered[2]  # bytes charged: the batch in the pool and those waiting behind it
    biggest = max(item.size for item, _ in chain._waiting[2])
    assert pool.jobs == 1
    assert budget - biggest < held <= budget
    kept = len(chain._waiting[2]) + 1  # + the one in the pool
    assert chain.counters["dropped: peer budget exceeded"] == 40 - kept > 0
