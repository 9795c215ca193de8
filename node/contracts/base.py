"""The base of contracts whose methods take a JSON object, and the bounded
JSON decoding they share (docs/design.md, "Contracts").

Payload decoding is bounded explicitly, before decoding, so that whether a
transaction runs depends on its bytes alone and never on the interpreter
(Python's recursion limit, its int-digit limit): a payload past a bound gets a
FAILED receipt naming that bound on every replica. The bounds:

- at most PAYLOAD_BYTES_MAX bytes (node.core.tx), UTF-8, one JSON value;
- arrays and objects nested at most PAYLOAD_DEPTH_MAX deep, and at most
  PAYLOAD_CONTAINERS_MAX of them (so the depth scan stays cheap);
- numbers of at most INT_DIGITS_MAX digits: every signed or unsigned 64-bit
  integer fits, and the decimal conversion stays far below Python's
  4,300-digit limit;
- no fractions or exponents (1.5, 1e3) and no NaN or Infinity: binary floats
  are not exact and JSON libraries disagree on rounding, so amounts and
  decimals travel as strings and the contract parses them as it needs.

The checks scan the bytes outside string literals with a regular expression
and byte operations (no recursion, no per-byte Python loop): a hostile
64 KiB payload costs at most a few milliseconds, as json.loads itself does. Strings and
the number of members are bounded by the payload size; decoding them is
linear and interpreter-independent. Duplicate object keys: the last one wins
(json's rule, deterministic).
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from itertools import accumulate
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, ClassVar, NoReturn

from node.identity.signers import ANYONE  # contracts import it from here, with method and query
from node.core.canonical import canonical_json
from node.core.receipts import OK
from node.ledger.execution import ContractError, TxContext
from node.core.tx import NAME_RE, PAYLOAD_BYTES_MAX

if TYPE_CHECKING:
    from node.ledger.query import QueryContext

PAYLOAD_DEPTH_MAX = 64
PAYLOAD_CONTAINERS_MAX = 4096
INT_DIGITS_MAX = 20

Handler = Callable[[Any, TxContext, dict], "bytes | None"]
QueryHandler = Callable[[Any, "QueryContext", dict], Any]

# A string literal, or an unterminated one up to the end: every '"' outside a
# string starts exactly one match, so the scan is linear on any input.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_DIGITS = bytes(ord("9") if chr(b) in "0123456789" else ord(" ") for b in range(256))  # digit -> 9, else space
_TOO_MANY_DIGITS = b"9" * (INT_DIGITS_MAX + 1)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


def _check_bounds(payload: bytes, what: str) -> None:
    if len(payload) > PAYLOAD_BYTES_MAX:
        raise ContractError(f"{what} is {len(payload)} bytes, more than the {PAYLOAD_BYTES_MAX} allowed "
                            "(PAYLOAD_BYTES_MAX)")
    outside = _STRING.sub(b'""', payload)  # a placeholder keeps the tokens around a string apart
    digits = outside.translate(_DIGITS)
    if (start := digits.find(_TOO_MANY_DIGITS)) >= 0:
        end = digits.find(b" ", start)
        raise ContractError(f"{what} has a {(end if end >= 0 else len(digits)) - start}-digit number, more than "
                            f"the {INT_DIGITS_MAX} digits allowed (INT_DIGITS_MAX); send larger numbers as strings")
    brackets = outside.translate(None, _NOT_BRACKET)
    if len(brackets) > 2 * PAYLOAD_CONTAINERS_MAX:
        raise ContractError(f"{what} has {len(brackets)} brackets: more than the {PAYLOAD_CONTAINERS_MAX} "
                            "arrays/objects allowed (PAYLOAD_CONTAINERS_MAX)")
    depth = max(accumulate(map(_DEPTH_STEP.__getitem__, brackets), initial=0))
    if depth > PAYLOAD_DEPTH_MAX:
        raise ContractError(f"{what} nests arrays/objects {depth} deep, more than the {PAYLOAD_DEPTH_MAX} "
                            "allowed (PAYLOAD_DEPTH_MAX)")


class _Refused(Exception):
    """Raised inside the decoder; parse_json_object says whose value it was."""


def _no_float(text: str) -> NoReturn:
    raise _Refused(f"has a non-integer number {text[:24]!r}: fractions and exponents are "
                   "refused; send decimals as strings")


def _no_constant(text: str) -> NoReturn:
    raise _Refused(f"has {text}, which is not JSON")


_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_constant)


def parse_json_object(payload: bytes, what: str = "payload") -> dict[str, Any]:
    """The payload (or a query's args: `what`) as a JSON object, within the
    bounds above. Raises ContractError (and nothing else) for anything else."""
    _check_bounds(payload, what)
    try:
        value = _DECODER.decode(payload.decode("utf-8"))
    except _Refused as exc:
        raise ContractError(f"{what} {exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractError(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ContractError(f"{what} must be a JSON object")
    return value


def require_str(args: dict, field: str, *, allow_none: bool = False, allow_empty: bool = False) -> str | None:
    value = args.get(field)
    if value is None and allow_none and field in args:
        return None
    if not isinstance(value, str):
        raise ContractError(f"field {field!r} must be a string")
    if not value and not allow_empty:
        raise ContractError(f"field {field!r} must not be empty")
    return value


def require_int(args: dict, field: str, *, low: int, high: int, default: int | None = None) -> int:
    value = args.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ContractError(f"field {field!r} must be an integer from {low} to {high}")
    return value


# ---- declaring methods ---------------------------------------------------------


_ROLE = "_govchain_role"
_QUERY = "_govchain_query"


def method(*, role: str | tuple[str, ...]) -> Callable[[Handler], Handler]:
    """Marks a write method: a handler (self, TxContext, args) -> output bytes
    or None, called for transactions whose `method` is the handler's name.
    Every write method names the role its sender needs (docs/design.md,
    "Contracts"); there is no default, so none can be forgotten. A tuple of
    roles: the sender needs any one of them (the handler tells which)."""
    roles = (role,) if isinstance(role, str) else role
    if not isinstance(roles, tuple) or not roles or not all(isinstance(r, str) and NAME_RE.fullmatch(r)
                                                             for r in roles):
        raise TypeError(f"role must be a name such as {ANYONE!r}, or a tuple of names (got {role!r})")

    def mark(handler: Handler) -> Handler:
        setattr(handler, _ROLE, role)
        return handler
    return mark


def query(handler: QueryHandler) -> QueryHandler:
    """Marks a read method: a handler (self, QueryContext, args) -> a JSON
    value, run by the Query RPC against committed state. It gets no way to
    write and no clock, so it is deterministic."""
    setattr(handler, _QUERY, True)
    return handler


class MethodContract:
    """A contract whose methods take one JSON object (node.ledger.execution.Contract).

    Subclasses set `name` and `version` and mark handlers with
    @method(role=...) and @query; `methods` (write method -> role) and
    `queries` are collected from those marks when the class is defined.
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 0
    methods: ClassVar[Mapping[str, str]] = MappingProxyType({})
    queries: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        methods: dict[str, str] = {}
        queries: set[str] = set()
        for klass in reversed(cls.__mro__):  # a subclass may override or unmark a handler
            for attr, value in vars(klass).items():
                methods.pop(attr, None)
                queries.discard(attr)
                if hasattr(value, _ROLE):
                    methods[attr] = getattr(value, _ROLE)
                if getattr(value, _QUERY, False):
                    queries.add(attr)
        if both := sorted(queries & methods.keys()):
            raise TypeError(f"{cls.__name__}: {', '.join(both)} marked both @method and @query")
        cls.methods = MappingProxyType(dict(sorted(methods.items())))
        cls.queries = frozenset(queries)

    def execute(self, ctx: TxContext, tx) -> tuple[str, str, bytes]:
        if tx.method not in self.methods:
            raise ContractError(f"contract {self.name!r} has no method {tx.method!r}")
        output = getattr(self, tx.method)(ctx, parse_json_object(tx.payload))
        return OK, "", output or b""

    def query(self, ctx: "QueryContext", method_name: str, args: bytes) -> bytes:
        """The canonical JSON answer of one read method. ContractError for an
        unknown method or bad args."""
        if method_name not in self.queries:
            raise ContractError(f"contract {self.name!r} has no query {method_name!r}")
        return canonical_json(getattr(self, method_name)(ctx, parse_json_object(args, "args")))
