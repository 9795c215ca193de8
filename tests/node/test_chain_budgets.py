"""Issue 7 §3 and §6: what one peer can make a node hold is bounded in bytes,
and admission sheds load before any check when the node is overloaded. The
verification pool is stalled (its jobs never run) to isolate the rule under
test: what reaches the pool is counted, nothing is verified."""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from types import SimpleNamespace

import grpc
import pytest

from nacl.signing import SigningKey

from consensus import messages as m
from consensus.signing import with_signature
from node.core import codec
from node.chain.admission import Outcome
from node.chain import chain_node
from node.chain.chain_node import ChainNode
from node.contracts import registry_for
from node.core.crypto import Ed25519Signer
from node.core.genesis import make_genesis
from node.ledger.ledger import Ledger
from node.pb import client_pb2
from node.services.client_api import ClientService
from node.net.transport import PeerLink, Transport
from node.core.tx import Transaction, sign_transaction


class StalledPool(concurrent.futures.Executor):
    def __init__(self) -> None:
        self.jobs = 0

    def submit(self, fn, /, *args, **kwargs):
        self.jobs += 1
        return concurrent.futures.Future()  # never runs


KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]


@pytest.fixture
def make_chain(tmp_path):
    ledgers = []

    def make(pool, **params) -> ChainNode:
        genesis = make_genesis("demo", [(f"d{i}", KEYS[i].verify_key, f"127.0.0.1:{7001 + i}") for i in range(4)],
                               **params)
        ledgers.append(Ledger(str(tmp_path / f"ledger{len(ledgers)}"), "demo", genesis.hash, create=True))
        return ChainNode(genesis=genesis, department="d1", signing_key=KEYS[1], ledger=ledgers[-1],
                         registry=registry_for("demo", [("kv", 1)]), tick_ms=10, transport=Transport(16, 4 << 20),
                         mempool_max=1000, pool=pool)

    yield make
    for ledger in ledgers:
        ledger.close()


def test_one_peer_holds_at_most_its_byte_budget_and_one_verification_job(make_chain) -> None:
    pool = StalledPool()

    async def flood() -> ChainNode:
        chain = make_chain(pool, batch_bytes_max=64 << 10, in_flight_blocks_max=2)
        for b in range(40):
            requests = tuple(codec.request_from_tx(Transaction(
                chain_id="demo", sender=bytes(32), nonce=b * 100 + i, contract="kv", method="put",
                payload=b"x" * 100, signature=os.urandom(64))) for i in range(100))
            batch = with_signature(m.RequestBatch(chain_id="demo", requests=requests, replica=2),
                                   Ed25519Signer(KEYS[2]))
            chain.deliver(batch, codec.envelope_to_proto(batch).ByteSize())
        return chain

    chain = asyncio.run(flood())
    budget = (2 + 2) * (64 << 10)  # (in_flight_blocks_max + 2) x batch_bytes_max
    held = chain._buffered[2]  # bytes charged: the batch in the pool and those waiting behind it
    biggest = max(item.size for item, _ in chain._waiting[2])
    assert pool.jobs == 1
    assert budget - biggest < held <= budget
    kept = len(chain._waiting[2]) + 1  # + the one in the pool
    assert chain.counters["dropped: peer budget exceeded"] == 40 - kept > 0


def test_outbound_link_queue_is_bounded_in_bytes() -> None:
    link = PeerLink("127.0.0.1:1", queue_max=1000, message_bytes_max=1 << 20)  # not started: nothing drains it
    for _ in range(20):
        link.send(b"x" * (1 << 20))
    assert link.queued_bytes == 8 << 20 and link.queue.qsize() == 8 and link.dropped == 12


def _tx(nonce: int) -> Transaction:
    return sign_transaction(KEYS[0], chain_id="demo", nonce=nonce, contract="kv", method="put",
                            payload=b'{"key": "a", "value": "1"}')


def _wait_for_commit(chain: ChainNode, count: int, *, now: float, admitted: float) -> None:
    """`count` transactions admitted here at `admitted` wait for commit, and
    as many committed in the last RATE_WINDOW_S (so count / 2 a second)."""
    for i in range(count):
        chain._open[bytes([i % 256, i // 256]) * 16] = admitted
    chain._drained.append((now, count))
    chain._drained_total = count


def _fake_chain_clock(monkeypatch) -> list[float]:
    """chain_node's monotonic clock reads the returned list's one element (1000.0 to start)."""
    clock = [1000.0]
    monkeypatch.setattr(chain_node, "time", SimpleNamespace(
        monotonic=lambda: clock[0], perf_counter=time.perf_counter, time_ns=time.time_ns))
    return clock


class Aborted(Exception):
    pass


class Context:
    async def abort(self, code, details):
        self.code, self.details = code, details
        raise Aborted


def test_overloaded_node_sheds_submissions_before_any_check(make_chain) -> None:
    """200 transactions admitted here wait for commit while the last 2 s
    committed 100/s of them (2 s of work, ADMIT_WAIT_S is far less): a new
    Submit, a SubmitBatch (as one call) and a transaction through admit() are
    refused with RESOURCE_EXHAUSTED and never reach the verification pool."""
    pool = StalledPool()

    async def offer():
        chain = make_chain(pool)
        service = ClientService("d1", {"demo": chain})
        first = chain.admit(_tx(0))  # not overloaded: goes to the pool (which never answers)
        for _ in range(3):
            await asyncio.sleep(0)
        assert pool.jobs == 1 and not first.done()
        now = time.monotonic()
        _wait_for_commit(chain, 200, now=now, admitted=now)
        refused = await chain.admit(_tx(1))
        assert refused.outcome is Outcome.OVERLOADED and "overloaded" in refused.error
        context = Context()
        with pytest.raises(Aborted):
            await service.Submit(client_pb2.SubmitRequest(tx=codec.tx_to_proto(_tx(2))), context)
        assert context.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        context = Context()  # a batch for overloaded chains only: refused as one call
        with pytest.raises(Aborted):
            await service.SubmitBatch(client_pb2.SubmitBatchRequest(
                txs=[codec.tx_to_proto(_tx(3)), codec.tx_to_proto(_tx(4))]), context)
        assert context.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert context.details.startswith("demo: overloaded: 201 transactions admitted here wait for commit")
        # A batch that also names an unknown chain takes the ordinary path:
        # still one result per transaction, each with its own reason.
        other = codec.tx_to_proto(_tx(5))
        other.chain_id = "nope"
        mixed = await service.SubmitBatch(client_pb2.SubmitBatchRequest(
            txs=[codec.tx_to_proto(_tx(6)), other]), Context())
        assert [r.code for r in mixed.results] == [grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
                                                   grpc.StatusCode.FAILED_PRECONDITION.value[0]]
        assert mixed.results[0].tx_id == _tx(6).id
        return chain

    chain = asyncio.run(offer())
    assert pool.jobs == 1 and chain.counters["rejected: overloaded"] == 5


def test_a_pressed_node_paces_its_calls_below_the_backlog_floor(make_chain, monkeypatch) -> None:
    """Once the backlog rule has refused, the node is pressed: a call that
    the backlog rule alone would admit (50 admitted here wait, under the
    floor of 100) is refused by pacing when it comes right after another
    call, with a message that says so (node/chain/pacer.py), and admitted
    once the pace allows it. The chain's clock is a fake one."""
    clock = _fake_chain_clock(monkeypatch)
    pool = StalledPool()

    async def offer():
        chain = make_chain(pool)
        _wait_for_commit(chain, 200, now=clock[0], admitted=clock[0] - 1.0)  # waited long: pressed, no slow start
        assert (await chain.admit(_tx(1))).outcome is Outcome.OVERLOADED
        chain._open.clear()  # they committed: the backlog rule would admit again
        clock[0] += 0.001
        call = [chain.admit(_tx(10 + i)) for i in range(50)]  # a call passes whole
        for _ in range(3):
            await asyncio.sleep(0)
        assert not any(f.done() for f in call) and pool.jobs == 1  # admitted into the (stalled) pool
        clock[0] += 0.4  # the pace, 100 tx/s, lets the next call in 0.5 s after 50
        paced = await chain.admit(_tx(3))
        assert paced.outcome is Outcome.OVERLOADED
        assert paced.error.startswith("overloaded: admitting about 100 transactions a second here")
        clock[0] += 0.2
        later = chain.admit(_tx(4))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not later.done() and pool.jobs == 2
        return chain

    chain = asyncio.run(offer())
    assert chain.counters["rejected: overloaded"] == 2


def test_a_node_with_no_recent_commit_admits_one_call_until_it_commits(make_chain) -> None:
    """Nothing admitted here committed in the last RATE_WINDOW_S, so the node
    knows no rate: it admits ADMIT_ALWAYS (one call of 100) and refuses the
    101st at once, though none has waited ADMIT_WAIT_S yet. At the onset of
    overload every node used to admit all it was offered for that long."""
    pool = StalledPool()

    async def offer():
        chain = make_chain(pool)
        call = [chain.admit(_tx(i)) for i in range(chain_node.ADMIT_ALWAYS)]
        for _ in range(3):
            await asyncio.sleep(0)
        assert not any(f.done() for f in call) and pool.jobs == 1
        answer = chain.admit(_tx(1000))
        assert answer.done()  # refused at once, not queued behind the pool
        refused = answer.result()
        assert refused.outcome is Outcome.OVERLOADED
        assert refused.error == ("overloaded: 100 transactions admitted here wait for their first commit; "
                                 "retry later")
        assert chain._admission_pacer.rate is None  # not pressed: a cold start is not overload
        return chain

    chain = asyncio.run(offer())
    assert chain.counters["rejected: overloaded"] == 1


def test_a_node_refuses_while_its_oldest_admitted_transaction_has_waited_too_long(make_chain, monkeypatch) -> None:
    """150 admitted here wait, under the 0.1 s of work at 2,000 tx/s that the
    commit rate allows, but the oldest (still known to the replica) has
    waited 0.5 s, more than ADMIT_WAIT_S: refused, with its age. The
    chain's clock is a fake one."""
    now = _fake_chain_clock(monkeypatch)[0]

    async def offer():
        chain = make_chain(StalledPool())
        monkeypatch.setattr(chain.replica, "knows_request", lambda tx_id: True)
        _wait_for_commit(chain, 4000, now=now, admitted=now)
        chain._open = type(chain._open)(list(chain._open.items())[:150])
        chain._open[next(iter(chain._open))] = now - 0.5
        answer = chain.admit(_tx(1))
        assert answer.done()  # refused at once
        return answer.result()

    refused = asyncio.run(offer())
    assert refused.outcome is Outcome.OVERLOADED
    assert refused.error.startswith("overloaded: the oldest of 150 transactions admitted here has waited 0.5 s")
