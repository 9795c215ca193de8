"""node.core.tx: transaction ids, Ed25519 signatures and shape checks.

The id is a domain-separated, length-prefixed digest (docs/design.md, Data model);
cross-chain replay must fail the signature (docs/testing.md E3) and forged or
garbage signatures must give False, never an exception (docs/testing.md E1).
"""
from __future__ import annotations

import dataclasses
import hashlib

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core import tx as txm
from node.core.tx import Transaction, sign_transaction, signing_digest, validate_shape, verify_signature

KEY = nacl.signing.SigningKey(bytes(range(32)))
OTHER_KEY = nacl.signing.SigningKey(bytes(range(1, 33)))
FIELDS = dict(chain_id="catalog", nonce=7, contract="catalog", method="register_item", payload=b"\x00data")


def _signed(**overrides) -> Transaction:
    return sign_transaction(KEY, **{**FIELDS, **overrides})


def test_tx_id_matches_documented_encoding():
    """An independent re-implementation of the documented digest pins the
    format: changing it changes every transaction id on every ledger."""
    tx = _signed()

    def lp(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b

    expected = hashlib.sha256(
        b"govchain:v1:tx:" + lp(b"catalog") + lp(bytes(KEY.verify_key)) + (7).to_bytes(8, "big")
        + lp(b"catalog") + lp(b"register_item") + lp(b"\x00data")
    ).digest()
    assert signing_digest(tx) == expected
    assert tx.id == hashlib.sha256(b"govchain:v1:txid:" + expected + tx.signature).digest()
    assert len(tx.id) == 32


def test_tx_sign_then_verify():
    tx = _signed()
    assert tx.sender == bytes(KEY.verify_key)
    assert len(tx.signature) == 64
    assert verify_signature(tx)
    assert validate_shape(tx) is None


def test_tx_id_covers_signature_and_is_deterministic():
    """The id binds the signature bytes, so a proposal over ids pins them."""
    tx = _signed()
    assert _signed() == tx  # Ed25519 signing is deterministic
    assert _signed().id == tx.id
    assert dataclasses.replace(tx, signature=bytes(64)).id != tx.id


@pytest.mark.parametrize("field, value", [
    ("chain_id", "authz"),  # cross-chain replay (docs/testing.md E3)
    ("nonce", 8),
    ("contract", "cert"),
    ("method", "register_items"),
    ("payload", b"\x00datb"),
    ("sender", bytes(OTHER_KEY.verify_key)),
])
def test_tx_tampered_field_changes_id_and_fails_signature(field, value):
    tx = _signed()
    forged = dataclasses.replace(tx, **{field: value})
    assert forged.id != tx.id
    assert not verify_signature(forged)


def test_tx_length_prefixes_keep_field_boundaries():
    a = _signed(contract="ab", method="c")
    b = _signed(contract="a", method="bc")
    assert a.id != b.id


def test_tx_signature_by_another_key_is_rejected():
    tx = _signed()
    other = sign_transaction(OTHER_KEY, **FIELDS)
    assert not verify_signature(dataclasses.replace(tx, signature=other.signature))


@pytest.mark.parametrize("sender, signature", [
    (b"", b""),
    (bytes(31), bytes(64)),
    (bytes(33), bytes(64)),
    (bytes(KEY.verify_key), bytes(63)),
    (bytes(KEY.verify_key), bytes(65)),
    (bytes(KEY.verify_key), bytes(64)),  # all-zero signature
    # identity point as the key with R = identity, S = 0: verifies in lax
    # Ed25519 implementations for every message; libsodium rejects it.
    (b"\x01" + bytes(31), b"\x01" + bytes(63)),
    (bytes(32), bytes(64)),
    ("not bytes", bytes(64)),
    (None, None),
])
def test_tx_verify_garbage_is_false_not_an_exception(sender, signature):
    tx = Transaction(chain_id="catalog", sender=sender, nonce=1, contract="c", method="m",
                     payload=b"", signature=signature)
    assert verify_signature(tx) is False


@pytest.mark.parametrize("overrides", [
    dict(nonce=-1), dict(nonce=1 << 64), dict(chain_id="\udc80"), dict(payload="text"), dict(chain_id=None),
])
def test_tx_verify_fields_without_encoding_is_false(overrides):
    tx = dataclasses.replace(_signed(), **overrides)
    assert verify_signature(tx) is False


@settings(max_examples=150, deadline=None)
@given(sender=st.binary(max_size=40), signature=st.binary(max_size=80),
       nonce=st.integers(-(1 << 70), 1 << 70), payload=st.binary(max_size=32))
def test_tx_verify_never_raises(sender, signature, nonce, payload):
    tx = Transaction(chain_id="c", sender=sender, nonce=nonce, contract="c", method="m",
                     payload=payload, signature=signature)
    assert verify_signature(tx) is False


@pytest.mark.parametrize("overrides, words", [
    (dict(chain_id=""), "chain_id"),
    (dict(chain_id="x" * (txm.CHAIN_ID_BYTES_MAX + 1)), "chain_id"),
    (dict(chain_id="\udc80"), "chain_id"),
    (dict(sender=bytes(31)), "sender"),
    (dict(sender="k" * 32), "sender"),
    (dict(nonce=-1), "nonce"),
    (dict(nonce=1 << 64), "nonce"),
    (dict(nonce=True), "nonce"),
    (dict(contract=""), "contract"),
    (dict(contract="has space"), "contract"),
    (dict(contract="c" * (txm.CONTRACT_NAME_BYTES_MAX + 1)), "contract"),
    (dict(method="bad\nname"), "method"),
    (dict(method="_leading"), "method"),
    (dict(method="m" * (txm.METHOD_NAME_BYTES_MAX + 1)), "method"),
    (dict(payload=b"x" * (txm.PAYLOAD_BYTES_MAX + 1)), "payload"),
    (dict(payload="str"), "payload"),
    (dict(signature=b""), "signature"),
    (dict(signature=bytes(65)), "signature"),
])
def test_tx_validate_shape_names_the_bad_field(overrides, words):
    tx = dataclasses.replace(_signed(), **overrides)
    problem = validate_shape(tx)
    assert problem is not None and words in problem


def test_tx_validate_shape_accepts_limits():
    tx = _signed(
        chain_id="x" * txm.CHAIN_ID_BYTES_MAX, nonce=txm.NONCE_MAX,
        contract="c" * txm.CONTRACT_NAME_BYTES_MAX, method="a.b-c_d9",
        payload=b"p" * txm.PAYLOAD_BYTES_MAX,
    )
    assert validate_shape(tx) is None
    assert verify_signature(tx)


def test_tx_sign_rejects_malformed_fields():
    with pytest.raises(ValueError, match="nonce"):
        _signed(nonce=-1)
    with pytest.raises(ValueError, match="contract"):
        _signed(contract="")
