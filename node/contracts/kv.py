"""kv: an open key-value store, for load tests, benchmarks and the demo.

Anyone with a key writes any key (role ANYONE), so only the `demo` chain
names it in its genesis; the platform's sub-chains never do (docs/design.md,
"Contracts").

Methods, payload a JSON object of strings:
    put     {"key": k, "value": v}                 set k to v
    delete  {"key": k}                             remove k (OK if absent)
    cas     {"key": k, "expected": e, "value": v}  set k to v if its current
            value is e (null: k must be absent); FAILED otherwise
Queries (the Query RPC):
    get     {"key": k}  ->  {"found": true, "value": v} or {"found": false, "value": null}
    list    {"prefix": p, "after": a, "limit": n}  ->  {"items": [{"key": k, "value": v}, ...], "more": bool}
            keys starting with p (default ""), in byte order, after key a
            (optional: the last key of the previous page), at most n
            (1..LIST_LIMIT_MAX, default LIST_LIMIT_DEFAULT) and about
            LIST_BYTES_MAX bytes of items; "more" says whether keys remain.
Keys and values are stored as UTF-8 bytes in the "kv" namespace.
"""
from __future__ import annotations

import json

from node.contracts.base import ANYONE, MethodContract, method, query, require_int, require_str
from node.ledger.execution import ContractError, TxContext
from node.ledger.query import QueryContext

NAME = "kv"
VERSION = 1

KEY_CHARS_MAX = 256
LIST_LIMIT_DEFAULT = 100
LIST_LIMIT_MAX = 1000
LIST_BYTES_MAX = 512 * 1024  # one item is at most 6 x 64 KiB escaped, so every page holds at least one


def _key(args: dict, field: str = "key", *, allow_empty: bool = False) -> bytes:
    key = require_str(args, field, allow_empty=allow_empty)
    if len(key) > KEY_CHARS_MAX:
        raise ContractError(f"{field} longer than {KEY_CHARS_MAX} characters")
    return key.encode()


class KvContract(MethodContract):
    name = NAME
    version = VERSION

    @method(role=ANYONE)
    def put(self, ctx: TxContext, args: dict) -> bytes:
        ctx.put(_key(args), require_str(args, "value", allow_empty=True).encode())
        return b""

    @method(role=ANYONE)
    def delete(self, ctx: TxContext, args: dict) -> bytes:
        key = _key(args)
        existed = ctx.get(key) is not None
        ctx.delete(key)
        return json.dumps({"deleted": existed}).encode()

    @method(role=ANYONE)
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

    @query
    def get(self, ctx: QueryContext, args: dict) -> dict:
        value = ctx.get(_key(args))
        return {"found": value is not None, "value": value.decode() if value is not None else None}

    @query
    def list(self, ctx: QueryContext, args: dict) -> dict:
        prefix = _key(args, "prefix", allow_empty=True) if "prefix" in args else b""
        after = _key(args, "after") if args.get("after") is not None else None
        limit = require_int(args, "limit", low=1, high=LIST_LIMIT_MAX, default=LIST_LIMIT_DEFAULT)
        found = ctx.scan(prefix, after=after, limit=limit + 1)
        items, size = [], 0
        for key, value in found[:limit]:
            item = {"key": key.decode(), "value": value.decode()}
            size += len(json.dumps(item, ensure_ascii=False).encode())
            if items and size > LIST_BYTES_MAX:
                break
            items.append(item)
        return {"items": items, "more": len(items) < len(found)}


CONTRACT = KvContract
