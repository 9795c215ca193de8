"""Who a transaction's sender is: the catalog chain's identity registry, read
by the platform (docs/design.md, "Identities and permissions").

The helpers the platform's permission checks (node/chain/admission.py,
node/ledger/execution.py) and the contracts share. Here, below node.ledger
in the layers, so that execution can use them. They read the catalog contract's
state through a `read(contract, key) -> bytes | None` callable, so the same
code serves every reader:

- on the catalog chain, execution reads the chain's own state before the
  transaction, admission the node's durable snapshot;
- on another chain, execution reads the catalog at the height its block pins
  (`ctx.read("catalog", contract, key)`), admission the node's durable
  catalog state.

Standard library only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from node.identity.citizens import CITIZEN, citizen_refusal

CATALOG_CHAIN = "catalog"
CATALOG_CONTRACT = "catalog"

ANYONE = "anyone"
"""The role of a method any key may call whose signature verifies. Only the
open demo contract (kv) uses it; it is never checked against the catalog."""

ROLES = ("auditor", "governance", "identity", "issuer", "provider", "requester", "window")
"""The platform's roles, the only ones the catalog (version 1) registers:
governance approves catalog changes, provider registers catalog items,
requester asks verification queries, identity writes authentication events,
issuer issues certificates, window records verifications and asks queries
for a citizen, auditor reads any citizen's access log (the Audit service).
The role `citizen` is not here: citizens have no catalog key
(node.identity.citizens)."""

GOVERNANCE = "governance"
ACTIVE, REVOKED = "active", "revoked"

Read = Callable[[str, bytes], "bytes | None"]


@dataclass(frozen=True)
class SignerRecord:
    """A key's catalog record (`key/<hex>` in the catalog contract's state)."""

    key: bytes
    department: str
    roles: tuple[str, ...]
    status: str  # ACTIVE | REVOKED
    since: int  # catalog height it was registered at (0: genesis)
    revoked_at: int | None


def key_state_key(key: bytes) -> bytes:
    """Where the catalog keeps a key's record."""
    return b"key/" + key.hex().encode()


def short(key: bytes) -> str:
    """A key in messages: the first 16 hex characters."""
    return key.hex()[:16]


def lookup_signer(read: Read, key: bytes) -> SignerRecord | None:
    """The catalog's record of `key`, or None when it was never registered."""
    raw = read(CATALOG_CONTRACT, key_state_key(key))
    if raw is None:
        return None
    record = json.loads(raw)  # written by the catalog contract only: canonical JSON of this shape
    return SignerRecord(key=key, department=record["department"], roles=tuple(record["roles"]),
                        status=record["status"], since=record["since"], revoked_at=record["revoked_at"])


def check_role(signer: SignerRecord, role: str) -> str | None:
    """Why `signer` may not act in `role`, or None when it may."""
    if signer.status != ACTIVE:
        return f"key {short(signer.key)} of {signer.department} was revoked at catalog height {signer.revoked_at}"
    if role not in signer.roles:
        return f"key {short(signer.key)} of {signer.department} has roles [{', '.join(signer.roles)}]"
    return None


def permission_refusal(read: Read | None, key: bytes, contract: str, method: str, role: str | tuple[str, ...], *,
                       authn: Read | None = None, at_ms: int = 0) -> str | None:
    """The refusal of a write method `contract`.`method` declaring `role`
    (or a tuple of roles, any of which will do) sent by `key`, or None when
    the sender may call it. The same message answers PERMISSION_DENIED at
    admission and fills the FAILED receipt in execution. `read` None: no
    view of the catalog here (a node that does not serve the catalog chain,
    a chain that does not read it). The role `citizen` is no catalog role:
    `authn` reads the authn chain's bindings, in force at `at_ms`
    (node.identity.citizens; docs/design.md, "Consent and the access log (authz)")."""
    roles = (role,) if isinstance(role, str) else role
    if ANYONE in roles:
        return None
    problems = []
    for one in roles:
        problem = citizen_refusal(authn, key, at_ms) if one == CITIZEN else _catalog_refusal(read, key, one)
        if problem is None:
            return None
        problems.append(problem)
    return f"permission denied: {contract}.{method} needs role {' or '.join(map(repr, roles))}; " \
           + "; ".join(dict.fromkeys(problems))


def _catalog_refusal(read: Read | None, key: bytes, role: str) -> str | None:
    if read is None:
        return "the catalog chain cannot be read here"
    signer = lookup_signer(read, key)
    if signer is None:
        return f"key {short(key)} is not registered in the catalog"
    return check_role(signer, role)
