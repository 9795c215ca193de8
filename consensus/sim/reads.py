"""Proposal metadata in the simulator: a virtual external chain that each node
sees at a height growing with virtual time, as a chain sees another chain it
reads (docs/design.md, "Cross-chain reads").

The external chain makes a block every PERIOD_MS of virtual time; node i
holds it LAG_i later (drawn per seed from the reads RNG, which is derived
after every other subsystem's, so it shifts none of them). A primary names
its own external height (8 bytes, big endian); a replica WAITs while that
height is above its own and REJECTs metadata that is not 8 bytes. The
Byzantine behaviour `future-reads` names a height that never exists: its
backups WAIT until the request timeout replaces it.
"""
from __future__ import annotations

import random
from collections.abc import Callable

from consensus.metadata import ACCEPT, WAIT, Verdict, reject

PERIOD_MS = 100
LAG_MS_MAX = 300  # well below the sim's request timeout (runner.SIM_CONFIG): honest WAITs are short
FUTURE_HEIGHT = 1 << 62  # what `future-reads` names: beyond any run's external height
METADATA_BEHAVIOURS = ("future-reads",)  # Byzantine behaviours that act through the metadata
FUTURE_READS_CHANCE = 0.25  # per drawn Byzantine node, when the profile's behaviours were drawn


class ExternalChain:
    def __init__(self, n: int, rng: random.Random, now: Callable[[], int]) -> None:
        self.lags = [rng.randint(0, LAG_MS_MAX) for _ in range(n)]
        self._now = now

    def height(self, node: int) -> int:
        return max(0, self._now() - self.lags[node]) // PERIOD_MS

    def propose(self, node: int, lying: Callable[[], bool]) -> Callable[[], bytes]:
        def propose_metadata() -> bytes:
            return (FUTURE_HEIGHT if lying() else self.height(node)).to_bytes(8, "big")
        return propose_metadata

    def check(self, node: int) -> Callable[[bytes], Verdict]:
        def check_metadata(metadata: bytes) -> Verdict:
            if len(metadata) != 8:
                return reject("malformed external height")
            return WAIT if int.from_bytes(metadata, "big") > self.height(node) else ACCEPT
        return check_metadata


def draw_future_reads(behaviours: tuple[str, ...], rng: random.Random) -> tuple[str, ...]:
    """Add `future-reads` to some drawn Byzantine behaviours (from the reads RNG)."""
    return tuple(b + "+future-reads" if rng.random() < FUTURE_READS_CHANCE and b != "silent" else b
                 for b in behaviours)
