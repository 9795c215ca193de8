"""Attestation digest and answer commitment of a verification query
(docs/design.md, "Verification queries").

Pure functions, shared by the provider's verification service (which signs the
attestation and submits the authz `log_access` entry), the authz contract
(which checks the attestation against the provider key) and the requester's
CLI (which checks the answer it unsealed against the commitment):

    answer commitment  = SHA-256("govchain:v1:answer:" || salt(32) || canonical answer bytes)
    attestation digest = SHA-256("govchain:v1:attestation:" || request_digest(32)
                                 || answer_commitment(32) || u8(PERMIT=1, DENY=0))
    request digest     = SHA-256("govchain:v1:verify-request:" || VerifyRequest bytes)
    requester signs       "govchain:v1:verify-request-signature:" || request digest

The canonical answer bytes are the answer as canonical JSON (sorted keys, no
whitespace, UTF-8, no NaN), the same rule as contract state values. The salt
keeps the commitment hiding: a yes/no answer could otherwise be guessed from
its commitment, which the authz chain stores.
"""
from __future__ import annotations

import hashlib
from typing import Any

from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from node.core.canonical import canonical_json

ANSWER_DOMAIN = b"govchain:v1:answer:"
ATTESTATION_DOMAIN = b"govchain:v1:attestation:"
REQUEST_DOMAIN = b"govchain:v1:verify-request:"
REQUEST_SIGNATURE_DOMAIN = b"govchain:v1:verify-request-signature:"
SALT_BYTES = 32
DIGEST_BYTES = 32
DECISIONS = {"PERMIT": 1, "DENY": 0}


def answer_commitment(salt: bytes, answer: Any) -> bytes:
    """SHA-256("govchain:v1:answer:" || salt || canonical answer bytes)."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes, got {len(salt)}")
    return hashlib.sha256(ANSWER_DOMAIN + salt + canonical_json(answer)).digest()


def attestation_digest(request_digest: bytes, commitment: bytes, decision: str) -> bytes:
    """SHA-256("govchain:v1:attestation:" || request_digest || commitment || u8(decision))."""
    if len(request_digest) != DIGEST_BYTES:
        raise ValueError(f"request digest must be {DIGEST_BYTES} bytes, got {len(request_digest)}")
    if len(commitment) != DIGEST_BYTES:
        raise ValueError(f"answer commitment must be {DIGEST_BYTES} bytes, got {len(commitment)}")
    if decision not in DECISIONS:
        raise ValueError(f"decision must be PERMIT or DENY, got {decision!r}")
    return hashlib.sha256(ATTESTATION_DOMAIN + request_digest + commitment
                          + bytes([DECISIONS[decision]])).digest()


def attestation_holds(provider_key: bytes, request_digest: bytes, commitment: bytes, decision: str,
                      attestation: bytes) -> bool:
    """The provider key's Ed25519 signature over the attestation digest checks
    out (libsodium refuses small-order and non-canonical keys and signatures,
    the same on every node); False for anything malformed."""
    try:
        VerifyKey(provider_key).verify(attestation_digest(request_digest, commitment, decision), attestation)
        return True
    except (CryptoError, ValueError, TypeError):
        return False


def request_digest(request: bytes) -> bytes:
    """SHA-256("govchain:v1:verify-request:" || the VerifyRequest's deterministic bytes)."""
    return hashlib.sha256(REQUEST_DOMAIN + request).digest()


def request_signing_bytes(digest: bytes) -> bytes:
    """What the requester key signs: "govchain:v1:verify-request-signature:" || request digest.
    The authz chain checks `requester_signature` of a log entry over the same bytes."""
    if len(digest) != DIGEST_BYTES:
        raise ValueError(f"request digest must be {DIGEST_BYTES} bytes, got {len(digest)}")
    return REQUEST_SIGNATURE_DOMAIN + digest
