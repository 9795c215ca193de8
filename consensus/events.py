"""Inputs to Replica.step(), the Ready batch it returns, and durable records.

Inputs are facts (frozen, keyword-only). A Ready is handled in a fixed order
by the shell: persist (fsync when `sync`) -> send -> apply committed blocks ->
Replica.advance(). Anything the replica signs that it must not forget is in
`persist` of the same Ready as the message that depends on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from consensus import messages as m

FROZEN = dict(frozen=True, kw_only=True)


# ---- inputs -------------------------------------------------------------

@dataclass(**FROZEN)
class MessageReceived:
    message: m.Message


@dataclass(**FROZEN)
class RequestsSubmitted:
    """Client requests the shell admitted (signature already checked)."""

    requests: tuple[m.Request, ...]


@dataclass(**FROZEN)
class Tick:
    """One unit of logical time. `now_ms` is the local clock, used only for
    proposal timestamps; timeouts count ticks, so safety never reads a clock."""

    now_ms: int = 0


@dataclass(**FROZEN)
class BlockExecuted:
    """The shell executed block `seq`; `block_hash` covers its state root.
    Checkpoints (§4.3) sign this hash every checkpoint_interval_blocks."""

    seq: int
    block_hash: bytes


@dataclass(**FROZEN)
class MetadataAdvanced:
    """What the injected metadata check depends on may have changed (for the
    node: a chain this chain reads made a block durable). Held PrePrepares
    are checked again at once instead of at the next Tick (docs/design.md,
    "Cross-chain reads")."""


Event = MessageReceived | RequestsSubmitted | Tick | BlockExecuted | MetadataAdvanced


# ---- durable records ----------------------------------------------------
# Keys are tuples: ("view",), ("pre_prepare", seq), ("prepared", seq),
# ("checkpoint",). A value of None deletes the key. ("checkpoint", seq) holds
# the proof of a checkpoint below the stable one, which state transfer
# brought: kept for the record (chain verify, peers), never restored.

@dataclass(**FROZEN)
class ViewRecord:
    view: int
    changing: bool  # True while waiting for the NewView of `view`
    floor: int = 0  # min-s of the view's NewView: seqs at or below are decided elsewhere


StableCheckpoint = m.StableCheckpoint


RecordKey = tuple
Record = ViewRecord | m.PrePrepare | m.PreparedCertificate | StableCheckpoint


@dataclass(**FROZEN)
class Write:
    key: RecordKey
    value: Record | None


# ---- outputs ------------------------------------------------------------

@dataclass(**FROZEN)
class Send:
    to: int | None  # None = every other replica
    message: m.Message


@dataclass(**FROZEN)
class ServeBlocks:
    """A peer asked for blocks; only the shell's ledger has them."""

    to: int
    from_seq: int
    to_seq: int


@dataclass(**FROZEN)
class Ready:
    persist: tuple[Write, ...] = ()
    sync: bool = False
    messages: tuple[Send, ...] = ()
    committed: tuple[m.CommittedBlock, ...] = ()
    serve: tuple[ServeBlocks, ...] = ()
    dropped: tuple[str, ...] = ()  # reasons, for the shell's counters and logs
    # Why this replica's ledger is not the history 2f+1 validators signed
    # (docs/design.md, "Block binding"). The shell stops the chain before it
    # persists or sends anything of this Ready; the replica takes no further part.
    diverged: str = ""

    def __bool__(self) -> bool:
        return bool(self.persist or self.messages or self.committed or self.serve or self.dropped
                    or self.diverged)


# ---- restart ------------------------------------------------------------

@dataclass(**FROZEN)
class RestoredState:
    """What a restarting replica gets back: its durable records plus the
    ledger's last executed block (which the shell stores, not the core)."""

    records: dict = field(default_factory=dict)  # RecordKey -> Record
    executed_seq: int = 0
    executed_timestamp_ms: int = 0
    executed_link: bytes = b""  # link(executed_seq), from the block's header; unused at 0
    # seq -> block hash for executed blocks above the stable checkpoint, so a
    # restarted replica can vote for the checkpoints it already passed.
    executed_hashes: dict = field(default_factory=dict)
