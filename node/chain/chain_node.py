"""One chain inside a node process.

A single asyncio task owns the chain's Replica. It takes every event that is
waiting, steps them one by one and writes what each Ready persists and each
committed block (one LevelDB batch per block) unsynced; then one fsync makes
the whole group durable, and only then do its messages leave and its clients
hear of their commits (group commit: docs/design.md's persist -> send -> apply
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
import json
import logging
import os
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Executor as ThreadPool
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from consensus import events as ev
from consensus import messages as m
from consensus.metadata import ACCEPT, WAIT, Verdict, reject
from consensus.replica import Replica
from node.core import codec
from node.chain.admission import Admission, Outcome, screen
from node.chain.pacer import CALL, AdmissionPacer, PeakRate
from node.chain.stats import COMMIT_LATENCY_BUCKETS_S, FSYNC_BUCKETS_S, Histogram
from node.identity.citizens import AUTHN_CHAIN
from node.identity.signers import CATALOG_CHAIN, Read
from node.core.crypto import Ed25519Signer, Ed25519Verifier
from node.core.receipts import Receipt
from node.ledger.execution import ContractRegistry, Executor
from node.core.failpoints import fail_point
from node.core.genesis import Genesis
from node.ledger.ledger import Ledger, repair_hint
from node.pb import consensus_pb2
from node.ledger.query import StateSnapshot
from node.ledger.storage import StorageCorrupt
from node.net.transport import Transport
from node.core.tx import Transaction, validate_shape, verify_signature

log = logging.getLogger("govchain.chain")

VERIFIED_CACHE_MAX = 200_000
INBOX_PEER_MAX = 20_000
SERVE_BYTES_PER_S = 2 << 20  # per peer: what a FetchBlocks storm can cost us (one full reply a second)
GROUP_EVENTS_MAX = 256
MESSAGE_OVERHEAD_BYTES = 512  # charged per buffered message on top of its size (Python objects)
DISTRUST_S = (1.0, 60.0)  # first and longest time we ignore a peer that signed invalid requests
# Admission under overload: the transactions this node admitted and that
# wait for their commit are kept to about ADMIT_WAIT_S of work at the rate
# they recently committed (RATE_WINDOW_S), and refused while the oldest of
# them has waited that long; ADMIT_ALWAYS of them are always allowed, and
# no more while none of this node's transactions has committed within
# RATE_WINDOW_S (an idle node knows no rate: at the onset of overload every
# node would otherwise admit all it was offered for ADMIT_WAIT_S). The
# excess is refused before any check. Admitted latency under overload is
# then about the nodes' budgets summed over the throughput (Little's law).
# ADMIT_ALWAYS is one 100-transaction SubmitBatch: a smaller floor cuts
# every bulk call even on an idle node (docs/performance.md, "Overload").
ADMIT_WAIT_S = 0.1
ADMIT_ALWAYS = CALL
# A node the backlog rule refused also paces its admissions
# (node/chain/pacer.py), and admits a call only while the backlog its replica
# sees, with the call, stays within BACKLOG_BUDGET_S of the cluster's best
# recent commit rate, or within two calls (one in flight, one coming).
BACKLOG_BUDGET_S = 0.075
RATE_WINDOW_S = 2.0
# Measurement hook (GOVCHAIN_TRACE=dir scripts/bench --overload; see
# docs/performance.md): a directory where each node appends, per transaction
# it admitted, the monotonic times of its RPC's arrival, its admission, the
# proposal holding it (as seen here) and its durable commit here; node.tools.batchload
# adds the client's send, answer and block-seen times. Off by default.
TRACE_DIR = os.environ.get("GOVCHAIN_TRACE")


class Diverged(StorageCorrupt):
    """2f+1 validators signed a history or a state this node's ledger does
    not hold (docs/design.md, "Block binding"): a fork or undetected damage."""


@dataclass
class Group:
    """What a group of steps releases after its one fsync."""

    sync: bool = False
    messages: list = field(default_factory=list)  # (message, to)
    receipts: list = field(default_factory=list)
    blocks: list = field(default_factory=list)  # (header, receipts)


# Why admission refused a transaction, by its outcome (the counters'
# "rejected: <reason>"); OVERLOADED and POOL_FULL are counted where they are found.
_REFUSALS = {Outcome.INVALID: "invalid", Outcome.NOT_FOUND: "not runnable", Outcome.UNAVAILABLE: "shutting down",
             Outcome.ALREADY_EXISTS: "replay", Outcome.PERMISSION_DENIED: "permission denied",
             Outcome.UNAUTHENTICATED: "bad signature"}


@dataclass(frozen=True)
class _FromPeer:
    """A peer message in the inbox, with what it costs its sender's budget."""

    event: ev.MessageReceived
    sender: int
    size: int


class Pacer:
    """A byte budget per peer, refilled at `rate` bytes/s up to `burst`: a peer
    whose budget is spent is refused until it is positive again."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._burst, self._clock = rate, burst, clock
        self._level: dict[int, tuple[float, float]] = {}  # peer -> (bytes, at)

    def allow(self, peer: int) -> bool:
        now = self._clock()
        level, at = self._level.get(peer, (self._burst, now))
        level = min(self._burst, level + (now - at) * self._rate)
        self._level[peer] = (level, now)
        return level > 0

    def spend(self, peer: int, size: int) -> None:
        level, at = self._level[peer]
        self._level[peer] = (level - size, at)


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
                 catalog: Read | None = None, authn: Read | None = None,
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
        self._serve_pacer = Pacer(SERVE_BYTES_PER_S, 2 * self._serve_bytes_max)
        self.registry = registry
        # Where admission reads permissions (docs/design.md, "Identities and
        # permissions"): the catalog chain its own durable state, a chain that
        # reads the catalog the node's durable catalog state (`catalog`, from
        # the daemon), any other chain nothing (execution could not either).
        if self.chain_id == CATALOG_CHAIN:
            self._catalog = lambda contract, key: self.state.get(contract, key)
        else:
            self._catalog = catalog if CATALOG_CHAIN in genesis.reads else None
        self._authn = authn if AUTHN_CHAIN in genesis.reads else None  # the role citizen's bindings
        self._executor = Executor(self.chain_id, registry, ledger, reads=genesis.reads)
        self._read_sources: dict[str, ChainNode] = {}  # connect_reads
        self._readers: list[ChainNode] = []  # chains that read this one: nudged when a block is durable
        self.replica = Replica(
            config, Ed25519Signer(signing_key),
            Ed25519Verifier([v.public_key_bytes for v in genesis.validators]),
            validate_request=self._validate_request, is_committed=ledger.has_tx,
            propose_metadata=self._propose_metadata, check_metadata=self._check_metadata,
            restored=ledger.restored_state())
        self._inbox: asyncio.Queue[ev.Event | _FromPeer] = asyncio.Queue()
        # Per peer, the bytes of its messages waiting for verification or in
        # the inbox: one peer cannot fill our memory or the verify pool.
        self._peer_bytes_max = (config.in_flight_blocks_max + 2) * config.batch_bytes_max
        self._buffered: Counter[int] = Counter()
        self._waiting: dict[int, list[tuple[_FromPeer, list[m.Request]]]] = {}  # peer -> awaiting verification
        self._verifying: set[int] = set()  # peers with a verification job in the pool
        self._distrust: dict[int, tuple[float, float]] = {}  # peer -> (until, last penalty s)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._waiters: dict[bytes, list[asyncio.Future]] = {}
        self._admitting: list[tuple[Transaction, asyncio.Future]] = []
        self._open: OrderedDict[bytes, float] = OrderedDict()  # admitted here, not yet committed: id -> when
        self._drained: deque[tuple[float, int]] = deque()  # (when, how many of _open committed)
        self._drained_total = 0  # their sum: overloaded() is asked for every transaction offered
        self._admission_pacer = AdmissionPacer()
        self._own_peak = PeakRate()  # of _open committing
        self._cluster_peak = PeakRate()  # of all transactions committing
        self._trace: dict[bytes, list[float]] | None = {} if TRACE_DIR else None
        self._traced: list[list] = []
        self._trace_arrived: dict[bytes, float] = {}
        self._trace_flushed = time.monotonic()
        self._new_block = asyncio.Event()
        # Clients read only what is fsynced: blocks above this may still be
        # in the OS cache only (the group's fsync is under way).
        self.durable_height = ledger.height
        self.state = StateSnapshot(ledger)  # queries read the state at durable_height (docs/design.md, "Queries")
        self._tasks: list[asyncio.Task] = []
        self.stopping = False
        # For the metrics endpoint (docs/operations.md, "Metrics"): read at scrape time.
        self.started_view = self.replica.view
        self.committed_txs: Counter[str] = Counter()  # receipt status -> transactions committed since start
        self.commit_seconds = Histogram(COMMIT_LATENCY_BUCKETS_S)  # admitted here -> durable here
        self.fsync_seconds = Histogram(FSYNC_BUCKETS_S)  # the group's fsync, as the chain task waits for it

    # ---- cross-chain reads (docs/design.md, "Cross-chain reads") -------------

    def connect_reads(self, sources: dict[str, "ChainNode"]) -> None:
        """The chains of this node that the genesis `reads` names (the daemon
        wires them before start)."""
        if sorted(sources) != list(self.genesis.reads):
            raise ValueError(f"chain {self.chain_id} reads {list(self.genesis.reads)}, given {sorted(sources)}")
        self._read_sources = dict(sources)
        self._executor.read_sources = {c: source.ledger for c, source in sources.items()}
        for source in sources.values():
            source._readers.append(self)

    def _propose_metadata(self) -> bytes:
        """The durable height of every chain this one reads."""
        if not self.genesis.reads:
            return b""
        return codec.encode_read_heights({c: s.durable_height for c, s in self._read_sources.items()})

    def _check_metadata(self, metadata: bytes) -> Verdict:
        """ACCEPT heights this node holds durably; WAIT for higher ones (the
        request timeout bounds the wait); REJECT anything else."""
        if not self.genesis.reads:
            return ACCEPT if not metadata else reject("metadata on a chain that reads nothing")
        try:
            heights = codec.decode_read_heights(metadata)
        except codec.CodecError:
            return reject("malformed read heights")
        if list(heights) != list(self.genesis.reads):
            return reject("read heights name other chains than the genesis reads")
        if any(h > self._read_sources[c].durable_height for c, h in heights.items()):
            return WAIT
        return ACCEPT

    async def _reads_durable(self, block: m.CommittedBlock) -> None:
        """Wait until this node holds every height the block reads. A block
        this node voted for never waits; one that came by state transfer may
        name heights its read chains have yet to commit here."""
        for chain, height in self._executor.read_heights(block).items():
            source = self._read_sources[chain]
            if source.durable_height < height:
                log.info("chain %s: block %d waits for %s height %d", self.chain_id, block.seq, chain, height)
                await source.wait_for_height(height)

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
            items = [await self._inbox.get()]
            while not self._inbox.empty() and len(items) < GROUP_EVENTS_MAX:
                items.append(self._inbox.get_nowait())
            events = []
            for item in items:
                if isinstance(item, _FromPeer):
                    self._buffered[item.sender] -= item.size
                    item = item.event
                events.append(item)
            try:
                await self._release(await self._step_group(events))
            except Exception as exc:
                # A bug or a failing disk, never bad input (the replica does not
                # raise on peer data), or a ledger the validators disown:
                # fail-stop rather than risk a diverging ledger or
                # acknowledging what was not written.
                if isinstance(exc, StorageCorrupt):
                    log.critical("chain %s stopped: %s", self.chain_id, exc)
                else:
                    log.exception("chain %s stopped: internal error", self.chain_id)
                self._on_failure(exc)
                raise

    async def _step_group(self, events: list[ev.Event]) -> "Group":
        """Step every event and write what each Ready persists, unsynced.
        Nothing leaves the node yet: see _release."""
        group = Group()
        while events:
            ready = self.replica.step(events.pop(0))
            if ready.diverged:
                raise self._diverged(ready.diverged)
            if ready.persist:
                self.ledger.persist_records(ready.persist, sync=False)
                fail_point("persist")
                group.sync = group.sync or ready.sync
            group.messages.extend((send.message, send.to) for send in ready.messages)
            if self._trace is not None:
                for send in ready.messages:
                    if isinstance(send.message, m.PrePrepare) and send.message.proposal is not None:
                        self._trace_proposal(send.message)
            for block in ready.committed:
                if self._read_sources:
                    await self._reads_durable(block)
                events.append(self._commit(block, group))
            for serve in ready.serve:
                self._serve(serve, group)
            for reason in ready.dropped:
                self._count_drop(reason)
            self.replica.advance(ready)
        return group

    async def _release(self, group: "Group") -> None:
        """Group commit: one fsync for the whole group, in a worker thread so
        the loop keeps reading the network; then send and acknowledge."""
        if group.sync or group.blocks:
            fail_point("before-sync")
            started = time.perf_counter()
            await asyncio.get_running_loop().run_in_executor(self._fsync_thread, self.ledger.sync)
            self.fsync_seconds.observe(time.perf_counter() - started)
            fail_point("after-sync")
            self.durable_height = self.ledger.height
            if group.blocks:  # nothing has written since the fsync began: this is the state at durable_height
                self.state.close()
                self.state = StateSnapshot(self.ledger)
                for reader in self._readers:  # a PrePrepare it holds may name this height
                    reader._inbox.put_nowait(ev.MetadataAdvanced())
        for message, to in group.messages:
            self._send(message, to)
        drained = 0
        if self._trace is not None and group.receipts:
            self._trace_commit(group.receipts)
        now = time.monotonic()
        for receipt in group.receipts:
            self.committed_txs[receipt.status] += 1
            admitted = self._open.pop(receipt.tx_id, None)
            if admitted is not None:
                drained += 1
                self.commit_seconds.observe(now - admitted)
            for future in self._waiters.pop(receipt.tx_id, ()):
                if not future.done():
                    future.set_result(receipt)
        if drained:
            self._own_peak.add(now, drained)
            self._drained.append((now, drained))
            self._drained_total += drained
        if group.receipts:
            self._cluster_peak.add(now, len(group.receipts))
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

    def _diverged(self, reason: str) -> Diverged:
        """Stop for good: the store is marked damaged, so the node refuses to
        start until `govchain chain repair` re-fetches the chain."""
        self.ledger.mark_damaged(reason)
        return Diverged(f"{reason}; " + repair_hint(self.ledger.path, self.chain_id))

    def _serve(self, serve: ev.ServeBlocks, group: "Group") -> None:
        if not self._serve_pacer.allow(serve.to):
            self._count_drop("fetch paced")
            return
        interval = self.replica.config.checkpoint_interval_blocks
        blocks, proofs, size = [], [], 0
        for block in self.ledger.blocks(serve.from_seq, serve.to_seq):
            # With its stable checkpoint's proof, if we hold it: the fetcher keeps it too.
            proof = self.ledger.stable_checkpoint(block.seq) if block.seq % interval == 0 else None
            size += codec.to_proto(block).ByteSize() + 16  # + its field tag and length
            size += codec.to_proto(proof).ByteSize() + 16 if proof is not None else 0
            if blocks and size > self._serve_bytes_max:
                break
            blocks.append(block)
            proofs += [proof] if proof is not None else []
        self._serve_pacer.spend(serve.to, size)
        group.messages.append((m.BlocksReply(chain_id=self.chain_id, blocks=tuple(blocks), checkpoints=tuple(proofs),
                               replica=self.index), serve.to))

    # ---- peer input ---------------------------------------------------------

    def worth_decoding(self, pb: consensus_pb2.ConsensusMessage) -> bool:
        """The cheap checks of a request-carrying message on its protobuf,
        before it is decoded: decoding 1,000 requests costs more than a
        signature check. A PrePrepare's signature covers only its header."""
        kind = pb.WhichOneof("message")
        if kind == "pre_prepare":
            p = pb.pre_prepare
            problem = self._screen(m.PrePrepare(chain_id=p.chain_id, view=p.view, seq=p.seq, digest=p.digest,
                                                proposal=None, replica=p.replica, signature=p.signature))
        elif kind == "request_batch":  # its signature covers the request ids: checked once decoded
            problem = "sender signed invalid requests" if self._distrusted(pb.request_batch.replica) else None
        else:
            return True
        if problem is not None:
            self._count_drop(problem)
        return problem is None

    def _screen(self, message: m.PrePrepare | m.RequestBatch) -> str | None:
        problem = self.replica.screen(message)
        if problem is None and self._distrusted(message.replica):
            problem = "sender signed invalid requests"
        return problem

    def deliver(self, message: m.Message, size: int) -> None:
        """A decoded peer message of `size` bytes. Requests it carries are
        signature-checked in a worker thread first, so the replica's own check
        is a cache hit; but only after the cheap checks (Replica.screen) and
        within the sender's byte budget, so unauthenticated input costs one
        signature check at most."""
        sender = message.replica
        if not 0 <= sender < len(self._addresses):
            return self._count_drop("unknown sender")
        requests = message.requests if isinstance(message, m.RequestBatch) else (
            message.proposal.requests if isinstance(message, m.PrePrepare) else ())
        if requests:
            problem = self._screen(message)
            if problem is not None:
                return self._count_drop(problem)
            if self._trace is not None and isinstance(message, m.PrePrepare):
                self._trace_proposal(message)
        cost = size + MESSAGE_OVERHEAD_BYTES
        if self._inbox.qsize() >= INBOX_PEER_MAX:
            return self._count_drop("inbox full")
        if self._buffered[sender] + cost > self._peer_bytes_max:
            return self._count_drop("peer budget exceeded")
        self._buffered[sender] += cost
        item = _FromPeer(ev.MessageReceived(message=message), sender, cost)
        unknown = [r for r in requests if m.tx_leaf(r) not in self._verified]
        if not unknown:
            self._inbox.put_nowait(item)
            return
        self._waiting.setdefault(sender, []).append((item, unknown))
        if sender not in self._verifying:
            self._verify_next(sender)

    def _verify_next(self, peer: int) -> None:
        """One verification job per peer at a time, for everything it sent
        meanwhile: a flooding peer queues behind itself (within its budget),
        not in front of other peers and clients in the pool."""
        self._verifying.discard(peer)
        waiting = self._waiting.pop(peer, [])
        if waiting and self._distrusted(peer):
            for item, _ in waiting:
                self._buffered[peer] -= item.size
                self._count_drop("sender signed invalid requests")
            return
        if not waiting:
            return
        self._verifying.add(peer)
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, _verify_requests, [r for _, unknown in waiting for r in unknown])

        def verified(f: asyncio.Future) -> None:
            if f.cancelled() or f.exception() is not None:  # the node is stopping
                self._verifying.discard(peer)
                for item, _ in waiting:
                    self._buffered[peer] -= item.size
                return
            good = set(f.result())
            self._remember(good)
            for item, unknown in waiting:
                if all(m.tx_leaf(r) in good for r in unknown):
                    self._inbox.put_nowait(item)
                    continue
                self._buffered[peer] -= item.size
                self._count_drop("invalid request")
                # A correct replica signs only requests it verified: this one is faulty.
                self._penalise(peer)
            self._verify_next(peer)

        future.add_done_callback(verified)

    def _count_drop(self, reason: str) -> None:
        self.counters["dropped: " + reason] += 1
        self._log_drop(reason, f"chain {self.chain_id}: peer message dropped")

    def _distrusted(self, peer: int) -> bool:
        until = self._distrust.get(peer, (0.0, 0.0))[0]
        return time.monotonic() < until

    def _penalise(self, peer: int) -> None:
        """Ignore the peer's request-carrying messages for a while, twice as long each time."""
        first, longest = DISTRUST_S
        last = self._distrust.get(peer, (0.0, 0.0))[1]
        penalty = min(longest, 2 * last) if last else first
        self._distrust[peer] = (time.monotonic() + penalty, penalty)

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

    def admit(self, tx: Transaction, arrived: float | None = None) -> asyncio.Future:
        """Queue one transaction for admission; resolves to an Admission.
        While overloaded, refused at once: shedding load costs no checks.
        `arrived`: when its RPC reached the node (time.monotonic), for tracing."""
        future = asyncio.get_running_loop().create_future()
        overloaded = self.overloaded()
        if overloaded:
            self.counters["rejected: overloaded"] += 1
            future.set_result(Admission(tx.id, Outcome.OVERLOADED, overloaded))
            return future
        self._admission_pacer.take(1)
        if not self._admitting:
            asyncio.get_running_loop().call_soon(self._flush_admissions)
        self._admitting.append((tx, future))
        if self._trace is not None:
            self._trace_arrived[tx.id] = arrived or time.monotonic()
        return future

    def _flush_admissions(self) -> None:
        batch, self._admitting = self._admitting, []
        asyncio.get_running_loop().create_task(self._admit_batch(batch))

    def overloaded(self) -> str:
        """Why admission is closed now, or "". Asked for every transaction
        offered, so cheap. Not a pure query: it feeds the admission pacer
        (the backlog rule refused; a call was held back). Entries the
        replica dropped (they will never commit) leave the head of the
        queue here."""
        now = time.monotonic()
        while self._drained and self._drained[0][0] < now - RATE_WINDOW_S:
            self._drained_total -= self._drained.popleft()[1]
        reason = self._backlog_refusal(now, len(self._open) + len(self._admitting))
        if reason:
            if self._drained_total:  # no pace from a node that knows no rate: a cold start is not overload
                oldest = next(iter(self._open.values()), now)
                self._admission_pacer.pressed(now, queued=now - oldest >= ADMIT_WAIT_S)
            return reason
        return self._pacing_refusal(now)

    def _pacing_refusal(self, now: float) -> str:
        if self._admission_pacer.rate is None or self._admitting:  # calls under way in this loop turn pass whole
            return ""
        backlog = self.replica.backlog
        crowded = backlog + CALL > max(2 * CALL, BACKLOG_BUDGET_S * self._cluster_peak.peak(now))
        if self._admission_pacer.allows(now, self._own_peak.peak(now), crowded):
            return ""
        return (f"overloaded: admitting about {self._admission_pacer.rate:.0f} transactions a second here, "
                f"{backlog} seen waiting for commit; retry later")

    def _backlog_refusal(self, now: float, waiting: int) -> str:
        if waiting < ADMIT_ALWAYS:
            return ""
        rate = self._drained_total / RATE_WINDOW_S
        if not rate:  # nothing committed lately: ADMIT_ALWAYS is the whole budget until something does
            return (f"overloaded: {waiting} transactions admitted here wait for their first commit; "
                    f"retry later")
        if waiting >= rate * ADMIT_WAIT_S:
            return (f"overloaded: {waiting} transactions admitted here wait for commit, "
                    f"{waiting / rate:.1f} s of work at the current commit rate; retry later")
        while self._open:
            tx_id, since = next(iter(self._open.items()))
            if now - since < ADMIT_WAIT_S:
                return ""
            if self.replica.knows_request(tx_id):
                return (f"overloaded: the oldest of {waiting} transactions admitted here has waited "
                        f"{now - since:.1f} s for commit; retry later")
            self._open.popitem(last=False)
        return ""

    async def _admit_batch(self, batch: list[tuple[Transaction, asyncio.Future]]) -> None:
        """Cheap checks first (node/chain/admission.py: shape, contract,
        replay, permission; then room in the mempool), so refused load costs
        no signature check; then one pooled verification."""
        results: dict[int, Admission] = {}
        candidates: dict[int, m.Request] = {}
        seen: set[bytes] = set()
        room = self._mempool_max - self.replica.pending_count
        bytes_room = self.replica.config.pending_requests_bytes_max - self.replica.pending_bytes
        now = time.monotonic()
        now_ms = time.time_ns() // 1_000_000  # the proposer's clock makes block times; citizens' bindings
        replayed = lambda tx_id: tx_id in seen or self.replica.knows_request(tx_id)  # noqa: E731
        for i, (tx, _) in enumerate(batch):
            refusal = screen(tx, chain_id=self.chain_id, registry=self.registry, stopping=self.stopping,
                             replayed=replayed, catalog=self._catalog, authn=self._authn, now_ms=now_ms)
            if refusal is not None:
                results[i] = refusal
                continue
            tx_id = tx.id
            full = f"{self._mempool_max} transactions" if len(candidates) >= room else ""
            if not full:
                request = codec.request_from_tx(tx)
                size = len(request.body) + len(request.id)
                full = f"{self.replica.config.pending_requests_bytes_max} bytes" if size > bytes_room else ""
            if full:
                self.counters["rejected: mempool full"] += 1
                results[i] = Admission(tx_id, Outcome.POOL_FULL, f"mempool full ({full}); retry later")
                continue
            bytes_room -= size
            seen.add(tx_id)
            candidates[i] = request
            self._open[tx_id] = now
        good = set(await asyncio.get_running_loop().run_in_executor(
            self._pool, _verify_requests, list(candidates.values()))) if candidates else set()
        self._remember(good)
        admitted = []
        for i, request in candidates.items():
            if m.tx_leaf(request) in good:
                admitted.append(request)
                results[i] = Admission(request.id, Outcome.ADMITTED)
            else:
                self._open.pop(request.id, None)
                results[i] = Admission(request.id, Outcome.UNAUTHENTICATED,
                                       "signature does not match sender key and transaction content")
        if admitted:
            self._inbox.put_nowait(ev.RequestsSubmitted(requests=tuple(admitted)))
        for result in results.values():  # full pools are counted where they are found
            if result.outcome in _REFUSALS:
                self.counters["rejected: " + _REFUSALS[result.outcome]] += 1
        if self._trace is not None:
            done = time.monotonic()
            for request in admitted:
                self._trace[request.id] = [self._trace_arrived.get(request.id, now), now, done, 0.0]
            for tx, _ in batch:
                self._trace_arrived.pop(tx.id, None)
        for i, (_, future) in enumerate(batch):
            if not future.done():
                future.set_result(results[i])

    # ---- tracing (TRACE_DIR) -------------------------------------------------

    def _trace_proposal(self, message: m.PrePrepare) -> None:
        now = time.monotonic()
        for r in message.proposal.requests:
            t = self._trace.get(r.id)
            if t is not None and not t[3]:
                t[3] = now

    def _trace_commit(self, receipts) -> None:
        now = time.monotonic()
        for receipt in receipts:
            t = self._trace.pop(receipt.tx_id, None)
            if t is not None:
                self._traced.append([receipt.tx_id.hex()[:16], *t, now])
        if now - self._trace_flushed > 1.0 and self._traced:
            self._trace_flushed = now
            with open(os.path.join(TRACE_DIR, f"node-{self.chain_id}-{self.index}.jsonl"), "a") as f:
                f.write(json.dumps(self._traced) + "\n")
            self._traced = []

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
