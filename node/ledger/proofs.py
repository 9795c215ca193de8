"""Inclusion proofs: a transaction is in a committed block, checked offline
against the chain's genesis alone (docs/design.md, "Audit proofs").

A proof is one JSON object (bytes as lowercase hex):

    format          "govchain-inclusion-proof/1"
    chain_id, genesis_hash
    tx              {"id", "body"}: the transaction's id and canonical bytes
    index, tree_size, audit_path
                    the RFC 6962 audit path of leaf `index` (id || SHA-256(body))
                    in the block's tx_root over `tree_size` leaves
    proposal_timestamp_ms, proposal_metadata
                    what the proposal digest covers besides the header's fields:
                    the proposer's timestamp (the header keeps it clamped to never
                    go back) and the proposal's metadata (cross-chain read pins)
    header          the block header's fields and its hash
    certificate     the commit certificate: chain_id, view, seq, digest, link,
                    commits [{"replica", "signature"}]

The chain of evidence: 2f+1 genesis validators signed (chain, view, seq,
digest, link); the digest covers the header's tx_root; the audit path leads
from the transaction's leaf to that root; the leaf covers every byte of the
signed transaction. The header's other fields (parent hash, state root) are
not signed by the certificate; they are reported, with the recomputed block
hash, for comparison with `govchain block get` or `chain verify`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from consensus.block import BlockHeader
from consensus.certificates import signed_by, valid_commit_certificate
from consensus.merkle import audit_path, root_from_audit_path
from consensus.messages import Commit, CommitCertificate, Request, proposal_digest, tx_leaf
from consensus.metadata import PROPOSAL_METADATA_BYTES_MAX
from consensus.quorum import quorum_size
from node.core import codec
from node.core.crypto import Ed25519Verifier
from node.core.genesis import Genesis
from node.core.tx import Transaction, validate_shape, verify_signature

PROOF_FORMAT = "govchain-inclusion-proof/1"
TREE_SIZE_MAX = 1 << 20  # far above any block's transaction count; bounds the work of a hostile proof
_HEX_RE = re.compile(r"(?:[0-9a-f]{2})*")
_HEADER_DIGESTS = ("parent_hash", "tx_root", "state_root", "proposal_digest", "link", "hash")


class ProofError(ValueError):
    """No proof can be built (the transaction is not in the ledger), or a
    proof is malformed; the message names the field."""


@dataclass(frozen=True)
class InclusionVerdict:
    """What verify_inclusion_proof found. `transaction` is set only when ok:
    then every byte of it is proven to be in block `height` of the chain."""

    ok: bool
    problem: str = ""
    chain_id: str = ""
    height: int = 0
    index: int = 0
    block_hash: bytes = b""
    transaction: Transaction | None = None

    def to_json_obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "problem": self.problem, "chain_id": self.chain_id,
                               "height": self.height, "index": self.index, "block_hash": self.block_hash.hex()}
        if self.transaction is not None:
            t = self.transaction
            out["transaction"] = {"id": t.id.hex(), "chain_id": t.chain_id, "sender": t.sender.hex(),
                                  "nonce": t.nonce, "contract": t.contract, "method": t.method,
                                  **payload_json(t.payload)}
        return out


def payload_json(payload: bytes) -> dict[str, str]:
    """{"payload": text} for UTF-8 payloads (records are canonical JSON), else {"payload_hex": ...}."""
    try:
        return {"payload": payload.decode("utf-8")}
    except UnicodeDecodeError:
        return {"payload_hex": payload.hex()}


# ---- building (node side) -----------------------------------------------------------------------

def build_inclusion_proof(ledger, tx_id: bytes) -> dict[str, Any]:
    """The proof that committed transaction `tx_id` is in its block, from a
    node.ledger.ledger.Ledger. Raises ProofError if the ledger does not hold it."""
    location = ledger.tx_location(tx_id)
    if location is None:
        raise ProofError(f"transaction {tx_id.hex()} is not committed on chain {ledger.chain_id!r} "
                         f"(at height {ledger.height})")
    height, index = location
    block, header = ledger.block(height), ledger.header(height)
    requests = block.proposal.requests
    if not index < len(requests) or requests[index].id != tx_id:  # the index and the block disagree: damage
        raise ProofError(f"block {height} of chain {ledger.chain_id!r} does not hold transaction {tx_id.hex()} "
                         f"at index {index}; run `govchain chain verify`")
    cert = block.certificate
    return {
        "format": PROOF_FORMAT,
        "chain_id": ledger.chain_id,
        "genesis_hash": ledger.genesis_hash.hex(),
        "tx": {"id": tx_id.hex(), "body": requests[index].body.hex()},
        "index": index,
        "tree_size": len(requests),
        "audit_path": [h.hex() for h in audit_path([tx_leaf(r) for r in requests], index)],
        "proposal_timestamp_ms": block.proposal.timestamp_ms,
        "proposal_metadata": block.proposal.metadata.hex(),
        "header": {"height": header.height, "proposer": header.proposer, "timestamp_ms": header.timestamp_ms,
                   **{f: getattr(header, f).hex() for f in _HEADER_DIGESTS}},
        "certificate": {"chain_id": cert.chain_id, "view": cert.view, "seq": cert.seq, "digest": cert.digest.hex(),
                        "link": cert.link.hex(),
                        "commits": [{"replica": c.replica, "signature": c.signature.hex()} for c in cert.commits]},
    }


# ---- reading a proof ------------------------------------------------------------------------------

def _field(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise ProofError(f"{where or 'the proof'} must be a JSON object")
    if key not in obj:
        raise ProofError(f"{where}{'.' if where else ''}{key} is missing")
    return obj[key]


def _int(obj: Any, key: str, where: str, high: int = (1 << 64) - 1) -> int:
    value = _field(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ProofError(f"{where}{'.' if where else ''}{key} must be an integer in 0..{high}")
    return value


def _text(obj: Any, key: str, where: str) -> str:
    value = _field(obj, key, where)
    if not isinstance(value, str) or not value:
        raise ProofError(f"{where}{'.' if where else ''}{key} must be a non-empty string")
    return value


def _hex(value: Any, name: str, size: int | None = 32) -> bytes:
    if not isinstance(value, str) or not _HEX_RE.fullmatch(value) or (size is not None and len(value) != 2 * size):
        what = f"{2 * size} lowercase hex characters" if size is not None else "lowercase hex"
        raise ProofError(f"{name} must be {what}")
    return bytes.fromhex(value)


@dataclass(frozen=True)
class _Proof:
    chain_id: str
    genesis_hash: bytes
    request: Request
    index: int
    tree_size: int
    path: list[bytes]
    proposal_timestamp_ms: int
    proposal_metadata: bytes
    header: BlockHeader
    header_hash: bytes
    certificate: CommitCertificate


def _parse(proof: Any) -> _Proof:
    if _field(proof, "format", "") != PROOF_FORMAT:
        raise ProofError(f"format must be {PROOF_FORMAT!r}: not a govchain inclusion proof, or another version")
    chain_id = _text(proof, "chain_id", "")
    tx = _field(proof, "tx", "")
    request = Request(id=_hex(_field(tx, "id", "tx"), "tx.id"), body=_hex(_field(tx, "body", "tx"), "tx.body", None))
    if len(str(proof.get("proposal_metadata", ""))) > 2 * PROPOSAL_METADATA_BYTES_MAX:
        raise ProofError(f"proposal_metadata is longer than {PROPOSAL_METADATA_BYTES_MAX} bytes")
    path = _field(proof, "audit_path", "")
    if not isinstance(path, list) or len(path) > 64:
        raise ProofError("audit_path must be an array of at most 64 hashes")
    h = _field(proof, "header", "")
    digests = {f: _hex(_field(h, f, "header"), f"header.{f}") for f in _HEADER_DIGESTS}
    header_hash = digests.pop("hash")
    header = BlockHeader(chain_id=chain_id, height=_int(h, "height", "header"),
                         proposer=_int(h, "proposer", "header", 0xFFFFFFFF),
                         timestamp_ms=_int(h, "timestamp_ms", "header"), **digests)
    c = _field(proof, "certificate", "")
    view, seq = _int(c, "view", "certificate"), _int(c, "seq", "certificate")
    digest, link = _hex(_field(c, "digest", "certificate"), "certificate.digest"), \
        _hex(_field(c, "link", "certificate"), "certificate.link")
    cert_chain = _text(c, "chain_id", "certificate")
    commits_raw = _field(c, "commits", "certificate")
    if not isinstance(commits_raw, list):
        raise ProofError("certificate.commits must be an array")
    commits = tuple(
        Commit(chain_id=cert_chain, view=view, seq=seq, digest=digest, link=link,
               replica=_int(raw, "replica", f"certificate.commits[{i}]", 0xFFFFFFFF),
               signature=_hex(_field(raw, "signature", f"certificate.commits[{i}]"),
                              f"certificate.commits[{i}].signature", 64))
        for i, raw in enumerate(commits_raw))
    return _Proof(chain_id=chain_id, genesis_hash=_hex(_field(proof, "genesis_hash", ""), "genesis_hash"),
                  request=request, index=_int(proof, "index", ""),
                  tree_size=_int(proof, "tree_size", "", TREE_SIZE_MAX),
                  path=[_hex(p, f"audit_path[{i}]") for i, p in enumerate(path)],
                  proposal_timestamp_ms=_int(proof, "proposal_timestamp_ms", ""),
                  proposal_metadata=_hex(_field(proof, "proposal_metadata", ""), "proposal_metadata", None),
                  header=header,
                  header_hash=header_hash,
                  certificate=CommitCertificate(chain_id=cert_chain, view=view, seq=seq, digest=digest, link=link,
                                                commits=commits))


# ---- verifying (offline) --------------------------------------------------------------------------

def verify_inclusion_proof(proof: Any, genesis: Genesis) -> InclusionVerdict:
    """Check a proof (the parsed JSON object) against the chain's genesis.
    Never raises on a bad proof: the verdict names the first check that failed."""
    try:
        p = _parse(proof)
    except ProofError as exc:
        return InclusionVerdict(False, f"malformed proof: {exc}")
    where = dict(chain_id=p.chain_id, height=p.header.height, index=p.index)
    problem = _chain_problem(p, genesis)
    transaction = None
    if not problem:
        transaction, problem = _transaction(p)
    problem = problem or _block_problem(p) or _certificate_problem(p.certificate, p.header, genesis)
    if problem:
        return InclusionVerdict(False, problem, **where)
    return InclusionVerdict(True, "", block_hash=p.header_hash, transaction=transaction, **where)


def _chain_problem(p: _Proof, genesis: Genesis) -> str:
    if p.chain_id != genesis.chain_id or p.genesis_hash != genesis.hash:
        return (f"the proof is for chain {p.chain_id!r} with genesis {p.genesis_hash.hex()[:16]}..., the genesis "
                f"given is chain {genesis.chain_id!r} with genesis {genesis.hash.hex()[:16]}...: a genesis of "
                f"another chain")
    return ""


def _transaction(p: _Proof) -> tuple[Transaction | None, str]:
    try:
        tx = codec.tx_from_request(p.request)
    except codec.CodecError as exc:
        return None, f"the transaction body does not match its id (altered body): {exc}"
    if validate_shape(tx) is not None or not verify_signature(tx):
        return None, "the transaction's signature does not verify against its sender key"
    if tx.chain_id != p.chain_id:
        return None, f"the transaction was signed for chain {tx.chain_id!r}, not {p.chain_id!r}"
    return tx, ""


def _block_problem(p: _Proof) -> str:
    header = p.header
    root = root_from_audit_path(tx_leaf(p.request), p.index, p.tree_size, p.path)
    if root is None:
        return (f"the audit path has the wrong shape for leaf {p.index} of a tree of {p.tree_size} "
                f"({len(p.path)} hashes)")
    if root != header.tx_root:
        return (f"the audit path does not lead from the transaction (leaf {p.index} of {p.tree_size}) to the "
                f"header's tx_root: a wrong path, or the transaction is not in block {header.height}")
    if header.hash != p.header_hash:
        return "the header's hash does not match its fields: the header was altered"
    digest = proposal_digest(header.chain_id, header.height, header.proposer, p.proposal_timestamp_ms,
                             header.tx_root, p.proposal_metadata)
    if digest != header.proposal_digest or p.proposal_timestamp_ms > header.timestamp_ms:
        return (f"the header's proposal_digest does not cover its tx_root, height, proposer, "
                f"proposal_timestamp_ms and proposal_metadata: the header of block {header.height} or these "
                f"fields were altered")
    return ""


def _certificate_problem(cert: CommitCertificate, header: BlockHeader, genesis: Genesis) -> str:
    """The certificate signs this header's proposal digest and link with 2f+1
    distinct genesis validators (consensus.certificates)."""
    if (cert.chain_id, cert.seq, cert.digest, cert.link) != (header.chain_id, header.height, header.proposal_digest,
                                                             header.link):
        return (f"the commit certificate is for block {cert.seq} of chain {cert.chain_id!r} (digest "
                f"{cert.digest.hex()[:16]}...), the header is block {header.height} (digest "
                f"{header.proposal_digest.hex()[:16]}...): the header is from another block")
    n = len(genesis.validators)
    verifier = Ed25519Verifier([v.public_key_bytes for v in genesis.validators])
    if valid_commit_certificate(cert, n, verifier):
        return ""
    good: set[int] = set()
    bad: list[str] = []
    for i, c in enumerate(cert.commits):
        if c.replica in good:
            bad.append(f"commit #{i} repeats validator {c.replica}")
        elif not signed_by(c, n, verifier):
            who = f"validator {c.replica} ({genesis.validators[c.replica].department})" if c.replica < n \
                else f"validator {c.replica} (the genesis has {n})"
            bad.append(f"commit #{i}: the signature of {who} does not verify")
        else:
            good.add(c.replica)
    if len(good) < quorum_size(n):
        return (f"the commit certificate holds {len(good)} valid signatures of distinct genesis validators, "
                f"{quorum_size(n)} of {n} needed" + (f" ({'; '.join(bad)})" if bad else ""))
    return f"the commit certificate carries a commit that does not verify ({'; '.join(bad)})"
