"""Application records: one signed envelope for every record the platform's
contracts keep (docs/design.md, "Records"; the wire form is
govchain.v1.SignedRecord, proto/govchain/v1/records.proto).

The signing digest of a record, with lp(x) a 4-byte big-endian length and x
(UTF-8 for strings), u32 and u64 big-endian:

    sha256(b"govchain:v1:record:" + u32(version) + lp(chain_id) + lp(type)
           + lp(id) + u64(time_ms) + lp(signer) + lp(body))

The signer signs the 32-byte digest with Ed25519. As for transactions
(node/core/tx.py), every variable-length field is length-prefixed and the domain
tag differs from every other signed object's, so a record signature is never
a valid transaction or consensus signature; chain_id is signed, so a record
is valid on one chain only.

The body is the canonical protobuf encoding of the message `type` names,
signed as the exact bytes the envelope carries: verifying never re-encodes
anything. Decoding does re-encode, to refuse every byte string but the
canonical one (node.core.codec.parse_canonical): one meaning, one digest, and no
unknown fields for data to hide in.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import nacl.exceptions
import nacl.signing
from google.protobuf.message import Message

from node.core.tx import CHAIN_ID_BYTES_MAX, PAYLOAD_BYTES_MAX, SENDER_BYTES, SIGNATURE_BYTES, text_problem

RECORD_DOMAIN = b"govchain:v1:record:"
RECORD_VERSION = 1
RECORD_BYTES_MAX = PAYLOAD_BYTES_MAX  # a record travels in a transaction payload
TYPE_BYTES_MAX = 128
ID_BYTES_MAX = 64
TIME_MS_MAX = (1 << 63) - 1

_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")  # a protobuf full name

M = TypeVar("M", bound=Message)


class RecordError(ValueError):
    """A record that is malformed, too large, for another chain, not
    canonical or not signed by its signer; the message names the field."""


@dataclass(frozen=True, kw_only=True)
class SignedRecord:
    version: int
    chain_id: str
    type: str  # the body's protobuf message full name
    id: bytes
    time_ms: int
    signer: bytes  # 32-byte Ed25519 public key
    body: bytes  # canonical protobuf encoding of `type`
    signature: bytes = b""  # 64-byte Ed25519 signature over signing_digest()

    @cached_property
    def digest(self) -> bytes:
        """The signing digest: the record's reference (every field but the signature)."""
        return signing_digest(self)


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def signing_digest(record: SignedRecord, domain: bytes = RECORD_DOMAIN) -> bytes:
    """sha256 over the domain and every field but the signature (module
    docstring). Raises on fields no encoding exists for: check shape_problem
    first on untrusted input."""
    return hashlib.sha256(
        domain
        + record.version.to_bytes(4, "big")
        + _lp(record.chain_id.encode())
        + _lp(record.type.encode())
        + _lp(record.id)
        + record.time_ms.to_bytes(8, "big")
        + _lp(record.signer)
        + _lp(record.body)
    ).digest()


def shape_problem(record: SignedRecord) -> str | None:
    """None if every field is within its limits, else the first bad one.
    Neither the signature nor the body's form is checked here."""
    if type(record.version) is not int or record.version != RECORD_VERSION:
        return f"version must be {RECORD_VERSION} (got {record.version!r:.20})"
    if not isinstance(record.chain_id, str) or not record.chain_id:
        return "chain_id must be a non-empty string"
    if (problem := text_problem("chain_id", record.chain_id, CHAIN_ID_BYTES_MAX)) is not None:
        return problem
    if not isinstance(record.type, str) or not _TYPE.fullmatch(record.type) or len(record.type) > TYPE_BYTES_MAX:
        return f"type must be a protobuf message name of 1..{TYPE_BYTES_MAX} bytes (got {record.type!r:.140})"
    if not isinstance(record.id, bytes) or not 0 < len(record.id) <= ID_BYTES_MAX:
        return f"id must be 1..{ID_BYTES_MAX} bytes"
    if type(record.time_ms) is not int or not 0 < record.time_ms <= TIME_MS_MAX:
        return f"time_ms must be a time in milliseconds, 1..2^63-1 (got {record.time_ms!r:.30})"
    if not isinstance(record.signer, bytes) or len(record.signer) != SENDER_BYTES:
        return f"signer must be a {SENDER_BYTES}-byte Ed25519 public key"
    if not isinstance(record.body, bytes):
        return "body must be bytes"
    if not isinstance(record.signature, bytes) or len(record.signature) != SIGNATURE_BYTES:
        return f"signature must be {SIGNATURE_BYTES} bytes (Ed25519)"
    return None


def sign_record(signing_key: nacl.signing.SigningKey, *, chain_id: str, body: Message, id: bytes,
                time_ms: int) -> SignedRecord:
    """A record of `body` (its type is the message's full name), signed by
    `signing_key`. RecordError if a field is out of its limits or the
    record would not fit RECORD_BYTES_MAX."""
    unsigned = SignedRecord(version=RECORD_VERSION, chain_id=chain_id, type=body.DESCRIPTOR.full_name, id=id,
                            time_ms=time_ms, signer=bytes(signing_key.verify_key),
                            body=body.SerializeToString(deterministic=True),
                            signature=bytes(SIGNATURE_BYTES))  # a placeholder, so shape_problem checks the rest
    if (problem := shape_problem(unsigned)) is not None:
        raise RecordError(problem)
    signature = signing_key.sign(signing_digest(unsigned)).signature
    record = dataclasses.replace(unsigned, signature=signature)
    encode_record(record)  # refuses a record too large to carry
    return record


def verify_record(record: SignedRecord) -> bool:
    """True iff `signature` is the signer's Ed25519 signature over the
    signing digest. Never raises."""
    try:
        if shape_problem(record) is not None:
            return False
        nacl.signing.VerifyKey(record.signer).verify(record.digest, record.signature)
        return True
    except (nacl.exceptions.CryptoError, ValueError, TypeError, OverflowError):
        return False


def encode_record(record: SignedRecord) -> bytes:
    """The record's canonical bytes. RecordError if they exceed RECORD_BYTES_MAX."""
    from node.core.codec import CodecError, signed_record_to_proto  # node.core.codec imports this module
    try:
        data = signed_record_to_proto(record).SerializeToString(deterministic=True)
    except CodecError as exc:
        raise RecordError(str(exc)) from None
    if len(data) > RECORD_BYTES_MAX:
        raise RecordError(f"record is {len(data)} bytes, more than the {RECORD_BYTES_MAX} allowed "
                          f"(RECORD_BYTES_MAX); a record holds digests and references, never documents")
    return data


def decode_record(data: bytes, *, chain_id: str) -> SignedRecord:
    """A record of chain `chain_id` from its bytes, checked in order of cost:
    size (before parsing), canonical form, field limits, chain, signature.
    Raises RecordError (and nothing else) naming what is wrong."""
    from node.core.codec import CodecError, parse_canonical, signed_record_from_proto
    from node.pb import records_pb2

    if not isinstance(data, (bytes, bytearray)):
        raise RecordError(f"a record is bytes, not {type(data).__name__}")
    if len(data) > RECORD_BYTES_MAX:
        raise RecordError(f"record is {len(data)} bytes, more than the {RECORD_BYTES_MAX} allowed (RECORD_BYTES_MAX)")
    try:
        record = signed_record_from_proto(parse_canonical(records_pb2.SignedRecord, data, "record"))
    except CodecError as exc:
        raise RecordError(str(exc)) from None
    if (problem := shape_problem(record)) is not None:
        raise RecordError(f"record: {problem}")
    if record.chain_id != chain_id:
        raise RecordError(f"record is for chain {record.chain_id!r}, not {chain_id!r}")
    if not verify_record(record):
        raise RecordError("record signature does not verify with its signer's key")
    return record


def decode_body(record: SignedRecord, cls: type[M]) -> M:
    """The record's body as a `cls` message. RecordError unless the record's
    type is `cls` and the body is its canonical encoding."""
    from node.core.codec import CodecError, parse_canonical

    if record.type != cls.DESCRIPTOR.full_name:
        raise RecordError(f"record type is {record.type!r}, not {cls.DESCRIPTOR.full_name!r}")
    try:
        return parse_canonical(cls, record.body, "record body")
    except CodecError as exc:
        raise RecordError(str(exc)) from None
