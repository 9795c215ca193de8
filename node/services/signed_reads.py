"""Reads of one citizen's data that only the citizen or an auditor may make
(docs/design.md, "Signed reads"): the Audit service's access log and the
Cases service's evidence openings.

The caller signs SHA-256(domain || subject (32 bytes) || u64be(time_ms) ||
u8(len(nonce)) || nonce), where the domain names the read and the subject is
what it reads (a subject tag, or the SHA-256 of a case id). A request is
checked in this order, cheapest first: the fields' shapes, the signature,
freshness, that it was signed after this service started and its nonce was
not answered, then who the key is (the
citizen's application key bound to the tag on the authn chain, in force at
this node's clock, or a catalog key holding the role "auditor"). Only an
answered request uses up its nonce, so keys nobody admits cannot fill the
nonce store.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import grpc
from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from node.identity.citizens import AUTHN_CHAIN, binding_of, binding_problem
from node.identity.signers import CATALOG_CHAIN, check_role, lookup_signer, short

AUDITOR = "auditor"
FRESHNESS_MS = 60_000
NONCE_BYTES = (16, 64)
NONCES_MAX = 100_000  # answered (key, nonce) pairs remembered within the freshness window


class Refusal(Exception):
    """A request the service does not answer: the gRPC status code and why."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def read_digest(domain: bytes, subject: bytes, time_ms: int, nonce: bytes) -> bytes:
    """What the caller signs: SHA-256(domain || subject || u64be(time_ms) || u8(len(nonce)) || nonce)."""
    return hashlib.sha256(domain + subject + time_ms.to_bytes(8, "big") + bytes([len(nonce)]) + nonce).digest()


def signature_shape_problem(request) -> str | None:
    """What is wrong with the request's key, signature or nonce fields, or None."""
    if len(request.key) != 32:
        return f"key must be an Ed25519 public key of 32 bytes (got {len(request.key)})"
    if len(request.signature) != 64:
        return f"signature must be 64 bytes (got {len(request.signature)})"
    if not NONCE_BYTES[0] <= len(request.nonce) <= NONCE_BYTES[1]:
        return f"nonce must be {NONCE_BYTES[0]}..{NONCE_BYTES[1]} random bytes (got {len(request.nonce)})"
    return None


class Nonces:
    """(key, nonce) pairs answered within the freshness window, oldest first.
    Full with pairs that are all still fresh: a new request waits (no fresh
    pair is forgotten, or a captured request could be replayed). The pairs
    live in memory, so they start empty at `since_ms` (the service's start):
    a request signed before then is refused, since this node cannot tell
    whether it answered it before a restart."""

    def __init__(self, since_ms: int) -> None:
        self._seen: OrderedDict[bytes, int] = OrderedDict()
        self.since_ms = since_ms

    def used(self, key: bytes, nonce: bytes, now_ms: int) -> bool:
        while self._seen and next(iter(self._seen.values())) < now_ms - 2 * FRESHNESS_MS:
            self._seen.popitem(last=False)
        return key + nonce in self._seen

    def record(self, key: bytes, nonce: bytes, now_ms: int) -> None:
        if len(self._seen) >= NONCES_MAX:
            raise Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{NONCES_MAX} signed reads answered in the last "
                                                              f"{2 * FRESHNESS_MS // 1000} s; retry in a minute")
        self._seen[key + nonce] = now_ms


def sign_read(signing_key, domain: bytes, subject: bytes, time_ms: int, nonce: bytes) -> dict:
    """The signed fields of a read request (time_ms, nonce, key, signature), for a nacl SigningKey."""
    signature = signing_key.sign(read_digest(domain, subject, time_ms, nonce)).signature
    return {"time_ms": time_ms, "nonce": nonce, "key": bytes(signing_key.verify_key), "signature": signature}


def check_signed(request, domain: bytes, subject: bytes, subject_text: str, now_ms: int, nonces: Nonces) -> None:
    """Raise Refusal (PERMISSION_DENIED) unless the request's signature over
    its read digest verifies, it is fresh and its nonce was not answered.
    `subject_text` says what the subject bytes are, for the caller."""
    try:
        VerifyKey(request.key).verify(read_digest(domain, subject, request.time_ms, request.nonce),
                                      request.signature)
    except (CryptoError, ValueError):
        raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                      f'signature does not verify: sign SHA-256("{domain.decode()}" || {subject_text} || '
                      "u64be(time_ms) || u8(len(nonce)) || nonce) with the key's private half") from None
    if abs(now_ms - request.time_ms) > FRESHNESS_MS:
        raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                      f"stale request: signed at {request.time_ms} ms, this node's clock is {now_ms} ms; a "
                      f"request is fresh for {FRESHNESS_MS // 1000} s either side (check the clock)")
    if request.time_ms < nonces.since_ms:
        raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                      f"signed at {request.time_ms} ms, before this node's service started at {nonces.since_ms} "
                      "ms: it keeps no record of what it answered before, so sign a new request (with a clock "
                      "that is not behind)")
    if nonces.used(request.key, request.nonce, now_ms):
        raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                      "replayed request: this key's nonce was already answered; sign a new request")


def admit_reader(chains: dict, request, tag: str, now_ms: int, what: str, nonces: Nonces) -> None:
    """Raise Refusal unless `request.key` may read `what` of subject `tag`;
    if it may, its nonce is now answered (after check_signed)."""
    key = request.key
    authn, catalog = chains.get(AUTHN_CHAIN), chains.get(CATALOG_CHAIN)
    if authn is None and catalog is None:
        raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                      "this node serves neither the authn nor the catalog chain, so it cannot tell who the caller is")
    binding = binding_of(authn.state.get, key) if authn is not None else None
    if not (binding is not None and binding["tag"] == tag and binding_problem(binding, key, now_ms) is None):
        signer = lookup_signer(catalog.state.get, key) if catalog is not None else None
        if signer is None or check_role(signer, AUDITOR) is not None:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, f"permission denied: only the citizen's bound app "
                          f"key or an auditor reads {what}; {_why_not(binding, signer, key, tag, now_ms)}")
    nonces.record(key, request.nonce, now_ms)


def _why_not(binding: dict | None, signer, key: bytes, tag: str, now_ms: int) -> str:
    """Why neither the binding nor the signer admits the key, in the caller's terms."""
    if binding is not None and binding["tag"] != tag:
        return f"key {short(key)} is bound to another subject, not tag {tag[:16]}"
    if signer is not None:
        return f"{check_role(signer, AUDITOR)}, not the role 'auditor'"
    return binding_problem(binding, key, now_ms)
