"""What executing a transaction produced: its receipt and the state writes a
block makes. A leaf module, so the codec, the executor and the ledger all use
it without importing one another (docs/design.md, "Layers and imports")."""
from __future__ import annotations

from dataclasses import dataclass

OK = "OK"
FAILED = "FAILED"
DUPLICATE = "DUPLICATE"
STATUSES = (OK, FAILED, DUPLICATE)

MESSAGE_CHARS_MAX = 512


@dataclass(frozen=True, kw_only=True)
class Receipt:
    """The outcome of one transaction of a committed block."""

    tx_id: bytes
    height: int
    index: int  # position in the block's requests
    status: str  # OK | FAILED | DUPLICATE
    message: str = ""
    output: bytes = b""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown receipt status {self.status!r}")


StateWrite = tuple[str, bytes, "bytes | None"]
"""(contract, key, value); value None is a tombstone (delete)."""
