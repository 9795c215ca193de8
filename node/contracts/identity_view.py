"""Who signed a transaction, as the catalog chain registers it (docs/design.md,
"Contracts"). Not a contract: a helper the contracts of other chains use
through cross-chain reads.

Minimal stand-in of the documented interface; engineer "catalog" owns the
real module (catalog state `key/<64 hex>` -> canonical JSON {"department",
"roles", "status", "since", "revoked_at"}).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

CATALOG_CHAIN = "catalog"
CATALOG_CONTRACT = "catalog"

Read = Callable[[str, bytes], "bytes | None"]


@dataclass(frozen=True)
class SignerRecord:
    key: bytes
    department: str
    roles: tuple[str, ...]
    status: str
    since: int
    revoked_at: int | None


def lookup_signer(read: Read, key: bytes) -> SignerRecord | None:
    """The catalog's record of `key`, or None when it is not registered."""
    raw = read(CATALOG_CONTRACT, b"key/" + key.hex().encode())
    if raw is None:
        return None
    record = json.loads(raw)
    return SignerRecord(key=key, department=record["department"], roles=tuple(record["roles"]),
                        status=record["status"], since=record["since"], revoked_at=record.get("revoked_at"))
