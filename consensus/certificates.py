"""Checks of quorum certificates, shared by the replica, the simulator's
checker and the node's offline `chain verify`."""
from __future__ import annotations

from consensus import messages as m
from consensus.quorum import has_quorum, quorum_size
from consensus.signing import Verifier, signable


class VerifiedCache:
    """A Verifier that remembers the signatures it has already accepted.

    The same signed message reaches a replica many times: retransmitted, and
    inside certificates (a commit certificate in every ViewChange, prepared
    certificates in ViewChanges, 2f+1 ViewChanges in a NewView, blocks in
    state transfer). A hit needs the same signature AND the same replica and
    signed bytes, never the signature alone: a valid signature copied onto
    other content misses, is checked and rejected as usual, and does not
    displace the entry. Only acceptances are kept, so garbage cannot fill
    it; it forgets everything when it reaches `size_max` or when the owner
    calls `clear()`. A memo of a pure function: it never changes an answer,
    so runs stay deterministic.
    """

    def __init__(self, verifier: Verifier, size_max: int) -> None:
        self._verifier = verifier
        self._size_max = size_max
        self._accepted: dict[bytes, tuple[int, bytes]] = {}  # signature -> (replica, signed bytes)

    def __len__(self) -> int:
        return len(self._accepted)

    def verify(self, replica: int, data: bytes, signature: bytes) -> bool:
        known = self._accepted.get(signature)
        if known is not None and known[0] == replica and known[1] == data:
            return True
        if not self._verifier.verify(replica, data, signature):
            return False
        if len(self._accepted) >= self._size_max:
            self._accepted.clear()
        self._accepted[signature] = (replica, data)
        return True

    def clear(self) -> None:
        self._accepted.clear()


def signed_by(msg: m.Message, n: int, verifier: Verifier) -> bool:
    return 0 <= msg.replica < n and verifier.verify(msg.replica, signable(msg), msg.signature)


def _vote_subject(v) -> tuple:
    return v.chain_id, v.view, v.seq, v.digest


def _commit_subject(c: m.Commit | m.CommitCertificate) -> tuple:
    return c.chain_id, c.view, c.seq, c.digest, c.link


def _checkpoint_subject(c: m.Checkpoint) -> tuple:
    return c.chain_id, c.seq, c.digest


def _distinct_signed_votes(votes, about: tuple, voters: list[int], n: int, verifier: Verifier,
                           subject=_vote_subject) -> bool:
    """Every vote is about `about`, from a new voter, and correctly signed;
    appends the voters."""
    for v in votes:
        if subject(v) != about or v.replica in voters or not signed_by(v, n, verifier):
            return False
        voters.append(v.replica)
    return True


def valid_stable_checkpoint(cp: m.StableCheckpoint, chain_id: str, n: int, verifier: Verifier) -> bool:
    """Genesis, or 2f+1 distinct validators signed Checkpoint(seq, digest) (§4.3)."""
    if cp.seq == 0:
        return cp.digest == b"" and not cp.proof
    voters: list[int] = []
    return (len(cp.digest) == 32
            and _distinct_signed_votes(cp.proof, (chain_id, cp.seq, cp.digest), voters, n, verifier,
                                       _checkpoint_subject)
            and has_quorum(voters, n))


def valid_commit_certificate(cert: m.CommitCertificate, n: int, verifier: Verifier) -> bool:
    """2f+1 distinct validators signed Commit for (chain, view, seq, digest, link).
    Whether the link extends the blocks below is for whoever holds them."""
    voters: list[int] = []
    return (len(cert.link) == 32
            and _distinct_signed_votes(cert.commits, _commit_subject(cert), voters, n, verifier, _commit_subject)
            and has_quorum(voters, n))


def valid_committed_block(block: m.CommittedBlock, chain_id: str, n: int, verifier: Verifier) -> bool:
    cert = block.certificate
    return (
        block.proposal.chain_id == chain_id
        and cert.chain_id == chain_id
        and cert.seq == block.proposal.seq
        and cert.digest == block.proposal.digest
        and valid_commit_certificate(cert, n, verifier)
    )


def valid_prepared_certificate(cert: m.PreparedCertificate, n: int, primary: int, verifier: Verifier) -> bool:
    """A PrePrepare from the view's primary plus 2f Prepares from others (§4.2).
    The PrePrepare may be a header; a body, if present, must match its digest."""
    pp, p = cert.pre_prepare, cert.pre_prepare.proposal
    if pp.replica != primary or not signed_by(pp, n, verifier):
        return False
    if p is not None and (pp.digest != p.digest or p.seq != pp.seq or p.chain_id != pp.chain_id):
        return False
    voters = [pp.replica]
    about = (pp.chain_id, pp.view, pp.seq, pp.digest)
    return _distinct_signed_votes(cert.prepares, about, voters, n, verifier) and len(voters) >= quorum_size(n)
