"""Client transactions: the domain type, its id, Ed25519 signing and shape checks.

No protobuf here: node/core/codec.py translates to and from govchain.v1.Transaction.

The signing digest of a transaction:

    sha256(b"govchain:v1:tx:"
           + lp(chain_id) + lp(sender) + u64(nonce)
           + lp(contract) + lp(method) + lp(payload))

where lp(x) is a 4-byte big-endian length followed by x (UTF-8 for strings)
and u64 is 8-byte big-endian. Every variable-length field is length-prefixed,
so no two different transactions share an encoding; the domain tag keeps the
digest from ever equalling another kind of signed object's. The sender signs
the 32-byte digest with Ed25519. Because chain_id is covered, a transaction
signed for one chain is invalid on every other one (docs/testing.md E3).

The id of a transaction is sha256(b"govchain:v1:txid:" + signing digest +
signature) (Transaction.id). Ed25519 signatures from libsodium are
deterministic and non-malleable (it rejects non-canonical S), so the same
signed transaction always has the same id and replays are DUPLICATEs.
proto/govchain/v1/client.proto states the same for client writers.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property

import nacl.exceptions
import nacl.signing

TX_DOMAIN = b"govchain:v1:tx:"
TX_ID_DOMAIN = b"govchain:v1:txid:"

SENDER_BYTES = 32  # Ed25519 public key
SIGNATURE_BYTES = 64  # Ed25519 signature
ID_BYTES = 32  # SHA-256
NONCE_MAX = (1 << 64) - 1

CHAIN_ID_BYTES_MAX = 64
CONTRACT_NAME_BYTES_MAX = 64
METHOD_NAME_BYTES_MAX = 64
PAYLOAD_BYTES_MAX = 64 * 1024
"""A transaction carries a query, a consent, a certificate digest: small
records, never documents (docs/design.md, Purpose: data is shared, not copied). 64 KiB
keeps a full 1,000-transaction block well inside gRPC's message limits."""

# Contract and method names: ASCII, starting with a letter or digit, then
# letters, digits, '_', '.', '-' (e.g. "catalog", "grant_consent"). No spaces
# or control characters, so they are safe in logs, metrics and error messages.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


@dataclass(frozen=True, kw_only=True)
class Transaction:
    chain_id: str
    sender: bytes  # 32-byte Ed25519 public key
    nonce: int  # 0 .. 2**64-1, chosen by the sender
    contract: str
    method: str
    payload: bytes = b""
    signature: bytes = b""  # 64-byte Ed25519 signature over signing_digest()

    @cached_property
    def id(self) -> bytes:
        """sha256 over the signing digest and the signature (32 bytes).

        Covering the signature means a proposal's digest (over ids) pins every
        byte of every transaction: a faulty primary cannot ship other
        signature bytes under the same id. Ed25519 signatures are
        deterministic and libsodium rejects malleated ones, so re-signing the
        same content gives the same id and a replay is still caught."""
        return hashlib.sha256(TX_ID_DOMAIN + signing_digest(self) + bytes(self.signature)).digest()


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def signing_digest(tx: Transaction) -> bytes:
    """sha256 over the domain-separated canonical encoding of every field but
    the signature (module docstring). Raises ValueError/TypeError/OverflowError
    on fields no encoding exists for (negative nonce, non-bytes payload); call
    validate_shape() first on untrusted input."""
    return hashlib.sha256(
        TX_DOMAIN
        + _lp(tx.chain_id.encode())
        + _lp(tx.sender)
        + tx.nonce.to_bytes(8, "big")
        + _lp(tx.contract.encode())
        + _lp(tx.method.encode())
        + _lp(tx.payload)
    ).digest()


def sign_transaction(
    signing_key: nacl.signing.SigningKey,
    *,
    chain_id: str,
    nonce: int,
    contract: str,
    method: str,
    payload: bytes = b"",
) -> Transaction:
    """A transaction from `signing_key`'s public key, signed. Raises ValueError
    if the fields are malformed (the message says which and why)."""
    unsigned = Transaction(
        chain_id=chain_id,
        sender=bytes(signing_key.verify_key),
        nonce=nonce,
        contract=contract,
        method=method,
        payload=bytes(payload),
        signature=bytes(SIGNATURE_BYTES),  # placeholder so validate_shape checks the rest
    )
    problem = validate_shape(unsigned)
    if problem is not None:
        raise ValueError(problem)
    signature = signing_key.sign(signing_digest(unsigned)).signature
    return Transaction(
        chain_id=chain_id, sender=unsigned.sender, nonce=nonce, contract=contract,
        method=method, payload=unsigned.payload, signature=signature,
    )


def verify_signature(tx: Transaction) -> bool:
    """True iff `signature` is the sender's valid Ed25519 signature over signing_digest().

    Never raises: a wrong-length key or signature, a key that is not a valid
    curve point (libsodium also rejects small-order keys), a non-canonical
    signature or fields with no encoding all give False.
    """
    try:
        if len(tx.sender) != SENDER_BYTES or len(tx.signature) != SIGNATURE_BYTES:
            return False
        nacl.signing.VerifyKey(bytes(tx.sender)).verify(signing_digest(tx), bytes(tx.signature))
        return True
    except (nacl.exceptions.CryptoError, ValueError, TypeError, OverflowError, AttributeError):
        return False


def validate_shape(tx: Transaction) -> str | None:
    """None if every field is well formed, else a message for the client
    naming the first bad field. Checks sizes and types only; not the
    signature (verify_signature) and not whether the contract exists."""
    if not isinstance(tx.chain_id, str) or not tx.chain_id:
        return "chain_id must be a non-empty string"
    if (problem := text_problem("chain_id", tx.chain_id, CHAIN_ID_BYTES_MAX)) is not None:
        return problem
    if not isinstance(tx.sender, (bytes, bytearray)) or len(tx.sender) != SENDER_BYTES:
        return f"sender must be a {SENDER_BYTES}-byte Ed25519 public key, got {_size(tx.sender)}"
    if type(tx.nonce) is not int or not 0 <= tx.nonce <= NONCE_MAX:
        return f"nonce must be an integer in 0..2^64-1, got {tx.nonce!r:.40}"
    for field, value, limit in (
        ("contract", tx.contract, CONTRACT_NAME_BYTES_MAX),
        ("method", tx.method, METHOD_NAME_BYTES_MAX),
    ):
        if (problem := name_problem(field, value, limit)) is not None:
            return problem
    if not isinstance(tx.payload, (bytes, bytearray)):
        return "payload must be bytes"
    if len(tx.payload) > PAYLOAD_BYTES_MAX:
        return f"payload is {len(tx.payload)} bytes, more than the {PAYLOAD_BYTES_MAX} allowed"
    if not isinstance(tx.signature, (bytes, bytearray)) or len(tx.signature) != SIGNATURE_BYTES:
        return f"signature must be {SIGNATURE_BYTES} bytes (Ed25519), got {_size(tx.signature)}"
    return None


def name_problem(field: str, value: object, limit: int) -> str | None:
    """None if `value` is a contract or method name of 1..limit bytes, else
    a message naming `field`."""
    if not isinstance(value, str) or not value:
        return f"{field} must be a non-empty name"
    if (problem := text_problem(field, value, limit)) is not None:
        return problem
    if not NAME_RE.fullmatch(value):
        return (f"{field} {value!r} is not a valid name: use ASCII letters, digits, "
                f"'_', '.' and '-', starting with a letter or digit")
    return None


def text_problem(field: str, value: str, limit: int) -> str | None:
    """None if `value` is UTF-8 text of at most `limit` bytes, else a message naming `field`."""
    try:
        size = len(value.encode())
    except UnicodeEncodeError:  # lone surrogates: no UTF-8 encoding exists
        return f"{field} is not valid UTF-8 text"
    if size > limit:
        return f"{field} is {size} bytes long, more than the {limit} allowed"
    return None


def _size(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    return type(value).__name__
