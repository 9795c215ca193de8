"""Block headers: what the ledger stores and hashes after a block commits.

PBFT agrees on the Proposal (its digest is what the commit certificate signs,
with the link over every digest below: docs/design.md, "Block binding").
The header adds what every replica derives deterministically once the block is
final: the parent hash and the state root after execution, and keeps the
certified link, so the block hash covers it. The timestamp is
the proposer's, clamped so it never goes back. The view is deliberately left
out: after a view change two correct replicas may hold certificates of
different views for the same proposal, and their blocks must still be equal.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

from consensus.messages import CommittedBlock

GENESIS_PARENT = bytes(32)


@dataclass(frozen=True, kw_only=True)
class BlockHeader:
    chain_id: str
    height: int
    parent_hash: bytes
    proposer: int
    timestamp_ms: int
    tx_root: bytes
    state_root: bytes
    proposal_digest: bytes
    link: bytes  # the certificate's link(height) (consensus.messages.next_link)

    @cached_property
    def hash(self) -> bytes:
        chain = self.chain_id.encode()
        return hashlib.sha256(
            b"govchain:v1:block:" + len(chain).to_bytes(2, "big") + chain
            + self.height.to_bytes(8, "big") + self.parent_hash
            + self.proposer.to_bytes(4, "big")
            + self.timestamp_ms.to_bytes(8, "big") + self.tx_root + self.state_root
            + self.proposal_digest + self.link
        ).digest()


def make_header(block: CommittedBlock, parent: BlockHeader | None, state_root: bytes) -> BlockHeader:
    p = block.proposal
    return BlockHeader(
        chain_id=p.chain_id,
        height=p.seq,
        parent_hash=parent.hash if parent else GENESIS_PARENT,
        proposer=p.proposer,
        timestamp_ms=max(p.timestamp_ms, parent.timestamp_ms if parent else 0),
        tx_root=p.tx_root,
        state_root=state_root,
        proposal_digest=p.digest,
        link=block.certificate.link,
    )
