"""Helpers for contracts that dispatch on tx.method with a JSON payload."""
from __future__ import annotations

import json
from typing import Any, Callable

from node.execution import OK, ContractError, TxContext

Handler = Callable[[TxContext, dict], "bytes | None"]


def parse_json_object(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload.decode("utf-8"))
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
