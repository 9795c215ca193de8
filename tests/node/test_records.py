"""Signed application records (docs/design.md, "Records"): round trip, every
field signed, domain and chain separation, size bounds, one canonical
encoding, and hostile bytes refused with RecordError only."""
from __future__ import annotations

import dataclasses
import hashlib

import nacl.signing
import pytest
from google.protobuf import api_pb2, wrappers_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from node.pb import records_pb2
from node.core.records import (RECORD_BYTES_MAX, RECORD_DOMAIN, RecordError, SignedRecord, decode_body, decode_record,
                          encode_record, shape_problem, sign_record, signing_digest, verify_record)
from node.core.tx import TX_DOMAIN

KEY = nacl.signing.SigningKey(bytes(range(32)))
OTHER = nacl.signing.SigningKey(bytes(range(1, 33)))
BODY = api_pb2.Api(name="power-company", version="v1", methods=[api_pb2.Method(name="is_owner")])


def record(**fields) -> SignedRecord:
    return sign_record(KEY, **{"chain_id": "authn", "body": BODY, "id": b"case-0042", "time_ms": 1_700_000_000_000,
                               **fields})


def resigned(r: SignedRecord, key=KEY, domain: bytes = RECORD_DOMAIN) -> SignedRecord:
    return dataclasses.replace(r, signature=key.sign(signing_digest(r, domain)).signature)


def test_round_trip_and_the_body_comes_back():
    r = record()
    assert r.type == "google.protobuf.Api" and r.signer == bytes(KEY.verify_key) and verify_record(r)
    data = encode_record(r)
    back = decode_record(data, chain_id="authn")
    assert back == r and back.digest == r.digest
    assert decode_body(back, api_pb2.Api) == BODY
    assert encode_record(back) == data


def test_the_digest_is_pinned():
    """The format is a contract with every other implementation: if this
    changes, every stored record's signature breaks."""
    r = record()
    expected = hashlib.sha256(
        b"govchain:v1:record:" + (1).to_bytes(4, "big") + b"\x00\x00\x00\x05authn"
        + b"\x00\x00\x00\x13google.protobuf.Api" + b"\x00\x00\x00\x09case-0042"
        + (1_700_000_000_000).to_bytes(8, "big") + b"\x00\x00\x00\x20" + bytes(KEY.verify_key)
        + len(r.body).to_bytes(4, "big") + BODY.SerializeToString(deterministic=True)).digest()
    assert r.digest == expected
    assert r.digest.hex() == "16d9fd19150a39aaec8b3564301387fa2f8e8d0928bbb41e3be4d931732a1a80"
    assert r.signature.hex() == ("5c8a2db4988a923328cedb5badd89e74e8b8acea2cf783c563a001a4e033ee30"
                                 "e9270f8f37ea15f5b8e6e483a495450ebc86c13341bf21910abe653ca4a1ec09")  # Ed25519 is deterministic


@pytest.mark.parametrize("field, value", [
    ("version", 2), ("chain_id", "authz"), ("type", "google.protobuf.Method"), ("id", b"case-0043"),
    ("time_ms", 1_700_000_000_001), ("signer", bytes(OTHER.verify_key)),
    ("body", api_pb2.Api(name="housing-registry").SerializeToString()),
])
def test_every_field_is_signed(field, value):
    tampered = dataclasses.replace(record(), **{field: value})
    assert not verify_record(tampered)
    with pytest.raises(RecordError):
        decode_record(encode_record(tampered), chain_id=tampered.chain_id)
    flipped = bytearray(record().signature)
    flipped[0] ^= 1
    assert not verify_record(dataclasses.replace(record(), signature=bytes(flipped)))


def test_a_signature_from_another_domain_or_key_does_not_verify():
    r = record()
    assert verify_record(resigned(r))
    assert not verify_record(resigned(r, domain=TX_DOMAIN))  # the same fields signed as if a transaction
    assert not verify_record(resigned(r, domain=b"govchain:v2:record:"))
    assert not verify_record(resigned(r, key=OTHER))
    with pytest.raises(RecordError, match="record signature does not verify with its signer's key"):
        decode_record(encode_record(resigned(r, domain=TX_DOMAIN)), chain_id="authn")


def test_a_record_of_another_chain_is_refused():
    data = encode_record(record())
    with pytest.raises(RecordError, match="record is for chain 'authn', not 'authz'"):
        decode_record(data, chain_id="authz")
    # Re-labelled for the other chain, the signature no longer verifies.
    moved = encode_record(dataclasses.replace(record(), chain_id="authz"))
    with pytest.raises(RecordError, match="signature does not verify"):
        decode_record(moved, chain_id="authz")


def test_oversized_records_are_refused_on_both_sides():
    big = wrappers_pb2.BytesValue(value=b"x" * RECORD_BYTES_MAX)
    with pytest.raises(RecordError, match=f"more than the {RECORD_BYTES_MAX} allowed .*never documents"):
        record(body=big)
    fits = record(body=wrappers_pb2.BytesValue(value=b"x" * (RECORD_BYTES_MAX - 300)))
    assert len(encode_record(fits)) <= RECORD_BYTES_MAX
    with pytest.raises(RecordError, match=f"record is {RECORD_BYTES_MAX + 1} bytes, more than"):
        decode_record(b"\x00" * (RECORD_BYTES_MAX + 1), chain_id="authn")  # refused before parsing


@pytest.mark.parametrize("fields, problem", [
    ({"version": 0}, "version must be 1"),
    ({"chain_id": ""}, "chain_id must be a non-empty string"),
    ({"chain_id": "c" * 65}, "chain_id is 65 bytes long"),
    ({"type": "not a name"}, "type must be a protobuf message name"),
    ({"type": "a." * 64 + "b"}, "type must be a protobuf message name of 1..128 bytes"),
    ({"id": b""}, "id must be 1..64 bytes"),
    ({"id": b"x" * 65}, "id must be 1..64 bytes"),
    ({"time_ms": 0}, "time_ms must be a time in milliseconds"),
    ({"time_ms": 1 << 63}, "time_ms must be a time in milliseconds"),
    ({"signer": b"k" * 31}, "signer must be a 32-byte Ed25519 public key"),
    ({"signature": b"s" * 63}, "signature must be 64 bytes"),
])
def test_fields_out_of_their_limits_are_named(fields, problem):
    bad = dataclasses.replace(record(), **fields)
    assert problem in shape_problem(bad) and not verify_record(bad)
    with pytest.raises(RecordError, match=problem):
        decode_record(encode_record(bad), chain_id=bad.chain_id)


def test_only_the_canonical_encoding_decodes():
    r = record()
    data = encode_record(r)
    unknown = data + b"\x48\x01"  # field 9, varint: not in SignedRecord
    duplicated = data + records_pb2.SignedRecord(id=r.id).SerializeToString()  # a field repeated: last wins
    pb = records_pb2.SignedRecord.FromString(data)
    reordered = (records_pb2.SignedRecord(signature=pb.signature).SerializeToString()
                 + records_pb2.SignedRecord(**{f.name: getattr(pb, f.name) for f, _ in pb.ListFields()
                                               if f.name != "signature"}).SerializeToString())
    for variant in (unknown, duplicated, reordered):
        assert records_pb2.SignedRecord.FromString(variant) is not None  # protobuf itself takes them
        with pytest.raises(RecordError, match="record is not the canonical encoding of govchain.v1.SignedRecord"):
            decode_record(variant, chain_id="authn")


def test_a_body_must_be_its_types_canonical_encoding():
    method = api_pb2.Method(name="is_owner").SerializeToString()
    nested_unknown = method + b"\x48\x01"  # hidden inside a nested message
    bodies = [
        BODY.SerializeToString() + b"\x48\x01",  # an unknown field at the top
        b"\x0a\x0dpower-company" + b"\x12" + bytes([len(nested_unknown)]) + nested_unknown + b"\x22\x02v1",
        b"\x22\x02v1\x0a\x0dpower-company" + b"\x12" + bytes([len(method)]) + method,  # fields out of order
    ]
    for body in bodies:
        signed = resigned(dataclasses.replace(record(), body=body))
        assert verify_record(signed)  # the signature covers these bytes as they are ...
        decoded = decode_record(encode_record(signed), chain_id="authn")
        with pytest.raises(RecordError, match="record body is not the canonical encoding of google.protobuf.Api"):
            decode_body(decoded, api_pb2.Api)  # ... but no contract ever reads them
    with pytest.raises(RecordError, match="record type is 'google.protobuf.Api', not 'google.protobuf.Method'"):
        decode_body(record(), api_pb2.Method)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400), st.integers(0, 400).flatmap(
    lambda at: st.binary(min_size=1, max_size=1).map(lambda b: (at, b)))))
def test_hostile_bytes_raise_record_error_only(drawn):
    if isinstance(drawn, tuple):  # one byte of a valid record changed
        data = bytearray(encode_record(record()))
        at, byte = drawn
        data[at % len(data)] = byte[0]
        drawn = bytes(data)
    try:
        decoded = decode_record(drawn, chain_id="authn")
    except RecordError:
        return
    assert verify_record(decoded) and decoded == record()  # only an unchanged record decodes
