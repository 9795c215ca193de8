"""What the app contracts share (docs/design.md, "Authentication events",
"Certificates (证照链)", "Consent and the access log (authz)", "Service items
and cases"): strict payloads, the signer's department from the catalog
chain, a citizen sender's authn binding, and paged index scans. Not a
contract (its name starts with "_").
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from node.contracts.base import require_int, require_str
from node.identity.signers import CATALOG_CHAIN, SignerRecord, lookup_signer
from node.identity.citizens import AUTHN_CHAIN, binding_of, binding_problem
from node.ledger.execution import ContractError, TxContext

TAG_RE = re.compile(r"[0-9a-f]{64}")  # a subject tag (node/identity/oprf.py, TAG_BYTES) or a key, lowercase hex
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
PAGE_DEFAULT = 50
PAGE_MAX = 200
MS_MAX = 2**63 - 1


def strict(args: dict, required: Iterable[str], optional: Iterable[str] = ()) -> None:
    """Refuse unknown and missing fields: nothing rides along that the
    schema does not name (no name, ID number or biometric slips in)."""
    required = tuple(required)
    allowed = set(required) | set(optional)
    if unknown := sorted(set(args) - allowed):
        raise ContractError(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                            f"the fields are: {', '.join(sorted(allowed))}")
    if missing := [name for name in required if name not in args]:
        raise ContractError(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")


def hex64(args: dict, field: str, what: str) -> str:
    value = args.get(field)
    if not isinstance(value, str) or not TAG_RE.fullmatch(value):
        raise ContractError(f"field {field!r} must be {what}: 64 lowercase hex digits")
    return value


def ident(args: dict, field: str) -> str:
    value = require_str(args, field)
    if not ID_RE.fullmatch(value):
        raise ContractError(f"field {field!r} must be 1-64 of letters, digits, '.', '_', ':', '-' "
                            f"(starting with a letter or digit)")
    return value


def one_of(args: dict, field: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    value = args.get(field)
    if value not in allowed:
        raise ContractError(f"field {field!r} must be one of {', '.join(map(repr, allowed))} (got {value!r:.40})")
    return value


def milliseconds(args: dict, field: str) -> int:
    return require_int(args, field, low=0, high=MS_MAX)


def signer(ctx: TxContext) -> tuple[SignerRecord, int]:
    """The sender's catalog record and the catalog height it was read at.
    The platform has already refused unregistered and revoked senders; this
    only guards against a catalog that says otherwise."""
    record = lookup_signer(lambda contract, key: ctx.read(CATALOG_CHAIN, contract, key), ctx.sender)
    if record is None:
        raise ContractError(f"sender {ctx.sender.hex()} is not registered on the catalog chain")
    return record, ctx.read_height(CATALOG_CHAIN)


def bound_to(ctx: TxContext, tag: str, what: str) -> dict:
    """The sender's authn binding (role citizen, node/identity/citizens.py),
    read on the authn chain at the block's pinned height: in force at the
    block time and for `tag`, else a ContractError saying that only the
    citizen may do `what`, and why not this key."""
    binding = binding_of(lambda contract, key: ctx.read(AUTHN_CHAIN, contract, key), ctx.sender)
    if problem := binding_problem(binding, ctx.sender, ctx.timestamp_ms):
        raise ContractError(f"only the citizen may {what}: {problem}")
    if binding["tag"] != tag:
        raise ContractError(f"only the citizen may {what}: the sender's authn binding is for another subject, "
                            f"not tag {tag[:16]}")
    return binding


def window_signer(ctx: TxContext, what: str, citizen_does: str) -> SignerRecord:
    """The sender as a window officer (an active catalog key with role
    window), for a method that takes a citizen or a window: `what` is
    done by a window citing 'authn_event'; a citizen does it without."""
    who = lookup_signer(lambda contract, key: ctx.read(CATALOG_CHAIN, contract, key), ctx.sender)
    if who is None or who.status != "active" or "window" not in who.roles:
        raise ContractError(f"{what} by a window key (role 'window' on the catalog chain) when it cites "
                            f"'authn_event'; a citizen {citizen_does} without it, with their bound app key")
    return who


def load(get, key: bytes) -> Any:
    """The JSON record stored under key, or None."""
    raw = get(key)
    return None if raw is None else json.loads(raw)


def id_cursor(after: object) -> bytes:
    """The key suffix after which a page of id-keyed items starts."""
    return ident({"after": after}, "after").encode()


def tag_prefix(tag: str) -> bytes:
    """Where a contract indexes a subject tag's records: tag/<tag>/..."""
    return b"tag/" + tag.encode() + b"/"


def tag_page(ctx, args: dict, prefix_of) -> dict:
    """One page of a subject tag's items: args {"tag", "after"?, "limit"?}."""
    strict(args, ("tag",), ("after", "limit"))
    return page(ctx, prefix_of(hex64(args, "tag", "a subject tag")), args, after_key=id_cursor)


def page(ctx, prefix: bytes, args: dict, *, after_key) -> dict:
    """One page of the index under `prefix`: {"items": [...], "more": bool}.
    args: "after" (the last item's cursor from the previous page, turned into
    a key by after_key) and "limit" (1..PAGE_MAX). Index values are the
    items' canonical JSON."""
    limit = require_int(args, "limit", low=1, high=PAGE_MAX, default=PAGE_DEFAULT)
    after = args.get("after")
    start = None if after is None else prefix + after_key(after)
    found = ctx.scan(prefix, after=start, limit=limit + 1)
    return {"items": [json.loads(value) for _, value in found[:limit]], "more": len(found) > limit}
