"""The read side of contracts: the Query RPC's work (docs/design.md, "Queries").

A query runs one contract's read method against the chain's state as of
its durable height: the state a StateSnapshot pinned right after the
group's fsync (node/chain/chain_node.py), never writes that are still only in the OS
cache. The method sees that state through a QueryContext, which cannot
write and has no clock, so the same query at the same height gives the
same answer on every correct node.

run_query raises one error class per gRPC status, which node/services/client_api.py
maps: NoSuchQuery (NOT_FOUND), BadQuery (INVALID_ARGUMENT), ResultTooLarge
(RESOURCE_EXHAUSTED). StorageCorrupt passes through (DATA_LOSS).
"""
from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING

from node.ledger.execution import ContractError, ContractRegistry, not_runnable
from node.ledger.layout import state_key
from node.core.tx import CONTRACT_NAME_BYTES_MAX, METHOD_NAME_BYTES_MAX, PAYLOAD_BYTES_MAX, name_problem

if TYPE_CHECKING:
    from node.ledger.ledger import Ledger

RESULT_BYTES_MAX = 1 << 20  # well inside the default 4 MiB message_bytes_max
SCAN_LIMIT_MAX = 10_000  # per scan() call: a query method reads a bounded amount


class QueryError(Exception):
    """A query the node refuses; the subclass names the gRPC status."""


class NoSuchQuery(QueryError):
    """The chain runs no such contract, or the contract has no such read method."""


class BadQuery(QueryError):
    """Malformed names, or args the method refuses."""


class ResultTooLarge(QueryError):
    """The answer exceeds RESULT_BYTES_MAX: ask for less."""


class StateSnapshot:
    """One chain's application state as it was when taken: a LevelDB snapshot,
    so later writes (the next group's blocks, before their fsync) do not show.
    Reads verify checksums and raise StorageCorrupt like the ledger's own."""

    def __init__(self, ledger: "Ledger") -> None:
        self.height = ledger.height
        self._snapshot = ledger.snapshot()

    def get(self, contract: str, key: bytes) -> bytes | None:
        return self._snapshot.get(state_key(contract, key))

    def scan(self, contract: str, prefix: bytes, *, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to `limit` (key, value) of one contract under `prefix`, in key
        order, starting after key `after` if given."""
        namespace = state_key(contract, b"")
        start = namespace + after + b"\x00" if after is not None and after >= prefix else None
        pairs = self._snapshot.scan(namespace + prefix, start=start)
        try:
            return [(k[len(namespace):], v) for k, v in islice(pairs, limit)]
        finally:
            pairs.close()

    def close(self) -> None:
        self._snapshot.close()


class QueryContext:
    """What a read method sees: its own contract's state at one height, read-only."""

    def __init__(self, *, chain_id: str, contract: str, state: StateSnapshot) -> None:
        self.chain_id = chain_id
        self.contract = contract
        self.height = state.height
        self._state = state

    def get(self, key: bytes) -> bytes | None:
        return self._state.get(self.contract, key)

    def scan(self, prefix: bytes = b"", *, after: bytes | None = None, limit: int) -> list[tuple[bytes, bytes]]:
        if not 1 <= limit <= SCAN_LIMIT_MAX:
            raise ValueError(f"scan limit must be 1..{SCAN_LIMIT_MAX}")
        return self._state.scan(self.contract, prefix, after=after, limit=limit)


def run_query(registry: ContractRegistry, state: StateSnapshot, *, chain_id: str, contract: str, method: str,
              args: bytes) -> bytes:
    """The canonical JSON answer of `contract`.`method`(args) at state.height.
    Empty args mean {}."""
    for field, name, limit in (("contract", contract, CONTRACT_NAME_BYTES_MAX),
                               ("method", method, METHOD_NAME_BYTES_MAX)):
        if (problem := name_problem(field, name, limit)) is not None:
            raise BadQuery(problem)
    if len(args) > PAYLOAD_BYTES_MAX:  # before any lookup; parse_json_object checks it again
        raise BadQuery(f"args are {len(args)} bytes, more than the {PAYLOAD_BYTES_MAX} allowed")
    if (problem := not_runnable(registry, chain_id, contract, method, read=True)) is not None:
        raise NoSuchQuery(problem)
    context = QueryContext(chain_id=chain_id, contract=contract, state=state)
    try:
        result = registry.get(contract).query(context, method, args or b"{}")
    except ContractError as exc:
        raise BadQuery(f"{contract}.{method}: {exc}") from None
    if len(result) > RESULT_BYTES_MAX:
        raise ResultTooLarge(f"{contract}.{method} answered {len(result)} bytes, more than the {RESULT_BYTES_MAX} "
                             f"allowed; ask for less (e.g. a lower limit)")
    return result
