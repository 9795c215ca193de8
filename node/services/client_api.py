"""Client gRPC API. A thin edge: decode, validate, then await the chain or
read the ledger. Errors are gRPC statuses with a message a person can act on."""
from __future__ import annotations

import asyncio
import functools
import inspect
import time

import grpc

from node.core import codec
from node.chain.admission import Admission, Outcome
from node.chain.chain_node import ChainNode
from node.ledger.execution import CONTRACT_NAME_BYTES_MAX
from node.ledger.ledger import repair_hint
from node.ledger.query import BadQuery, NoSuchQuery, QueryError, ResultTooLarge, run_query
from node.ledger.storage import StorageCorrupt
from node.pb import client_pb2, client_pb2_grpc

COMMIT_WAIT_DEFAULT_MS = 10_000
COMMIT_WAIT_MAX_MS = 120_000
STREAM_UNANSWERED_MAX = 10_000  # per SubmitStream
ADMISSION_CODES = {  # docs/design.md, "Admission"
    Outcome.ADMITTED: grpc.StatusCode.OK,
    Outcome.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Outcome.UNKNOWN_CHAIN: grpc.StatusCode.FAILED_PRECONDITION,
    Outcome.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Outcome.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Outcome.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Outcome.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Outcome.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Outcome.POOL_FULL: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Outcome.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
}
_QUERY_CODES = {NoSuchQuery: grpc.StatusCode.NOT_FOUND, BadQuery: grpc.StatusCode.INVALID_ARGUMENT,
                ResultTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED}


def _data_loss(method):
    """Reads of a damaged store answer DATA_LOSS naming the repair, and stop
    the chain (fail-stop): damaged data is never served as data."""
    async def lost(self, request, context, exc: StorageCorrupt):
        chain = self._chains[request.chain_id]
        chain.fail_stop(exc)
        await context.abort(grpc.StatusCode.DATA_LOSS,
                            f"chain {request.chain_id}: stored data is damaged ({exc}); this node stops "
                            f"serving it; ask another node, and {repair_hint(chain.ledger.path, request.chain_id)}")

    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def stream(self, request, context):
            try:
                async for item in method(self, request, context):
                    yield item
            except StorageCorrupt as exc:
                await lost(self, request, context, exc)
        return stream

    @functools.wraps(method)
    async def unary(self, request, context):
        try:
            return await method(self, request, context)
        except StorageCorrupt as exc:
            await lost(self, request, context, exc)
    return unary


class ClientService(client_pb2_grpc.ClientServicer):
    def __init__(self, department: str, chains: dict[str, ChainNode], dropped: dict[str, int] | None = None) -> None:
        self._department = department
        self._chains = chains
        self._dropped = dropped if dropped is not None else {}  # the node's peer-input drop counters (live)

    # ---- helpers ------------------------------------------------------------

    def _chain_or_error(self, chain_id: str) -> tuple[ChainNode | None, str]:
        chain = self._chains.get(chain_id)
        if chain is None:
            return None, (f"unknown chain {chain_id!r}; this node serves: "
                          f"{', '.join(sorted(self._chains)) or 'no chains'}")
        return chain, ""

    async def _chain(self, chain_id: str, context) -> ChainNode:
        chain, error = self._chain_or_error(chain_id)
        if chain is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, error)
        if chain.stopping:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "node is shutting down; retry on another node")
        return chain

    def _decode(self, pb_tx) -> tuple[ChainNode | None, object, Admission | None]:
        """(chain, transaction, None), or a refusal that needs no chain."""
        try:
            tx = codec.tx_from_proto(pb_tx)
        except codec.CodecError as exc:
            return None, None, Admission(b"", Outcome.INVALID, f"malformed transaction: {exc}")
        chain, error = self._chain_or_error(tx.chain_id)
        if chain is None:
            return None, tx, Admission(tx.id, Outcome.UNKNOWN_CHAIN, error)
        return chain, tx, None

    async def _admit(self, pb_tx) -> tuple[ChainNode | None, Admission]:
        chain, tx, refusal = self._decode(pb_tx)
        if refusal is not None:
            return None, refusal
        return chain, await chain.admit(tx)

    @staticmethod
    def _wait_s(timeout_ms: int) -> float:
        return min(timeout_ms or COMMIT_WAIT_DEFAULT_MS, COMMIT_WAIT_MAX_MS) / 1000

    @staticmethod
    async def _receipt(chain: ChainNode, tx_id: bytes, wait_s: float):
        try:
            return await asyncio.wait_for(chain.wait_committed(tx_id), wait_s)
        except asyncio.TimeoutError:
            return None  # not committed yet: the client can ask again with GetTransaction

    @staticmethod
    def _result(admission: Admission, receipt=None) -> client_pb2.SubmitResult:
        result = client_pb2.SubmitResult(tx_id=admission.tx_id, code=ADMISSION_CODES[admission.outcome].value[0],
                                         error=admission.error, committed=receipt is not None)
        if receipt is not None:
            result.receipt.CopyFrom(codec.receipt_to_proto(receipt))
        return result

    # ---- submit -------------------------------------------------------------

    async def Submit(self, request, context):
        chain, admission = await self._admit(request.tx)
        if not admission.admitted:
            await context.abort(ADMISSION_CODES[admission.outcome], admission.error)
        response = client_pb2.SubmitResponse(tx_id=admission.tx_id)
        if request.wait_commit:
            receipt = await self._receipt(chain, admission.tx_id, self._wait_s(request.timeout_ms))
            if receipt is not None:
                response.committed = True
                response.receipt.CopyFrom(codec.receipt_to_proto(receipt))
        return response

    async def SubmitBatch(self, request, context):
        # Futures, not a task per transaction: under overload admit() refuses
        # at once, and refusing must stay cheap (docs/benchmarks.md).
        arrived = time.monotonic()
        overloaded = self._overloaded(request.txs)
        if overloaded:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, overloaded)
        decoded = [self._decode(pb_tx) for pb_tx in request.txs]
        pending = [(chain, refusal or chain.admit(tx, arrived)) for chain, tx, refusal in decoded]
        futures = [a for _, a in pending if isinstance(a, asyncio.Future)]
        if futures:
            await asyncio.wait(futures)
        admitted = [(chain, a.result() if isinstance(a, asyncio.Future) else a) for chain, a in pending]
        receipts = [None] * len(admitted)
        if request.wait_commit:
            wait_s = self._wait_s(request.timeout_ms)
            receipts = await asyncio.gather(*(
                self._receipt(chain, a.tx_id, wait_s) if a.admitted else _none()
                for chain, a in admitted))
        return client_pb2.SubmitBatchResponse(
            results=[self._result(a, r) for (_, a), r in zip(admitted, receipts)])

    def _overloaded(self, pb_txs) -> str:
        """Why the whole batch is refused at once, or "": every chain it names
        is overloaded. One call-level status, no id computed and no result per
        transaction: refusing a call of 100 then costs the node about 30 %
        less CPU (docs/performance.md, "Overload")."""
        why: dict[str, str] = {}
        for pb_tx in pb_txs:
            chain_id = pb_tx.chain_id
            if chain_id not in why:
                chain = self._chains.get(chain_id)
                reason = chain.overloaded() if chain is not None else ""
                if not reason:
                    return ""
                why[chain_id] = reason
        for chain_id in why:
            self._chains[chain_id].counters["rejected: overloaded"] += sum(1 for t in pb_txs if t.chain_id == chain_id)
        return "; ".join(f"{chain_id}: {reason}" for chain_id, reason in why.items())

    async def SubmitStream(self, request_iterator, context):
        """Results come back as they are known: refusals at once, admitted
        transactions when admitted or, with wait_commit, when committed.
        Driven by future callbacks: no task per transaction."""
        loop = asyncio.get_running_loop()
        out: asyncio.Queue = asyncio.Queue()
        unanswered = asyncio.Semaphore(STREAM_UNANSWERED_MAX)
        counts = {"read": 0, "answered": 0, "done_reading": False}

        def answer(admission: Admission, receipt=None) -> None:
            out.put_nowait(self._result(admission, receipt))

        def on_admitted(chain: ChainNode, wait: bool, wait_s: float, fut: asyncio.Future) -> None:
            admission = fut.result()
            if not admission.admitted or not wait:
                return answer(admission)
            committed = chain.wait_committed(admission.tx_id)
            timer = loop.call_later(wait_s, lambda: committed.done() or committed.cancel())

            def on_committed(f: asyncio.Future) -> None:
                timer.cancel()
                answer(admission, None if f.cancelled() else f.result())

            committed.add_done_callback(on_committed)

        async def read() -> None:
            try:
                async for req in request_iterator:
                    # Back-pressure: a client that writes but does not read
                    # stops being read once this many answers are waiting.
                    await unanswered.acquire()
                    counts["read"] += 1
                    chain, tx, refusal = self._decode(req.tx)
                    if refusal is not None:
                        answer(refusal)
                        continue
                    chain.admit(tx).add_done_callback(
                        functools.partial(on_admitted, chain, req.wait_commit, self._wait_s(req.timeout_ms)))
            except Exception as exc:  # the request stream broke (e.g. a malformed message): end the RPC
                out.put_nowait(exc)
                return
            counts["done_reading"] = True
            out.put_nowait(None)

        reader = asyncio.ensure_future(read())
        try:
            while not (counts["done_reading"] and counts["answered"] >= counts["read"]):
                item = await out.get()
                if isinstance(item, Exception):
                    raise item
                if item is not None:
                    counts["answered"] += 1
                    yield item
                    unanswered.release()
        finally:
            reader.cancel()

    # ---- reads --------------------------------------------------------------

    def _block_response(self, chain: ChainNode, height: int) -> client_pb2.BlockResponse:
        ledger = chain.ledger
        response = client_pb2.BlockResponse(
            header=codec.to_proto(ledger.header(height)), block=codec.to_proto(ledger.block(height)),
            receipts=[codec.receipt_to_proto(r) for r in ledger.block_receipts(height)])
        checkpoint = ledger.stable_checkpoint(height)
        if checkpoint is not None:
            response.checkpoint.CopyFrom(codec.to_proto(checkpoint))
        return response

    @_data_loss
    async def GetBlock(self, request, context):
        chain = await self._chain(request.chain_id, context)
        which = request.WhichOneof("block")
        if which == "hash":
            height = chain.ledger.height_of(request.hash)
            if height is None or height > chain.durable_height:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no block with hash {request.hash.hex()} on {request.chain_id}")
        elif which == "height":
            height = request.height
            if not 1 <= height <= chain.durable_height:
                await context.abort(grpc.StatusCode.NOT_FOUND,
                                    f"no block at height {height} on {request.chain_id} (height is {chain.durable_height})")
        else:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "give a block height or hash")
        return self._block_response(chain, height)

    @_data_loss
    async def GetTransaction(self, request, context):
        chain = await self._chain(request.chain_id, context)
        location = chain.ledger.tx_location(request.tx_id)
        if location is None or location[0] > chain.durable_height:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"transaction {request.tx_id.hex()} is not committed on {request.chain_id}")
        height, index = location
        tx = codec.tx_from_request(chain.ledger.block(height).proposal.requests[index])
        return client_pb2.TransactionResponse(tx=codec.tx_to_proto(tx),
                                              receipt=codec.receipt_to_proto(chain.ledger.receipt(request.tx_id)))

    @_data_loss
    async def Query(self, request, context):
        chain = await self._chain(request.chain_id, context)
        state = chain.state  # read synchronously below: one height, whatever commits meanwhile
        try:
            result = run_query(chain.registry, state, chain_id=chain.chain_id, contract=request.contract,
                               method=request.method, args=request.args)
        except QueryError as exc:
            await context.abort(_QUERY_CODES[type(exc)], str(exc))
        return client_pb2.QueryResponse(result=result, height=state.height)

    @_data_loss
    async def QueryState(self, request, context):
        if not 0 < len(request.contract.encode()) <= CONTRACT_NAME_BYTES_MAX:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"contract must be a contract name of 1..{CONTRACT_NAME_BYTES_MAX} bytes, e.g. \"kv\"")
        chain = await self._chain(request.chain_id, context)
        state = chain.state
        value = state.get(request.contract, request.key)
        return client_pb2.QueryStateResponse(found=value is not None, value=value or b"", height=state.height)

    @_data_loss
    async def StreamBlocks(self, request, context):
        chain = await self._chain(request.chain_id, context)
        height = max(1, request.from_height)
        while not chain.stopping:
            await chain.wait_for_height(height)
            yield self._block_response(chain, height)
            height += 1

    async def Status(self, request, context):
        chains = [client_pb2.ChainStatus(**c.status()) for _, c in sorted(self._chains.items())]
        return client_pb2.StatusResponse(department=self._department, chains=chains, dropped=self._dropped)


async def _none():
    return None


def register(host, server) -> str:
    """The client API, on every node (node.services.CLIENT_PORT_SERVICES)."""
    client_pb2_grpc.add_ClientServicer_to_server(ClientService(host.config.department, host.chains, host.bad_input),
                                                 server)
    return client_pb2.DESCRIPTOR.services_by_name["Client"].full_name
