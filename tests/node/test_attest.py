"""node/core/attest.py: the attestation digest and answer commitment
(docs/design.md, "Verification queries")."""
import hashlib

import pytest

from node.core.attest import answer_commitment, attestation_digest
from node.core.canonical import canonical_json

SALT = bytes(range(32))


def test_commitment_matches_the_documented_formula():
    answer = {"result": True}
    expected = hashlib.sha256(b"govchain:v1:answer:" + SALT + b'{"result":true}').digest()
    assert answer_commitment(SALT, answer) == expected


def test_canonical_json_ignores_key_order_and_is_utf8():
    assert canonical_json({"b": 1, "a": "é"}) == canonical_json({"a": "é", "b": 1})
    assert canonical_json({"a": "é"}) == '{"a":"é"}'.encode()


def test_commitment_binds_salt_and_answer():
    base = answer_commitment(SALT, {"result": True})
    assert answer_commitment(SALT, {"result": False}) != base
    assert answer_commitment(bytes(32), {"result": True}) != base


def test_commitment_refuses_a_short_salt():
    with pytest.raises(ValueError, match="salt must be 32 bytes"):
        answer_commitment(b"x" * 31, {"result": True})


def test_attestation_digest_matches_the_documented_formula():
    rd, c = b"\x01" * 32, b"\x02" * 32
    assert attestation_digest(rd, c, "PERMIT") == hashlib.sha256(
        b"govchain:v1:attestation:" + rd + c + b"\x01").digest()
    assert attestation_digest(rd, c, "DENY") == hashlib.sha256(
        b"govchain:v1:attestation:" + rd + c + b"\x00").digest()


@pytest.mark.parametrize("rd,c,decision,message", [
    (b"\x01" * 31, b"\x02" * 32, "PERMIT", "request digest must be 32 bytes"),
    (b"\x01" * 32, b"\x02" * 33, "PERMIT", "answer commitment must be 32 bytes"),
    (b"\x01" * 32, b"\x02" * 32, "ALLOW", "decision must be PERMIT or DENY"),
])
def test_attestation_digest_refuses_bad_inputs(rd, c, decision, message):
    with pytest.raises(ValueError, match=message):
        attestation_digest(rd, c, decision)


def test_request_digest_and_signing_bytes_are_domain_separated():
    from node.core.attest import request_digest, request_signing_bytes
    digest = request_digest(b"abc")
    assert digest == hashlib.sha256(b"govchain:v1:verify-request:abc").digest()
    assert request_signing_bytes(digest) == b"govchain:v1:verify-request-signature:" + digest
    with pytest.raises(ValueError, match="request digest must be 32 bytes"):
        request_signing_bytes(b"x")
