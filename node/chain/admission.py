"""What admission decides about a client transaction, without gRPC
(docs/design.md, "Admission").

ChainNode.admit runs the checks in this order, cheapest first, so refused
load costs as little as possible:

1. overload (ChainNode.overloaded): OVERLOADED before any check;
2. `screen` below, per transaction: shape (INVALID), a contract or write
   method the chain does not run (NOT_FOUND), shutdown (UNAVAILABLE), replay
   (ALREADY_EXISTS), the sender's permission (PERMISSION_DENIED: one state
   read of the catalog);
3. room in the pool by count and bytes (POOL_FULL);
4. the Ed25519 signature, in one pooled job for the batch (UNAUTHENTICATED).

The permission check comes before the signature on purpose: a forged
transaction may name any registered key as its sender and pass step 2, but
step 4 refuses it before it is admitted. node/services/client_api.py maps
each Outcome to a gRPC status in one table.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable

from node.identity.signers import Read, permission_refusal
from node.core.tx import Transaction, validate_shape
from node.ledger.execution import ContractRegistry, not_runnable


class Outcome(enum.Enum):
    ADMITTED = "admitted"
    INVALID = "invalid"  # malformed transaction
    UNKNOWN_CHAIN = "unknown chain"  # this node does not serve the chain
    NOT_FOUND = "not found"  # a contract or write method the chain does not run
    UNAVAILABLE = "unavailable"  # the node is shutting down
    ALREADY_EXISTS = "already exists"  # replay
    PERMISSION_DENIED = "permission denied"  # the sender lacks the method's role
    OVERLOADED = "overloaded"  # admitted transactions already wait too long
    POOL_FULL = "pool full"  # no room in the pool, by count or bytes
    UNAUTHENTICATED = "unauthenticated"  # the signature does not verify


@dataclass(frozen=True)
class Admission:
    tx_id: bytes
    outcome: Outcome
    error: str = ""

    @property
    def admitted(self) -> bool:
        return self.outcome is Outcome.ADMITTED


def role_of(registry: ContractRegistry, contract: str, method: str) -> str | None:
    """The role `contract`.`method` declares, or None when its contract
    declares no methods (it dispatches them itself, and checks nobody)."""
    methods = getattr(registry.get(contract), "methods", None)
    return methods.get(method) if methods is not None else None


def screen(tx: Transaction, *, chain_id: str, registry: ContractRegistry, stopping: bool,
           replayed: Callable[[bytes], bool], catalog: Read | None, authn: Read | None = None,
           now_ms: int = 0) -> Admission | None:
    """The cheap checks of one transaction (steps 2 above), or None when it
    may go on to the pool. `replayed(tx_id)`: pending, in flight or
    committed already; `catalog`: the durable catalog state this node reads
    permissions from (None: it has none); `authn`, `now_ms`: the durable
    authn state and the node's clock, for the role citizen (execution
    decides at the block's time)."""
    problem = validate_shape(tx)
    if problem:
        return Admission(tx.id, Outcome.INVALID, problem)
    problem = not_runnable(registry, chain_id, tx.contract, tx.method, read=False)
    if problem:  # it would commit as FAILED: refuse it before it takes room in a block
        return Admission(tx.id, Outcome.NOT_FOUND, problem)
    tx_id = tx.id
    if stopping:
        return Admission(tx_id, Outcome.UNAVAILABLE, "node is shutting down; retry on another node")
    if replayed(tx_id):
        return Admission(tx_id, Outcome.ALREADY_EXISTS, f"transaction {tx_id.hex()} was already submitted (replay)")
    role = role_of(registry, tx.contract, tx.method)
    if role is not None:
        problem = permission_refusal(catalog, tx.sender, tx.contract, tx.method, role, authn=authn, at_ms=now_ms)
        if problem:
            return Admission(tx_id, Outcome.PERMISSION_DENIED, problem)
    return None
