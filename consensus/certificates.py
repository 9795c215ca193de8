"""Checks of quorum certificates, shared by the replica, the simulator's
checker and the node's offline `chain verify`."""
from __future__ import annotations

from consensus import messages as m
from consensus.quorum import has_quorum, quorum_size
from consensus.signing import Verifier, signable


def signed_by(msg: m.Message, n: int, verifier: Verifier) -> bool:
    return 0 <= msg.replica < n and verifier.verify(msg.replica, signable(msg), msg.signature)


def valid_commit_certificate(cert: m.CommitCertificate, n: int, verifier: Verifier) -> bool:
    """2f+1 distinct validators signed Commit for (chain, view, seq, digest)."""
    voters = []
    for c in cert.commits:
        if (c.chain_id, c.view, c.seq, c.digest) != (cert.chain_id, cert.view, cert.seq, cert.digest):
            return False
        if c.replica in voters or not signed_by(c, n, verifier):
            return False
        voters.append(c.replica)
    return has_quorum(voters, n)


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
    """A PrePrepare from the view's primary plus 2f Prepares from others (§4.2)."""
    pp = cert.pre_prepare
    if pp.replica != primary or pp.digest != pp.proposal.digest or pp.proposal.seq != pp.seq:
        return False
    if pp.proposal.chain_id != pp.chain_id or not signed_by(pp, n, verifier):
        return False
    voters = [pp.replica]
    for p in cert.prepares:
        if (p.chain_id, p.view, p.seq, p.digest) != (pp.chain_id, pp.view, pp.seq, pp.digest):
            return False
        if p.replica in voters or not signed_by(p, n, verifier):
            return False
        voters.append(p.replica)
    return len(voters) >= quorum_size(n)
