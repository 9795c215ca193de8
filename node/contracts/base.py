"""Helpers for contracts that dispatch on tx.method with a JSON payload.

Payload decoding is bounded explicitly, before decoding, so that whether a
transaction runs depends on its bytes alone and never on the interpreter
(Python's recursion limit, its int-digit limit): a payload past a bound gets a
FAILED receipt naming that bound on every replica. The bounds:

- at most PAYLOAD_BYTES_MAX bytes (node.tx), UTF-8, one JSON value;
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
from itertools import accumulate
from typing import Any, Callable, NoReturn

from node.execution import OK, ContractError, TxContext
from node.tx import PAYLOAD_BYTES_MAX

PAYLOAD_DEPTH_MAX = 64
PAYLOAD_CONTAINERS_MAX = 4096
INT_DIGITS_MAX = 20

Handler = Callable[[TxContext, dict], "bytes | None"]

# A string literal, or an unterminated one up to the end: every '"' outside a
# string starts exactly one match, so the scan is linear on any input.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_DIGITS = bytes(ord("9") if chr(b) in "0123456789" else ord(" ") for b in range(256))  # digit -> 9, else space
_TOO_MANY_DIGITS = b"9" * (INT_DIGITS_MAX + 1)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


def _check_bounds(payload: bytes) -> None:
    if len(payload) > PAYLOAD_BYTES_MAX:
        raise ContractError(f"payload is {len(payload)} bytes, more than the {PAYLOAD_BYTES_MAX} allowed "
                            "(PAYLOAD_BYTES_MAX)")
    outside = _STRING.sub(b'""', payload)  # a placeholder keeps the tokens around a string apart
    digits = outside.translate(_DIGITS)
    if (start := digits.find(_TOO_MANY_DIGITS)) >= 0:
        end = digits.find(b" ", start)
        raise ContractError(f"payload has a {(end if end >= 0 else len(digits)) - start}-digit number, more than "
                            f"the {INT_DIGITS_MAX} digits allowed (INT_DIGITS_MAX); send larger numbers as strings")
    brackets = outside.translate(None, _NOT_BRACKET)
    if len(brackets) > 2 * PAYLOAD_CONTAINERS_MAX:
        raise ContractError(f"payload has {len(brackets)} brackets: more than the {PAYLOAD_CONTAINERS_MAX} "
                            "arrays/objects allowed (PAYLOAD_CONTAINERS_MAX)")
    depth = max(accumulate(map(_DEPTH_STEP.__getitem__, brackets), initial=0))
    if depth > PAYLOAD_DEPTH_MAX:
        raise ContractError(f"payload nests arrays/objects {depth} deep, more than the {PAYLOAD_DEPTH_MAX} "
                            "allowed (PAYLOAD_DEPTH_MAX)")


def _no_float(text: str) -> NoReturn:
    raise ContractError(f"payload has a non-integer number {text[:24]!r}: fractions and exponents are "
                        "refused; send decimals as strings")


def _no_constant(text: str) -> NoReturn:
    raise ContractError(f"payload has {text}, which is not JSON")


_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_constant)


def parse_json_object(payload: bytes) -> dict[str, Any]:
    """The payload as a JSON object, within the bounds above. Raises
    ContractError (and nothing else) for anything else."""
    _check_bounds(payload)
    try:
        value = _DECODER.decode(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractError(f"payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ContractError("payload must be a JSON object")
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


class MethodContract:
    """Subclasses set `name` and `methods` (method name -> handler name).

    A handler takes (ctx, args) with args the parsed JSON object, raises
    ContractError to fail, and returns the output bytes (or None).
    """

    name: str = ""
    methods: dict[str, str] = {}

    def execute(self, ctx: TxContext, tx) -> tuple[str, str, bytes]:
        handler_name = self.methods.get(tx.method)
        if handler_name is None:
            raise ContractError(f"contract {self.name!r} has no method {tx.method!r}")
        handler: Handler = getattr(self, handler_name)
        output = handler(ctx, parse_json_object(tx.payload))
        return OK, "", output or b""
