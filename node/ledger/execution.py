"""Deterministic execution of committed blocks against the application state.

Every replica runs `Executor.execute_block` on the same committed blocks in the
same order and must reach byte-identical results (docs/testing.md S6), so nothing in
this module (or in a contract) may read a clock, draw randomness, touch the
network or iterate an unordered collection. Time comes from the block header.

Per block:

1. each Request is decoded into a Transaction (node.core.codec.tx_from_request);
   one that cannot be decoded, is malformed (node.core.tx.validate_shape: sizes,
   names), names another chain or whose id differs from the Request id is
   FAILED without running;
2. a transaction id already committed in an earlier block, or earlier in this
   block, is DUPLICATE and not executed (Hyperledger Fabric's DUPLICATE_TXID):
   the same id never executes twice. The ledger's tx index keeps pointing at
   the first occurrence;
3. a chain whose genesis names `reads` first fixes the block's read heights
   (docs/design.md, "Cross-chain reads"): for each read chain, the larger of
   the height the proposal's metadata names and the parent block's; they
   are written under the reserved namespace READS_NAMESPACE (no contract
   can name it), so the state root covers them, and TxContext.read sees
   the other chain's state at exactly that height;
4. a write method that declares a role other than ANYONE runs only if its
   sender's key is registered, active and holds that role in the catalog
   (node.identity.signers; docs/design.md, "Identities and
   permissions"): otherwise FAILED with the message admission would have
   given, so a faulty primary's proposal of a refused transaction changes
   nothing, the same way on every replica;
5. the tx runs its contract with a TxContext whose get/put/delete see only
   that contract's namespace, layered over the ledger state plus the writes of
   the earlier successful transactions of this block. An exception, a FAILED
   status or an unknown contract discards the tx's writes (FAILED + message).
   Contracts decode payloads with explicit bounds (node.contracts.base), so
   the outcome depends on the bytes alone; MemoryError and RecursionError
   depend on the interpreter and the machine, so they stop the node instead
   of becoming a receipt that another replica might not write;
6. the block's net writes give the state root (see `state_root`) and the
   header (consensus.block.make_header).

The Executor only reads the ledger; the caller commits the BlockResult with
Ledger.commit_block in one synced batch.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Protocol

from consensus.block import BlockHeader, make_header
from consensus.messages import CommittedBlock, Request
from node.core.codec import CodecError, decode_read_heights, tx_from_request
from node.core.receipts import DUPLICATE, FAILED, MESSAGE_CHARS_MAX, OK, Receipt, StateWrite
from node.core.tx import Transaction, validate_shape
from node.identity.citizens import AUTHN_CHAIN
from node.identity.signers import CATALOG_CHAIN, permission_refusal

if TYPE_CHECKING:
    from node.ledger.ledger import Ledger


EMPTY_STATE_ROOT = bytes(32)
"""State root "before block 1": the empty application state."""

CONTRACT_NAME_BYTES_MAX = 255
STATE_KEY_BYTES_MAX = 1024
STATE_VALUE_BYTES_MAX = 1 << 20
READS_NAMESPACE = "_reads"
"""State namespace of a block's effective read heights, key chain id, value
u64: contract names start with [A-Za-z0-9], so no contract can reach it."""
MACHINE_ERRORS = (MemoryError, RecursionError)
"""Node-local, not properties of a transaction: they stop the node rather
than become a receipt another replica might not write (crash, don't diverge)."""


class ExecutionError(Exception):
    """Misuse by the caller (wrong chain, height out of order). Never raised
    for anything a transaction does: that becomes a FAILED receipt."""


class ContractError(Exception):
    """Raised by a contract to fail its transaction with a message."""




@dataclass(frozen=True, kw_only=True)
class BlockResult:
    header: BlockHeader
    receipts: tuple[Receipt, ...]
    state_writes: tuple[StateWrite, ...]  # sorted by (contract, key), one per key


# ---- contracts --------------------------------------------------------------

class StateReader(Protocol):
    def state_get(self, contract: str, key: bytes) -> bytes | None: ...
    def has_tx(self, tx_id: bytes) -> bool: ...


class VersionedReader(Protocol):
    """Another chain's ledger, read as of a height (node.ledger.Ledger)."""

    def state_get_at(self, contract: str, key: bytes, height: int) -> bytes | None: ...


class Contract(Protocol):
    """A deterministic state machine over its own key namespace.

    `execute` returns (status, message, output) with status OK or FAILED, or
    raises (ContractError for expected refusals); either failure discards the
    transaction's writes. It must be a pure function of (ctx reads, tx).
    """

    name: str

    def execute(self, ctx: "TxContext", tx: "Transaction") -> tuple[str, str, bytes]: ...


class ContractRegistry:
    """The contracts one chain runs, by name. Each chain has its own registry
    (the sub-chains run different contracts); the core never names a contract."""

    def __init__(self, contracts: Iterable[Contract] = ()):
        self._contracts: dict[str, Contract] = {}
        for contract in contracts:
            self.register(contract)

    def register(self, contract: Contract) -> None:
        name = contract.name
        if not name or len(name.encode()) > CONTRACT_NAME_BYTES_MAX:
            raise ValueError(f"bad contract name {name!r}")
        if name in self._contracts:
            raise ValueError(f"contract {name!r} already registered")
        self._contracts[name] = contract

    def get(self, name: str) -> Contract | None:
        return self._contracts.get(name)

    def names(self) -> list[str]:
        return sorted(self._contracts)

    def __contains__(self, name: object) -> bool:
        return name in self._contracts



def describe(registry: ContractRegistry) -> str:
    """'kv 1, authz 2': the name and version of each contract, for messages."""
    return ", ".join(f"{name} {getattr(registry.get(name), 'version', '?')}" for name in registry.names()) or "none"


def not_runnable(registry: ContractRegistry, chain_id: str, contract: str, method: str, *,
                 read: bool) -> str | None:
    """Why `contract`.`method` cannot run on this chain, or None: an unknown
    contract, or a write method (read=False) or query (read=True) the
    contract does not declare."""
    target = registry.get(contract)
    if target is None:
        return f"chain {chain_id} runs no contract {contract!r}; it runs: {describe(registry)}"
    kind, declared = ("query", "queries") if read else ("method", "methods")
    names = getattr(target, declared, None)
    if names is None and not read:
        return None  # a contract that declares no methods dispatches (and refuses) them itself
    if method not in (names or ()):
        return (f"contract {contract} has no {kind} {method!r}; its {declared}: "
                f"{', '.join(sorted(names or ())) or 'none'}")
    return None


_ABSENT = object()


class TxContext:
    """What a contract sees while one transaction runs.

    Reads fall through: this tx's own writes -> the block's earlier writes ->
    the committed ledger state. Writes stay in this tx's overlay until the
    Executor merges them (on OK) or drops them (on failure).
    """

    def __init__(
        self,
        *,
        chain_id: str,
        height: int,
        index: int,
        timestamp_ms: int,
        tx_id: bytes,
        sender: bytes,
        contract: str,
        block_writes: dict[tuple[str, bytes], bytes | None],
        reader: StateReader,
        read_heights: Mapping[str, int] | None = None,
        read_sources: Mapping[str, VersionedReader] | None = None,
    ):
        self.chain_id = chain_id
        self.height = height
        self.index = index
        self.timestamp_ms = timestamp_ms  # the block header's (clamped) timestamp
        self.tx_id = tx_id
        self.sender = sender
        self.contract = contract
        self._block_writes = block_writes
        self._reader = reader
        self._read_heights = read_heights or {}
        self._read_sources = read_sources or {}
        self.writes: dict[bytes, bytes | None] = {}

    def read_height(self, chain_id: str) -> int:
        """The height at which this block reads `chain_id` (docs/design.md,
        "Cross-chain reads"); ContractError if the genesis does not name it."""
        height = self._read_heights.get(chain_id)
        if height is None:
            raise ContractError(f"chain {self.chain_id!r} does not read chain {chain_id!r} (genesis reads)")
        return height

    def read(self, chain_id: str, contract: str, key: bytes) -> bytes | None:
        """`contract`'s value of `key` on another chain, as of read_height(chain_id)."""
        height = self.read_height(chain_id)
        _check_key(key)
        if not isinstance(contract, str) or not 0 < len(contract.encode()) <= CONTRACT_NAME_BYTES_MAX:
            raise ContractError(f"bad contract name {contract!r:.80}")
        return self._read_sources[chain_id].state_get_at(contract, bytes(key), height)

    def get(self, key: bytes) -> bytes | None:
        _check_key(key)
        value = self.writes.get(key, _ABSENT)
        if value is _ABSENT:
            value = self._block_writes.get((self.contract, key), _ABSENT)
        if value is _ABSENT:
            value = self._reader.state_get(self.contract, key)
        return value  # type: ignore[return-value]

    def put(self, key: bytes, value: bytes) -> None:
        _check_key(key)
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError("state values are bytes")
        if len(value) > STATE_VALUE_BYTES_MAX:
            raise ContractError(f"value larger than {STATE_VALUE_BYTES_MAX} bytes")
        self.writes[key] = bytes(value)

    def delete(self, key: bytes) -> None:
        _check_key(key)
        self.writes[key] = None


def _check_key(key: bytes) -> None:
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError("state keys are bytes")
    if not key or len(key) > STATE_KEY_BYTES_MAX:
        raise ContractError(f"state key must be 1..{STATE_KEY_BYTES_MAX} bytes")


# ---- state root ---------------------------------------------------------------

def writes_digest(writes: Iterable[StateWrite]) -> bytes:
    """sha256 over one block's net writes in (contract, key) order, each
    length-prefixed so no two different write sets share an encoding."""
    h = hashlib.sha256(b"govchain:v1:writes:")
    for contract, key, value in sorted(writes, key=lambda w: (w[0], w[1])):
        name = contract.encode()
        h.update(len(name).to_bytes(2, "big") + name + len(key).to_bytes(4, "big") + key)
        if value is None:
            h.update(b"\x00")  # tombstone
        else:
            h.update(b"\x01" + len(value).to_bytes(4, "big") + value)
    return h.digest()


def state_root(parent_state_root: bytes, writes: Iterable[StateWrite]) -> bytes:
    """Accumulator hash: sha256(domain || parent_state_root || writes_digest).

    It commits to the whole history of state changes, so two replicas with the
    same root at height h applied the same writes in the same blocks (S6), at
    O(writes) cost per block and no extra storage. It is not a Merkle tree over
    the current state: it cannot prove a single key's value and two histories
    reaching the same state have different roots. Replacing it with a Merkle
    tree (IAVL, sparse Merkle) only changes this function and what the ledger
    stores, not the Executor interface.
    """
    return hashlib.sha256(
        b"govchain:v1:state:" + parent_state_root + writes_digest(writes)
    ).digest()


# ---- executor -------------------------------------------------------------------

class Executor:
    """Runs committed blocks for one chain. Single-threaded, deterministic."""

    def __init__(
        self,
        chain_id: str,
        registry: ContractRegistry,
        ledger: "Ledger | StateReader",
        *,
        decode_tx: Callable[[Request], "Transaction"] = tx_from_request,
        verify_tx: Callable[["Transaction"], bool] | None = None,
        reads: Iterable[str] = (),
        read_sources: Mapping[str, VersionedReader] | None = None,
    ):
        self.chain_id = chain_id
        self.registry = registry
        self.ledger = ledger
        self._decode_tx = decode_tx
        # Signatures are checked once at admission (docs/design.md, Performance by design).
        # A deployment that wants every replica to re-check what a possibly
        # Byzantine primary proposed passes a (deterministic) verifier here.
        self._verify_tx = verify_tx
        self._is_catalog = chain_id == CATALOG_CHAIN
        self.reads = tuple(sorted(reads))  # the genesis "reads"
        self.read_sources = dict(read_sources or {})  # chain id -> its ledger; set before the first block

    def read_heights(self, block: CommittedBlock) -> dict[str, int]:
        """The block's effective read heights (docs/design.md, "Cross-chain
        reads"): per chain of `reads`, max(named in the metadata, the parent
        block's). Metadata that does not decode names nothing (a null proposal
        has none); the reads then stay where the parent left them, so they
        never go back. The ledger's state is the parent's when it is asked."""
        if not self.reads:
            return {}
        try:
            named = decode_read_heights(block.proposal.metadata) if block.proposal.metadata else {}
        except CodecError:
            named = {}
        out = {}
        for chain in self.reads:
            parent = self.ledger.state_get(READS_NAMESPACE, chain.encode())
            out[chain] = max(named.get(chain, 0), int.from_bytes(parent, "big") if parent else 0)
        return out

    def execute_block(self, block: CommittedBlock, parent_header: BlockHeader | None) -> BlockResult:
        proposal = block.proposal
        height = proposal.seq
        if proposal.chain_id != self.chain_id:
            raise ExecutionError(f"block of chain {proposal.chain_id!r} given to {self.chain_id!r}")
        expected = parent_header.height + 1 if parent_header else 1
        if height != expected:
            raise ExecutionError(f"block {height} executed on parent of height {expected - 1}")
        parent_root = parent_header.state_root if parent_header else EMPTY_STATE_ROOT
        timestamp_ms = max(proposal.timestamp_ms, parent_header.timestamp_ms if parent_header else 0)

        block_writes: dict[tuple[str, bytes], bytes | None] = {}
        read_heights = self.read_heights(block)
        missing = [chain for chain in read_heights if chain not in self.read_sources]
        if missing:
            raise ExecutionError(f"chain {self.chain_id!r} reads {missing}, whose ledgers were not given")
        for chain, h in read_heights.items():  # recorded where they moved: the state root covers them
            value = h.to_bytes(8, "big")
            if self.ledger.state_get(READS_NAMESPACE, chain.encode()) != value:
                block_writes[(READS_NAMESPACE, chain.encode())] = value
        seen: set[bytes] = set()  # membership only, never iterated
        receipts: list[Receipt] = []
        for index, request in enumerate(proposal.requests):
            if request.id in seen or self.ledger.has_tx(request.id):
                receipts.append(Receipt(
                    tx_id=request.id, height=height, index=index, status=DUPLICATE,
                    message="transaction id already committed",
                ))
                continue
            seen.add(request.id)
            status, message, output, writes = self._run(request, height, index, timestamp_ms, block_writes,
                                                        read_heights)
            if status == OK:
                block_writes.update(writes)
            receipts.append(Receipt(
                tx_id=request.id, height=height, index=index, status=status,
                message=message[:MESSAGE_CHARS_MAX], output=output,
            ))

        state_writes = tuple(sorted(
            ((contract, key, value) for (contract, key), value in block_writes.items()),
            key=lambda w: (w[0], w[1]),
        ))
        header = make_header(block, parent_header, state_root(parent_root, state_writes))
        return BlockResult(header=header, receipts=tuple(receipts), state_writes=state_writes)

    def _run(
        self,
        request: Request,
        height: int,
        index: int,
        timestamp_ms: int,
        block_writes: dict[tuple[str, bytes], bytes | None],
        read_heights: Mapping[str, int],
    ) -> tuple[str, str, bytes, dict[tuple[str, bytes], bytes | None]]:
        try:
            tx = self._decode_tx(request)
        except MACHINE_ERRORS:
            raise
        except Exception as exc:  # garbage from a Byzantine primary: fail, never raise
            return FAILED, f"malformed transaction: {_describe(exc)}", b"", {}
        if tx.id != request.id:
            return FAILED, "transaction id does not match its request", b"", {}
        if (problem := validate_shape(tx)) is not None:  # admission checked it; a faulty primary may not have
            return FAILED, f"malformed transaction: {problem}", b"", {}
        if tx.chain_id != self.chain_id:
            return FAILED, f"transaction for chain {tx.chain_id!r}", b"", {}
        if self._verify_tx is not None and not self._verify_tx(tx):
            return FAILED, "bad transaction signature", b"", {}
        contract = self.registry.get(tx.contract)
        if contract is None:
            return FAILED, f"unknown contract {tx.contract!r}", b"", {}
        ctx = TxContext(
            chain_id=self.chain_id, height=height, index=index, timestamp_ms=timestamp_ms,
            tx_id=request.id, sender=tx.sender, contract=contract.name,
            block_writes=block_writes, reader=self.ledger,
            read_heights=read_heights, read_sources=self.read_sources,
        )
        role = (getattr(contract, "methods", None) or {}).get(tx.method)
        try:
            if role is not None:  # a contract that declares no methods checks nobody
                authn = (lambda c, k: ctx.read(AUTHN_CHAIN, c, k)) if AUTHN_CHAIN in self.reads else None
                problem = permission_refusal(self._catalog(ctx, block_writes), tx.sender, tx.contract,
                                             tx.method, role, authn=authn, at_ms=timestamp_ms)
                if problem:
                    return FAILED, problem, b"", {}
            result = contract.execute(ctx, tx)
            status, message, output = result
        except MACHINE_ERRORS:
            raise
        except Exception as exc:
            return FAILED, _describe(exc), b"", {}
        if status not in (OK, FAILED) or not isinstance(message, str) or not isinstance(output, bytes):
            return FAILED, f"contract {contract.name!r} returned an invalid result", b"", {}
        if status != OK:
            return FAILED, message, output, {}
        return OK, message, output, {(contract.name, k): v for k, v in ctx.writes.items()}


    def _catalog(self, ctx: TxContext, block_writes: dict[tuple[str, bytes], bytes | None]):
        """Where execution reads permissions (docs/design.md, "Identities and
        permissions"): on the catalog chain, its own state before this
        transaction (the ledger plus the earlier writes of this block: what
        the transaction itself reads); on another chain, the catalog at the
        height its block pins, through the cross-chain read of its context."""
        if self._is_catalog:
            def before(contract: str, key: bytes) -> bytes | None:
                value = block_writes.get((contract, key), _ABSENT)
                return self.ledger.state_get(contract, key) if value is _ABSENT else value  # type: ignore[return-value]
            return before
        if CATALOG_CHAIN not in self.reads:  # a chain whose genesis does not read the catalog: no view of it
            return None
        return lambda contract, key: ctx.read(CATALOG_CHAIN, contract, key)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ContractError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
