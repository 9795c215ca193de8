"""Offline verification of a whole chain against its genesis keys.

Independent of the node's commit path: it re-derives every header from the
certified proposal and checks every hash link, Merkle root and signature, and
that each certified link extends the one below it from the genesis: a chain
spliced from two histories fails there even if its headers were re-derived
(docs/design.md, "Block binding").
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from consensus.block import BlockHeader, make_header
from consensus.certificates import valid_committed_block, valid_stable_checkpoint
from consensus.events import StableCheckpoint
from consensus.messages import CommittedBlock, genesis_link, next_link
from consensus.quorum import quorum_size
from node.core.crypto import Ed25519Verifier
from node.core.genesis import Genesis


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    height: int  # blocks verified, or the first bad height
    checkpoints: int = 0
    problem: str = ""


def verify_chain(genesis: Genesis,
                 blocks: Iterable[tuple[BlockHeader, CommittedBlock, StableCheckpoint | None]]) -> VerifyResult:
    n = len(genesis.validators)
    verifier = Ed25519Verifier([v.public_key_bytes for v in genesis.validators])
    parent: BlockHeader | None = None
    link = genesis_link(genesis.chain_id, genesis.hash)
    checkpoints = 0
    height = 0
    for header, block, checkpoint in blocks:
        height += 1
        if header.height != height or block.seq != height:
            return VerifyResult(False, height, checkpoints, f"expected height {height}, found {header.height}")
        if not valid_committed_block(block, genesis.chain_id, n, verifier):
            return VerifyResult(False, height, checkpoints, "commit certificate does not verify against genesis keys")
        link = next_link(link, block.proposal.digest)
        if block.certificate.link != link:
            return VerifyResult(False, height, checkpoints, "certified link does not extend the blocks below: "
                                "the validators signed this block on another history (a spliced chain)")
        expected = make_header(block, parent, header.state_root)
        if header != expected:
            diff = [f for f in ("chain_id", "parent_hash", "proposer", "timestamp_ms", "tx_root",
                                "proposal_digest", "link") if getattr(header, f) != getattr(expected, f)]
            return VerifyResult(False, height, checkpoints, f"header does not match certified block: {', '.join(diff)}")
        if checkpoint is not None:
            problem = checkpoint_problem(checkpoint, header, n, verifier)
            if problem:
                return VerifyResult(False, height, checkpoints, problem)
            checkpoints += 1
        parent = header
    return VerifyResult(True, height, checkpoints)


def checkpoint_problem(cp: StableCheckpoint, header: BlockHeader, n: int, verifier) -> str:
    """A stable checkpoint signs the block hash, which covers the state root."""
    if cp.seq != header.height or cp.digest != header.hash:
        return "stable checkpoint does not match the block hash (state root differs)"
    if not valid_stable_checkpoint(cp, header.chain_id, n, verifier):
        return f"stable checkpoint proof does not hold {quorum_size(n)} distinct valid signatures over this block"
    return ""
