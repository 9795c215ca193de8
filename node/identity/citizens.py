"""Citizens as senders: the platform role `citizen` (docs/design.md, "Consent
and the access log (authz)").

A citizen has no catalog key. Their application key is theirs while the
authn chain binds it to their subject tag (node/contracts/authn.py:
`binding/<app key hex>` -> {"tag", "assurance", "expires_at_ms", "event_id",
"revoked"}). A write method declaring the role `citizen` runs only if its
sender's key has a binding in force at the block time; the contract then
checks the tag its payload names against the bound tag.

The helpers read the authn contract's state through a `read(contract, key)
-> bytes | None` callable, like node.identity.signers reads the catalog:
execution reads the authn chain at the height its block pins
(`ctx.read("authn", contract, key)`) at the block's time, admission the
node's durable authn state at the node's clock (a first screen; execution
decides). Standard library only.
"""
from __future__ import annotations

import json
from typing import Callable

AUTHN_CHAIN = "authn"
AUTHN_CONTRACT = "authn"
CITIZEN = "citizen"

Read = Callable[[str, bytes], "bytes | None"]


def binding_key(app_key_hex: str) -> bytes:
    """Where the authn contract keeps an app key's binding."""
    return b"binding/" + app_key_hex.encode()


def in_force(binding: dict, at_ms: int) -> bool:
    """A binding holds at at_ms: not revoked and not yet expired."""
    return not binding["revoked"] and at_ms < binding["expires_at_ms"]


def binding_of(read: Read, key: bytes) -> dict | None:
    raw = read(AUTHN_CONTRACT, binding_key(key.hex()))
    return None if raw is None else json.loads(raw)  # written by the authn contract only: canonical JSON


def binding_problem(binding: dict | None, key: bytes, at_ms: int) -> str | None:
    """Why `key` is not a citizen's at at_ms, or None when its binding holds."""
    who = f"key {key.hex()[:16]}"
    if binding is None:
        return f"{who} has no authn binding (authenticate first: an authn event binds the app key to a subject)"
    if binding["revoked"]:
        return f"{who}'s authn binding (event {binding['event_id']}) was revoked"
    if at_ms >= binding["expires_at_ms"]:
        return f"{who}'s authn binding (event {binding['event_id']}) expired at {binding['expires_at_ms']} ms " \
               f"(time {at_ms} ms)"
    return None


def citizen_refusal(read: Read | None, key: bytes, at_ms: int) -> str | None:
    """Why `key` may not act as a citizen at at_ms; None when it may.
    `read` None: this node or chain has no view of the authn chain."""
    if read is None:
        return "the authn chain cannot be read here"
    return binding_problem(binding_of(read, key), key, at_ms)
