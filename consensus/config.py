"""Consensus parameters. Everything counts ticks and blocks; only the node's
config knows how many milliseconds a tick is."""
from __future__ import annotations

from dataclasses import dataclass

from consensus.quorum import max_faulty


@dataclass(frozen=True, kw_only=True)
class ReplicaConfig:
    chain_id: str
    validators: int  # n, the size of the genesis validator set
    replica: int  # our index in that set
    batch_txs_max: int = 1000
    batch_bytes_max: int = 1 << 20
    batch_wait_ticks: int = 1
    checkpoint_interval_blocks: int = 16
    window_blocks: int = 64  # high watermark = stable checkpoint + window
    in_flight_blocks_max: int = 8
    request_timeout_ticks: int = 200
    view_change_timeout_ticks: int = 200
    view_change_timeout_max_ticks: int = 1600
    status_interval_ticks: int = 20
    retransmit_interval_ticks: int = 20
    pending_requests_max: int = 50_000
    pending_requests_bytes_max: int = 64 << 20  # the same pool in bytes: a count alone lets large requests fill memory
    timestamp_skew_max_ms: int = 60_000
    fetch_blocks_max: int = 64
    genesis_hash: bytes = b""  # the genesis file's hash (node/core/genesis.py): link(0) derives from it

    def __post_init__(self) -> None:
        if self.validators < 1:
            raise ValueError("validators must be at least 1")
        if not 0 <= self.replica < self.validators:
            raise ValueError(f"replica {self.replica} is not in 0..{self.validators - 1}")
        if self.window_blocks < 2 * self.checkpoint_interval_blocks:
            raise ValueError("window_blocks must be at least 2 x checkpoint_interval_blocks")
        for name in ("batch_txs_max", "batch_bytes_max", "batch_wait_ticks", "checkpoint_interval_blocks",
                     "in_flight_blocks_max", "request_timeout_ticks", "view_change_timeout_ticks",
                     "status_interval_ticks", "retransmit_interval_ticks", "pending_requests_max",
                     "pending_requests_bytes_max", "fetch_blocks_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.view_change_timeout_max_ticks < self.view_change_timeout_ticks:
            raise ValueError("view_change_timeout_max_ticks must be >= view_change_timeout_ticks")

    @property
    def f(self) -> int:
        return max_faulty(self.validators)

    def primary(self, view: int) -> int:
        return view % self.validators
