"""Proposal metadata: opaque bytes the primary attaches to a proposal, and the
verdict a replica's injected check gives on them (docs/design.md, "Cross-chain
reads").

The core never interprets metadata. The shell injects two callables, as it
injects the Signer and Verifier: `propose_metadata() -> bytes`, called by the
primary when it cuts a proposal, and `check_metadata(metadata) -> Verdict`,
called before a replica accepts (and so votes for) a PrePrepare. WAIT means
"not yet": the replica keeps the PrePrepare without voting and asks again on
every Tick and on MetadataAdvanced; a primary that names what never comes is
replaced by the normal request timeout. REJECT drops the PrePrepare.
"""
from __future__ import annotations

from dataclasses import dataclass

PROPOSAL_METADATA_BYTES_MAX = 1024  # a proposal's metadata; the codec enforces it too


@dataclass(frozen=True)
class Verdict:
    kind: str  # "accept", "wait" or "reject"
    reason: str = ""  # for "reject": a short fixed phrase (it names a drop counter)


ACCEPT = Verdict("accept")
WAIT = Verdict("wait")


def reject(reason: str) -> Verdict:
    return Verdict("reject", reason)


def no_metadata() -> bytes:
    return b""


def always_accept(metadata: bytes) -> Verdict:
    return ACCEPT
