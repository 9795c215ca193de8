"""A Byzantine validator's flood, for scripts/bench --byzantine.

Holds a real validator key and sends, on peer streams to the other
validators, junk that passes the cheap checks (known sender, chain, view,
envelope signature): request batches whose transactions carry invalid
signatures, PrePrepares from a non-primary, ViewChanges for huge views,
Statuses claiming huge heights, FetchBlocks for everything, and unsigned
ViewChanges. Each kind goes at a fixed rate per target; it stops after
`duration_s`. Only for loopback benchmarks: the addresses come from a local
network's genesis.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import time

import grpc

from consensus import messages as m
from consensus.signing import with_signature
from node.core import codec
from node.core.crypto import Ed25519Signer
from node.core.tx import Transaction
from node.net.transport import DELIVER_METHOD

VARIANTS = 16  # distinct messages per kind, cycled (identical ones might be deduplicated for free)
RATES = {  # messages per second per target
    "junk request batch": 20,
    "pre-prepare from a non-primary": 20,
    "huge-view view-change": 200,
    "huge-height status": 200,
    "fetch everything": 100,
    "unsigned view-change": 200,
}


def _junk_requests(sender: bytes, chain: str, base: int, count: int) -> tuple[m.Request, ...]:
    return tuple(codec.request_from_tx(Transaction(
        chain_id=chain, sender=sender, nonce=base + i, contract="kv", method="put",
        payload=b'{"key": "junk", "value": "x"}', signature=os.urandom(64))) for i in range(count))


def build(signing_key, me: int, chain: str, txs_per_batch: int = 1000) -> dict[str, list[bytes]]:
    """Serialized envelopes, VARIANTS per kind."""
    signer = Ed25519Signer(signing_key)
    sign = lambda msg: with_signature(msg, signer)  # noqa: E731
    sender = bytes(signing_key.verify_key)
    huge = 1 << 40
    kinds: dict[str, list[m.Message]] = {k: [] for k in RATES}
    for v in range(VARIANTS):
        kinds["junk request batch"].append(sign(m.RequestBatch(
            chain_id=chain, requests=_junk_requests(sender, chain, v * txs_per_batch, txs_per_batch), replica=me)))
        p = m.Proposal(chain_id=chain, seq=1, proposer=me, timestamp_ms=0,
                       requests=_junk_requests(sender, chain, huge + v * txs_per_batch, txs_per_batch))
        kinds["pre-prepare from a non-primary"].append(sign(m.PrePrepare(
            chain_id=chain, view=0, seq=1, digest=p.digest, proposal=p, replica=me)))
        kinds["huge-view view-change"].append(sign(m.ViewChange(
            chain_id=chain, view=huge + v, checkpoint=m.GENESIS_CHECKPOINT, prepared=(), replica=me)))
        kinds["huge-height status"].append(sign(m.Status(chain_id=chain, view=0, executed_seq=huge + v, replica=me)))
        kinds["fetch everything"].append(sign(m.FetchBlocks(chain_id=chain, from_seq=1, to_seq=huge + v,
                                                            replica=me)))
        kinds["unsigned view-change"].append(m.ViewChange(
            chain_id=chain, view=v % 2, checkpoint=m.GENESIS_CHECKPOINT, prepared=(), replica=me))
    return {k: [codec.envelope_to_proto(msg).SerializeToString() for msg in msgs] for k, msgs in kinds.items()}


async def _stream(address: str, envelopes: dict[str, list[bytes]], duration_s: float, sent: dict[str, int]) -> None:
    """One peer stream: every kind at its rate, in ticks of 10 ms."""
    tick = 0.01
    cycles = {k: itertools.cycle(v) for k, v in envelopes.items()}
    owed = dict.fromkeys(envelopes, 0.0)

    async def outgoing():
        end = time.perf_counter() + duration_s
        while time.perf_counter() < end:
            for kind in envelopes:
                owed[kind] += RATES[kind] * tick
                while owed[kind] >= 1:
                    owed[kind] -= 1
                    sent[kind] += 1
                    yield next(cycles[kind])
            await asyncio.sleep(tick)

    options = [("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        deliver = channel.stream_unary(DELIVER_METHOD)  # requests are serialized envelopes already
        try:
            await deliver(outgoing(), timeout=duration_s + 10)
        except grpc.aio.AioRpcError:
            pass  # the target ended the stream; the flood goes on to the others


async def flood(signing_key, me: int, chain: str, addresses: list[str], duration_s: float,
                on_ready=lambda: None) -> dict:
    """Build the junk (then call `on_ready`), flood every address for
    `duration_s`; returns messages sent per kind and the CPU seconds used."""
    envelopes = build(signing_key, me, chain)
    on_ready()
    sent = dict.fromkeys(envelopes, 0)
    before = os.times()
    await asyncio.gather(*(_stream(a, envelopes, duration_s, sent) for a in addresses))
    after = os.times()
    return {"sent": sent, "cpu_s": round(after.user + after.system - before.user - before.system, 1)}
