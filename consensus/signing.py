"""Domain-separated bytes that replicas sign, and the injected crypto interfaces.

The core never touches a key: the shell injects a Signer (our key) and a
Verifier (the genesis validator keys). The node uses Ed25519; the simulator
may use a cheap keyed hash, which still makes forgeries detectable.
"""
from __future__ import annotations

import functools
import hashlib
from typing import Protocol

from consensus import messages as m


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes: ...


class Verifier(Protocol):
    def verify(self, replica: int, data: bytes, signature: bytes) -> bool: ...


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


@functools.lru_cache(maxsize=256)
def _header(chain_id: str, kind: str) -> bytes:
    chain = chain_id.encode()
    return b"govchain:v1:" + len(chain).to_bytes(2, "big") + chain + b":" + kind.encode() + b":"


def _vote(msg: m.PrePrepare | m.Prepare | m.Commit) -> bytes:
    return _u64(msg.view) + _u64(msg.seq) + msg.digest + msg.replica.to_bytes(4, "big")


def _prepared_summary(cert: m.PreparedCertificate) -> bytes:
    return _u64(cert.view) + _u64(cert.seq) + cert.digest


def _view_change_digest(vc: m.ViewChange) -> bytes:
    return hashlib.sha256(signable(vc) + vc.signature).digest()


_NO_DICT: dict = {}
_MEMO = "_signable_bytes"  # per-object memo, stored like functools.cached_property stores its value


def signable(msg: m.Message) -> bytes:
    """The bytes a sender signs: chain id + message type + content.

    Memoized on the message object: messages are frozen dataclasses (no
    slots), so the bytes cannot go stale, and `dataclasses.replace` builds a
    new object without the memo. One object is signed once and verified by
    every receiver, by certificates that carry it, and by the simulator's
    checker; the bytes are computed once. The signature is not part of them.
    """
    memo = getattr(msg, "__dict__", _NO_DICT).get(_MEMO)
    if memo is not None:
        return memo
    data = _signable(msg)
    msg.__dict__[_MEMO] = data
    return data


def with_signature(msg, signer: Signer):
    """A copy of `msg` signed by `signer`, carrying the memoized bytes along."""
    data = signable(msg)
    # dataclasses.replace() without its generic per-field machinery: messages
    # have no __post_init__, so a copy of the fields with a new signature is
    # exactly what replace() would build.
    signed = object.__new__(type(msg))
    fields = signed.__dict__
    fields.update(msg.__dict__)
    fields["signature"] = signer.sign(data)
    fields[_MEMO] = data
    return signed


def _signable(msg: m.Message) -> bytes:
    head = _header(msg.chain_id, type(msg).__name__)
    match msg:
        case m.PrePrepare() | m.Prepare():
            body = _vote(msg)
        case m.Commit():
            body = _vote(msg) + msg.link
        case m.Checkpoint():
            body = _u64(msg.seq) + msg.digest
        case m.ViewChange():
            cp = msg.checkpoint
            body = _u64(msg.view) + _u64(cp.seq) + len(cp.digest).to_bytes(1, "big") + cp.digest
            body += b"".join(_prepared_summary(p) for p in msg.prepared)
        case m.NewView():
            body = _u64(msg.view)
            body += b"".join(_view_change_digest(vc) for vc in msg.view_changes)
            body += b"".join(_u64(pp.seq) + pp.digest for pp in msg.pre_prepares)
        case m.RequestBatch():
            body = b"".join(r.id for r in msg.requests)
        case m.Status():
            body = _u64(msg.view) + _u64(msg.executed_seq) + _u64(msg.stable_seq)
        case m.FetchBlocks():
            body = _u64(msg.from_seq) + _u64(msg.to_seq)
        case m.BlocksReply():
            body = b"".join(_u64(b.seq) + b.certificate.digest for b in msg.blocks)
        case m.FetchProposal():
            body = _u64(msg.seq) + msg.digest
        case m.ProposalReply():
            body = _u64(msg.proposal.seq) + msg.proposal.digest
        case _:
            raise TypeError(f"not a protocol message: {type(msg).__name__}")
    return head + msg.replica.to_bytes(4, "big") + body
