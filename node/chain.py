"""One chain inside a node process.

A single asyncio task owns the chain's Replica. It takes every event that is
waiting, steps them one by one and writes what each Ready persists and each
committed block (one LevelDB batch per block) unsynced; then one fsync makes
the whole group durable, and only then do its messages leave and its clients
hear of their commits (group commit: DESIGN.md's persist -> send -> apply
order holds for the group, at one fsync instead of three per block).
LevelDB appends every write to one log, so the final synced write covers
all earlier ones. Stepping is never interrupted: cancellation can only land
while the task waits for input or for the fsync.

Client transactions are admitted in batches: whatever arrives while the
loop is busy is verified together in a worker thread (Ed25519 off the event
loop) and enters the replica as one RequestsSubmitted event.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor as ThreadPool
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc

from consensus import events as ev
from consensus import messages as m
from consensus.replica import Replica
from node import codec
from node.crypto import Ed25519Signer, Ed25519Verifier
from node.execution import ContractRegistry, Executor, Receipt
from node.failpoints import fail_point
from node.genesis import Genesis
from node.ledger import Ledger
from node.transport import Transport
from node.tx import Transaction, validate_shape, verify_signature

log = logging.getLogger("govchain.chain")

VERIFIED_CACHE_MAX = 200_000
INBOX_PEER_MAX = 20_000
GROUP_EVENTS_MAX = 256


@dataclass
class Group:
    """What a group of steps releases after its one fsync."""

    sync: bool = False
    messages: list = field(default_factory=list)  # (message, to)
    receipts: list = field(default_factory=list)
    blocks: list = field(default_factory=list)  # (header, receipts)


@dataclass(frozen=True)
class Admission:
    tx_id: bytes
    code: grpc.StatusCode
    error: str = ""


def _verify_requests(requests: list[m.Request]) -> list[bytes]:
    """Keys (id and body hash, m.tx_leaf) of the requests that decode to a
    correctly signed transaction. Keyed by the body too, so a cached id never
    vouches for other bytes under it."""
    good = []
    for request in requests:
        try:
            tx = codec.tx_from_request(request)
        except codec.CodecError:
            continue
        if validate_shape(tx) is None and verify_signature(tx):
            good.append(m.tx_leaf(request))
    return good


class ChainNode:
    def __init__(self, *, genesis: Genesis, department: str, signing_key, ledger: Ledger,
                 registry: ContractRegistry, tick_ms: int, transport: Transport, mempool_max: int,
                 pool: ThreadPool, message_bytes_max: int = 4 << 20, publisher=None,
                 log_drop: Callable[[str, str], None] = lambda kind, detail: None,
                 on_failure: Callable[[BaseException], None] = lambda exc: None) -> None:
        self.chain_id = genesis.chain_id
        self.genesis = genesis
        self.ledger = ledger
        self.counters: Counter[str] = Counter()
        config = genesis.replica_config(department, tick_ms)
        self.index = config.replica
        self._departments = [v.department for v in genesis.validators]
        self._addresses = [v.address for v in genesis.validators]
        self._transport = transport
        self._pool = pool
        # fsync has a thread of its own: a flood of signature checks must not delay commits.
        self._fsync_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"fsync-{self.chain_id}")
        self._publisher = publisher
        self._log_drop = log_drop
        self._on_failure = on_failure
        self._tick_s = tick_ms / 1000
        self._mempool_max = mempool_max
        # A BlocksReply holds blocks up to half the message limit, and always
        # one: genesis.check_message_bytes proved that one block fits.
        self._serve_bytes_max = message_bytes_max // 2
        self._executor = Executor(self.chain_id, registry, ledger)
        self.replica = Replica(
            config, Ed25519Signer(signing_key),
            Ed25519Verifier([v.public_key_bytes for v in genesis.validators]),
            validate_request=self._validate_request, is_committed=ledger.has_tx,
            restored=ledger.restored_state())
        self._inbox: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._waiters: dict[bytes, list[asyncio.Future]] = {}
        self._admitting: list[tuple[Transaction, asyncio.Future]] = []
        self._new_block = asyncio.Event()
        # Clients read only what is fsynced: blocks above this may still be
        # in the OS cache only (the group's fsync is under way).
        self.durable_height = ledger.height
        self._tasks: list[asyncio.Task] = []
        self.stopping = False

    # ---- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for i, address in enumerate(self._addresses):
            if i != self.index:
                self._transport.link(address)
        self._tasks = [loop.create_task(self._run(), name=f"chain {self.chain_id}"),
                       loop.create_task(self._ticker(), name=f"ticker {self.chain_id}")]

    def fail_stop(self, exc: BaseException) -> None:
        """Damage found outside the chain's task (a client read): stop the node."""
        log.error("chain %s stopped: %s", self.chain_id, exc)
        self._on_failure(exc)

    async def stop(self) -> None:
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # An fsync cancelled from the loop's side may still run in its thread:
        # let it finish before the daemon closes LevelDB.
        await asyncio.get_running_loop().run_in_executor(None, self._fsync_thread.shutdown, True)
        for futures in self._waiters.values():
            for f in futures:
                if not f.done():
                    f.cancel()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            self._inbox.put_nowait(ev.Tick(now_ms=time.time_ns() // 1_000_000))

    async def _run(self) -> None:
        while True:
            events = [await self._inbox.get()]
            while not self._inbox.empty() and len(events) < GROUP_EVENTS_MAX:
                events.append(self._inbox.get_nowait())
            try:
                await self._release(self._step_group(events))
            except Exception as exc:
                # A bug or a failing disk, never bad input (the replica does not
                # raise on peer data): fail-stop rather than risk a diverging
                # ledger or acknowledging what was not written.
                log.exception("chain %s stopped: internal error", self.chain_id)
                self._on_failure(exc)
                raise

    def _step_group(self, events: list[ev.Event]) -> "Group":
        """Step every event and write what each Ready persists, unsynced.
        Nothing leaves the node yet: see _release."""
        group = Group()
        while events:
            ready = self.replica.step(events.pop(0))
            if ready.persist:
                self.ledger.persist_records(ready.persist, sync=False)
                fail_point("persist")
                group.sync = group.sync or ready.sync
            group.messages.extend((send.message, send.to) for send in ready.messages)
            for block in ready.committed:
                events.append(self._commit(block, group))
            for serve in ready.serve:
                self._serve(serve, group)
            for reason in ready.dropped:
                self.counters["dropped: " + reason] += 1
                self._log_drop(reason, f"chain {self.chain_id}: peer message dropped")
            self.replica.advance(ready)
        return group

    async def _release(self, group: "Group") -> None:
        """Group commit: one fsync for the whole group, in a worker thread so
        the loop keeps reading the network; then send and acknowledge."""
        if group.sync or group.blocks:
            fail_point("before-sync")
            await asyncio.get_running_loop().run_in_executor(self._fsync_thread, self.ledger.sync)
            fail_point("after-sync")
            self.durable_height = self.ledger.height
        for message, to in group.messages:
            self._send(message, to)
        for receipt in group.receipts:
            for future in self._waiters.pop(receipt.tx_id, ()):
                if not future.done():
                    future.set_result(receipt)
        if group.receipts:
            fail_point("after-ack")
        if group.blocks:
            self._new_block.set()
            self._new_block = asyncio.Event()
            if self._publisher is not None:
                for header, receipts in group.blocks:
                    self._publisher.publish_block(self.chain_id, block_summary(header, receipts))

    def _send(self, message: m.Message, to: int | None) -> None:
        envelope = codec.envelope_to_proto(message).SerializeToString()
        targets = range(len(self._addresses)) if to is None else (to,)
        for i in targets:
            if i != self.index:
                self._transport.link(self._addresses[i]).send(envelope)

    def _commit(self, block: m.CommittedBlock, group: "Group") -> ev.BlockExecuted:
        result = self._executor.execute_block(block, self.ledger.tip_header)
        self.ledger.commit_block(block, result.header, result.receipts, result.state_writes, sync=False)
        fail_point("commit-block")
        group.receipts.extend(result.receipts)
        group.blocks.append((result.header, result.receipts))
        return ev.BlockExecuted(seq=block.seq, block_hash=result.header.hash)

    def _serve(self, serve: ev.ServeBlocks, group: "Group") -> None:
        blocks, size = [], 0
        for block in self.ledger.blocks(serve.from_seq, serve.to_seq):
            size += codec.to_proto(block).ByteSize() + 16  # + its field tag and length
            if blocks and size > self._serve_bytes_max:
                break
            blocks.append(block)
        group.messages.append((m.BlocksReply(chain_id=self.chain_id, blocks=tuple(blocks), replica=self.index),
                               serve.to))

    # ---- peer input ---------------------------------------------------------

    def deliver(self, message: m.Message) -> None:
        """A decoded peer message. Requests it carries are signature-checked in
        a worker thread first, so the replica's own check is a cache hit."""
        if self._inbox.qsize() >= INBOX_PEER_MAX:
            self.counters["dropped: inbox full"] += 1
            return
        match message:
            case m.PrePrepare():
                requests = message.proposal.requests
            case m.RequestBatch():
                requests = message.requests
            case _:
                requests = ()
        unknown = [r for r in requests if m.tx_leaf(r) not in self._verified]
        if not unknown:
            self._inbox.put_nowait(ev.MessageReceived(message=message))
            return
        future = asyncio.get_running_loop().run_in_executor(self._pool, _verify_requests, unknown)

        def verified(f: asyncio.Future) -> None:
            if f.cancelled() or f.exception() is not None:
                return
            self._remember(f.result())
            self._inbox.put_nowait(ev.MessageReceived(message=message))

        future.add_done_callback(verified)

    def _remember(self, keys) -> None:
        for key in keys:
            self._verified[key] = None
        while len(self._verified) > VERIFIED_CACHE_MAX:
            self._verified.popitem(last=False)

    def _validate_request(self, request: m.Request) -> bool:
        key = m.tx_leaf(request)
        if key in self._verified:
            return True
        ok = bool(_verify_requests([request]))
        if ok:
            self._remember([key])
        return ok

    # ---- client input -------------------------------------------------------

    def admit(self, tx: Transaction) -> asyncio.Future:
        """Queue one transaction for admission; resolves to an Admission."""
        future = asyncio.get_running_loop().create_future()
        if not self._admitting:
            asyncio.get_running_loop().call_soon(self._flush_admissions)
        self._admitting.append((tx, future))
        return future

    def _flush_admissions(self) -> None:
        batch, self._admitting = self._admitting, []
        asyncio.get_running_loop().create_task(self._admit_batch(batch))

    async def _admit_batch(self, batch: list[tuple[Transaction, asyncio.Future]]) -> None:
        """Cheap checks first (shape, replay, room in the mempool), so refused
        load costs no signature check; then one pooled verification."""
        results: dict[int, Admission] = {}
        candidates: dict[int, m.Request] = {}
        seen: set[bytes] = set()
        room = self._mempool_max - self.replica.pending_count
        for i, (tx, _) in enumerate(batch):
            problem = validate_shape(tx)
            if problem:
                results[i] = Admission(tx.id, grpc.StatusCode.INVALID_ARGUMENT, problem)
                continue
            tx_id = tx.id
            if self.stopping:
                results[i] = Admission(tx_id, grpc.StatusCode.UNAVAILABLE, "node is shutting down; retry on another node")
            elif tx_id in seen or self.replica.knows_request(tx_id):
                results[i] = Admission(tx_id, grpc.StatusCode.ALREADY_EXISTS,
                                       f"transaction {tx_id.hex()} was already submitted (replay)")
            elif len(candidates) >= room:
                self.counters["rejected: mempool full"] += 1
                results[i] = Admission(tx_id, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                       f"mempool full ({self._mempool_max} transactions); retry later")
            else:
                seen.add(tx_id)
                candidates[i] = codec.request_from_tx(tx)
        good = set(await asyncio.get_running_loop().run_in_executor(
            self._pool, _verify_requests, list(candidates.values()))) if candidates else set()
        self._remember(good)
        admitted = []
        for i, request in candidates.items():
            if m.tx_leaf(request) in good:
                admitted.append(request)
                results[i] = Admission(request.id, grpc.StatusCode.OK)
            else:
                results[i] = Admission(request.id, grpc.StatusCode.UNAUTHENTICATED,
                                       "signature does not match sender key and transaction content")
        if admitted:
            self._inbox.put_nowait(ev.RequestsSubmitted(requests=tuple(admitted)))
        for i, (_, future) in enumerate(batch):
            if not future.done():
                future.set_result(results[i])

    def wait_committed(self, tx_id: bytes) -> asyncio.Future:
        """Resolves to the Receipt once the transaction's block is on disk."""
        future = asyncio.get_running_loop().create_future()
        receipt = self.ledger.receipt(tx_id)
        if receipt is not None and receipt.height <= self.durable_height:
            future.set_result(receipt)
        else:
            self._waiters.setdefault(tx_id, []).append(future)
        return future

    async def wait_for_height(self, height: int) -> None:
        while self.durable_height < height:
            await self._new_block.wait()

    # ---- status -------------------------------------------------------------

    def status(self) -> dict:
        r = self.replica
        tip = self.ledger.header(self.durable_height) if self.durable_height else None
        peers = sorted(self._departments[i] for i, a in enumerate(self._addresses)
                       if i != self.index and self._transport.connected(a))
        return {"chain_id": self.chain_id, "height": self.durable_height, "view": r.view,
                "primary": r.primary, "view_changing": r.view_changing, "peers_connected": peers,
                "mempool": r.pending_count, "head_hash": tip.hash if tip else b"", "replica": self.index,
                "dropped": dict(sorted(self.counters.items()))}


def block_summary(header, receipts: tuple[Receipt, ...]) -> dict:
    return {"chain": header.chain_id, "height": header.height, "hash": header.hash.hex(),
            "proposer": header.proposer, "timestamp_ms": header.timestamp_ms,
            "txs": len(receipts), "ok": sum(1 for r in receipts if r.status == "OK"),
            "state_root": header.state_root.hex()}
