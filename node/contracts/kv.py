"""The built-in key-value contract "kv" (tests, benchmarks, linearizability
checks on a register key space: TESTING.md S7).

Methods, payload a JSON object of strings:
    put     {"key": k, "value": v}                 set k to v
    delete  {"key": k}                             remove k (OK if absent)
    cas     {"key": k, "expected": e, "value": v}  set k to v if its current
            value is e (null: k must be absent); FAILED otherwise
Keys and values are stored as UTF-8 bytes in the "kv" namespace.
"""
from __future__ import annotations

import json

from node.contracts.base import MethodContract, require_str
from node.execution import ContractError, TxContext

KEY_CHARS_MAX = 256


def _key(args: dict) -> bytes:
    key = require_str(args, "key")
    if len(key) > KEY_CHARS_MAX:
        raise ContractError(f"key longer than {KEY_CHARS_MAX} characters")
    return key.encode()


class KvContract(MethodContract):
    name = "kv"
    methods = {"put": "put", "delete": "delete", "cas": "cas"}

    def put(self, ctx: TxContext, args: dict) -> bytes:
        ctx.put(_key(args), require_str(args, "value", allow_empty=True).encode())
        return b""

    def delete(self, ctx: TxContext, args: dict) -> bytes:
        key = _key(args)
        existed = ctx.get(key) is not None
        ctx.delete(key)
        return json.dumps({"deleted": existed}).encode()

    def cas(self, ctx: TxContext, args: dict) -> bytes:
        key = _key(args)
        if "expected" not in args:
            raise ContractError("field 'expected' is required (null: key must be absent)")
        expected = require_str(args, "expected", allow_none=True, allow_empty=True)
        value = require_str(args, "value", allow_empty=True)
        current = ctx.get(key)
        current_str = current.decode() if current is not None else None
        if current_str != expected:
            raise ContractError(f"cas failed: current value {current_str!r} != expected {expected!r}")
        ctx.put(key, value.encode())
        return b""
