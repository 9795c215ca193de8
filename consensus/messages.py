"""PBFT protocol messages (Castro & Liskov, OSDI'99 §4) as frozen dataclasses.

Every message names its chain and its sender (`replica`, an index into the
genesis validator list) and carries the sender's signature over
`consensus.signing.signable(msg)`. A PrePrepare piggybacks the whole proposal
(the batch of requests) as PBFT allows; the signature covers only its digest.
Certificates and NewViews carry PrePrepare headers (no proposal) and digests,
as in the paper (§4.4), so their size does not grow with the payload; a
replica that lacks a body fetches it (FetchProposal / ProposalReply).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property

from consensus.merkle import merkle_root

FROZEN = dict(frozen=True, kw_only=True)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(**FROZEN)
class Request:
    """One client transaction, opaque to the core. `id` is its digest."""

    id: bytes
    body: bytes


@dataclass(**FROZEN)
class Proposal:
    """What PBFT agrees on for one sequence number: the block body.

    The digest covers every field the proposer chose. The parent hash and the
    state root are derived by every replica after commit (consensus.block), so
    several sequence numbers can be in flight without depending on each other.
    A null proposal (no requests, timestamp 0) fills gaps after a view change.
    """

    chain_id: str
    seq: int
    proposer: int
    timestamp_ms: int
    requests: tuple[Request, ...] = ()
    # Opaque to the core, at most PROPOSAL_METADATA_BYTES_MAX bytes (consensus.metadata);
    # empty in a null proposal (docs/design.md, "Cross-chain reads").
    metadata: bytes = b""

    @cached_property
    def tx_root(self) -> bytes:
        """Merkle root over the requests. A leaf is the id followed by the
        body's hash, so the digest pins every byte a replica will execute:
        a faulty primary or state-transfer peer cannot ship other bytes
        under the same ids."""
        return merkle_root([tx_leaf(r) for r in self.requests])

    @cached_property
    def digest(self) -> bytes:
        return proposal_digest(self.chain_id, self.seq, self.proposer, self.timestamp_ms, self.tx_root,
                               self.metadata)

    @property
    def is_null(self) -> bool:
        return not self.requests and self.timestamp_ms == 0 and not self.metadata

    @cached_property
    def size_bytes(self) -> int:
        return sum(len(r.body) + len(r.id) for r in self.requests)


def proposal_digest(chain_id: str, seq: int, proposer: int, timestamp_ms: int, tx_root: bytes,
                    metadata: bytes) -> bytes:
    """Proposal.digest from its fields: what an audit proof, which carries a
    tx_root and not the transactions, recomputes (docs/design.md, "Audit proofs")."""
    return sha256(
        b"govchain:v1:proposal:"
        + chain_id.encode()
        + seq.to_bytes(8, "big")
        + proposer.to_bytes(4, "big")
        + timestamp_ms.to_bytes(8, "big")
        + tx_root
        + len(metadata).to_bytes(4, "big") + metadata
    )


def tx_leaf(request: Request) -> bytes:
    return request.id + sha256(request.body)


def null_proposal(chain_id: str, seq: int, proposer: int) -> Proposal:
    return Proposal(chain_id=chain_id, seq=seq, proposer=proposer, timestamp_ms=0)


def genesis_link(chain_id: str, genesis_hash: bytes) -> bytes:
    """link(0): binds the link chain to the chain's genesis (docs/design.md, "Block binding")."""
    chain = chain_id.encode()
    return sha256(b"govchain:v1:genesis-link:" + len(chain).to_bytes(2, "big") + chain + genesis_hash)


def next_link(previous: bytes, digest: bytes) -> bytes:
    """link(seq) = H(link(seq-1), digest(seq)): a hash chain over proposal
    digests, which a Commit signs so that a block cannot be grafted onto
    another history (docs/design.md, "Block binding")."""
    return sha256(b"govchain:v1:link:" + previous + digest)


@dataclass(**FROZEN)
class PrePrepare:
    """§4.2. `proposal` is None in a header: the form certificates and
    NewViews carry. The signature covers (view, seq, digest), so a header
    keeps the signature of the full message."""

    chain_id: str
    view: int
    seq: int
    digest: bytes
    proposal: Proposal | None
    replica: int
    signature: bytes = field(default=b"", compare=False)

    def header(self) -> PrePrepare:
        return self if self.proposal is None else replace(self, proposal=None)


@dataclass(**FROZEN)
class Prepare:
    chain_id: str
    view: int
    seq: int
    digest: bytes
    replica: int
    signature: bytes = field(default=b"", compare=False)


@dataclass(**FROZEN)
class Commit:
    """§4.2, plus `link` (next_link): the sender knew the digest of every seq
    below, so the commit certificate binds the block to its whole history."""

    chain_id: str
    view: int
    seq: int
    digest: bytes
    link: bytes
    replica: int
    signature: bytes = field(default=b"", compare=False)


@dataclass(**FROZEN)
class Checkpoint:
    """Claims the chain digest after executing `seq` (§4.3)."""

    chain_id: str
    seq: int
    digest: bytes
    replica: int
    signature: bytes = field(default=b"", compare=False)


@dataclass(**FROZEN)
class PreparedCertificate:
    """A PrePrepare and 2f matching Prepares from other replicas (§4.2). In a
    ViewChange the PrePrepare is a header; a replica's own log keeps the body."""

    pre_prepare: PrePrepare
    prepares: tuple[Prepare, ...]

    @property
    def view(self) -> int:
        return self.pre_prepare.view

    @property
    def seq(self) -> int:
        return self.pre_prepare.seq

    @property
    def digest(self) -> bytes:
        return self.pre_prepare.digest


@dataclass(**FROZEN)
class CommitCertificate:
    """2f+1 Commits for one (view, seq, digest, link): proof that a block is
    final, and of the digests of every block below it (through the link).

    Anyone with the genesis validator keys can check it offline.
    """

    chain_id: str
    view: int
    seq: int
    digest: bytes
    link: bytes
    commits: tuple[Commit, ...]


@dataclass(**FROZEN)
class CommittedBlock:
    proposal: Proposal
    certificate: CommitCertificate

    @property
    def seq(self) -> int:
        return self.proposal.seq


@dataclass(**FROZEN)
class StableCheckpoint:
    """A checkpoint with its proof: 2f+1 signed Checkpoints for (seq, digest).
    seq 0 (the genesis) needs no proof."""

    seq: int
    digest: bytes
    proof: tuple[Checkpoint, ...]


GENESIS_CHECKPOINT = StableCheckpoint(seq=0, digest=b"", proof=())


@dataclass(**FROZEN)
class ViewChange:
    """Sent by a replica moving to `view` (§4.4): its stable checkpoint with
    the proof, and a prepared certificate for every seq above it."""

    chain_id: str
    view: int
    checkpoint: StableCheckpoint
    prepared: tuple[PreparedCertificate, ...]
    replica: int
    signature: bytes = field(default=b"", compare=False)


@dataclass(**FROZEN)
class NewView:
    """§4.4: 2f+1 ViewChanges and the O set as PrePrepare headers."""

    chain_id: str
    view: int
    view_changes: tuple[ViewChange, ...]
    pre_prepares: tuple[PrePrepare, ...]
    replica: int
    signature: bytes = field(default=b"", compare=False)


@dataclass(**FROZEN)
class RequestBatch:
    """Client requests a backup forwards to the primary (§4.1)."""

    chain_id: str
    requests: tuple[Request, ...]
    replica: int
    signature: bytes = field(default=b"", compare=False)


@dataclass(**FROZEN)
class Status:
    """Periodic heartbeat: lets lagging replicas learn they are behind (in
    blocks, in views and in stable checkpoints)."""

    chain_id: str
    view: int
    executed_seq: int
    stable_seq: int = 0  # the sender's stable checkpoint (0: none yet): a peer ahead sends it the proof
    replica: int
    signature: bytes = field(default=b"", compare=False)


@dataclass(**FROZEN)
class FetchBlocks:
    """State transfer: ask a peer for committed blocks [from_seq, to_seq]."""

    chain_id: str
    from_seq: int
    to_seq: int
    replica: int
    signature: bytes = field(default=b"", compare=False)


@dataclass(**FROZEN)
class BlocksReply:
    """Answer to FetchBlocks. Unsigned: every block carries its certificate.
    `checkpoints`: the stable-checkpoint proofs the sender holds for blocks
    of the reply at checkpoint heights, so a replica rebuilt by state
    transfer keeps them too."""

    chain_id: str
    blocks: tuple[CommittedBlock, ...]
    checkpoints: tuple[StableCheckpoint, ...] = ()
    replica: int
    signature: bytes = field(default=b"", compare=False)


@dataclass(**FROZEN)
class FetchProposal:
    """Ask a replica that prepared (seq, digest) for the proposal's body: the
    sender entered a view whose NewView names a digest it has no body for."""

    chain_id: str
    seq: int
    digest: bytes
    replica: int
    signature: bytes = field(default=b"", compare=False)


@dataclass(**FROZEN)
class ProposalReply:
    """Answer to FetchProposal. Unsigned: the receiver checks the body
    against the digest it asked for."""

    chain_id: str
    proposal: Proposal
    replica: int
    signature: bytes = field(default=b"", compare=False)


Message = (
    PrePrepare | Prepare | Commit | Checkpoint | ViewChange | NewView
    | RequestBatch | Status | FetchBlocks | BlocksReply | FetchProposal | ProposalReply
)
