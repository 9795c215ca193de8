"""Subject-tag OPRF (node/identity/oprf.py): 2HashDH over the edwards25519 prime-order group."""
from __future__ import annotations

import hashlib
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_core_ed25519_add,
    crypto_core_ed25519_is_valid_point,
    crypto_core_ed25519_scalar_reduce,
    crypto_scalarmult_ed25519_noclamp,
)

from node.core import keys
from node.identity import oprf
from node.identity.oprf import IdNumberError, OprfKey, blind, evaluate, finalize

# Example numbers from GB 11643-1999 (the standard that defines the check character).
ID_A = "11010519491231002X"
ID_B = "440524188001010014"
P = 2**255 - 19
# Order of the prime-order subgroup.
L = 2**252 + 27742317777372353535851937790883648493


def _key(seed: bytes) -> OprfKey:
    return OprfKey(crypto_core_ed25519_scalar_reduce(hashlib.sha512(seed).digest()))


def _tag(key: OprfKey, id_number: str) -> bytes:
    state, blinded = blind(id_number)
    return finalize(state, evaluate(key, blinded))


def _direct(key: OprfKey, id_number: str) -> bytes:
    """H2(x, H1(x)^k) without blinding: what only the key holder could compute."""
    x = oprf.oprf_input(id_number)
    return oprf.derive_tag(x, crypto_scalarmult_ed25519_noclamp(bytes(key), oprf.hash_to_group(x)))


def _complete(body: str) -> str:
    """The one valid ID number with this 17-digit body, found by asking the validator."""
    valid = []
    for check in "0123456789X":
        try:
            valid.append(oprf.normalize_id_number(body + check))
        except IdNumberError:
            pass
    assert len(valid) == 1, (body, valid)
    return valid[0]


KEY = _key(b"govchain test oprf key")


# -- the protocol --------------------------------------------------------------


def test_oprf_same_id_same_tag_through_different_blinds() -> None:
    (s1, b1), (s2, b2) = blind(ID_A), blind(ID_A)
    assert b1 != b2 and s1.blind != s2.blind
    t1, t2 = finalize(s1, evaluate(KEY, b1)), finalize(s2, evaluate(KEY, b2))
    assert t1 == t2 and len(t1) == oprf.TAG_BYTES == 32
    # the lowercase x and surrounding spaces a clerk might type give the same tag
    assert _tag(KEY, f"  {ID_A.lower()}\n") == t1


def test_oprf_different_ids_different_tags() -> None:
    ids = [ID_A, ID_B] + [_complete(f"11010519491231{n}") for n in range(100, 120)]
    tags = {_tag(KEY, i) for i in ids}
    assert len(tags) == len(set(ids)) == 22


def test_oprf_known_answer_pins_the_construction() -> None:
    """Tags live on chain for good: any change to H1, H2, the input encoding or the
    normalisation changes every tag, and must show up here. The values were
    computed by this implementation (no external test vectors exist for it)."""
    assert _tag(KEY, ID_A).hex() == "22593710e0000ffe5acf495d03eabe9f36eb171ffa5762a4927ac3647a5e10d6"
    assert _tag(KEY, ID_B).hex() == "7591d0062c04e74e1caf553871ff826f513bd0b8e51caa50104c0091f77d3137"
    assert KEY.public_key.hex() == "05eea69f786025cb88f17694fad850eff8a3492fa099cde2e3c048c4d4075a76"


def test_oprf_blinded_element_is_fresh_and_not_the_hashed_id() -> None:
    """What the identity service sees: a new group element every time, never H1(x) or
    a deterministic function of the ID it could look up in a table."""
    x = oprf.oprf_input(ID_A)
    h1 = oprf.hash_to_group(x)
    assert crypto_core_ed25519_is_valid_point(h1)
    seen = [blind(ID_A)[1] for _ in range(50)]
    assert len(set(seen)) == 50
    forbidden = {h1, crypto_scalarmult_ed25519_noclamp(bytes(KEY), h1), hashlib.sha256(x).digest()}
    assert forbidden.isdisjoint(seen)
    assert all(crypto_core_ed25519_is_valid_point(b) for b in seen)
    # the client's state holds the ID number and r: a log line must not show them
    assert repr(blind(ID_A)[0]) == "BlindState()"


def test_oprf_tag_cannot_be_recomputed_without_the_key() -> None:
    tag = _tag(KEY, ID_A)
    x = oprf.oprf_input(ID_A)
    # another identity service key (an operator's guess) gives another tag
    assert _tag(_key(b"another key"), ID_A) != tag
    # the keyless computations an operator could do from the ID number alone
    assert oprf.derive_tag(x, oprf.hash_to_group(x)) != tag
    assert tag not in {hashlib.sha256(x).digest(), hashlib.sha256(ID_A.encode()).digest()}
    # finalize with an evaluation that is not B^k: echoing B back (k = 1), or
    # the evaluation of somebody else's blinded element
    state, blinded = blind(ID_A)
    assert finalize(state, blinded) != tag
    other_state, other_blinded = blind(ID_B)
    assert finalize(state, evaluate(KEY, other_blinded)) != tag
    assert finalize(state, evaluate(KEY, blinded)) == tag


@settings(max_examples=60, deadline=None)
@given(
    body=st.text(alphabet="0123456789", min_size=17, max_size=17),
    key_seed=st.binary(min_size=64, max_size=64),
)
def test_oprf_blinded_protocol_equals_direct_evaluation(body: str, key_seed: bytes) -> None:
    scalar = crypto_core_ed25519_scalar_reduce(key_seed)
    if not any(scalar):  # the one key OprfKey refuses
        return
    key = OprfKey(scalar)
    id_number = _complete(body)
    assert _tag(key, id_number) == _direct(key, id_number)


# -- elements from the other side ------------------------------------------------

TORSION_8 = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
INVALID_ELEMENTS = {
    "identity": oprf.IDENTITY_ELEMENT,
    "identity with the sign bit set": b"\x01" + bytes(30) + b"\x80",
    "all zero (order 4)": bytes(32),
    "y = -1 (order 2)": (P - 1).to_bytes(32, "little"),
    "order 8": TORSION_8,
    "mixed order (valid + order 8)": crypto_core_ed25519_add(oprf.hash_to_group(b"x"), TORSION_8),
    "not on the curve (y = 2)": (2).to_bytes(32, "little"),
    "y >= p (non-canonical)": (P + 3).to_bytes(32, "little"),
    "all ones": b"\xff" * 32,
}


@pytest.mark.parametrize("name", INVALID_ELEMENTS)
def test_oprf_evaluate_and_finalize_reject_invalid_elements(name: str) -> None:
    element = INVALID_ELEMENTS[name]
    message = "the identity element" if name == "identity" else "not a valid group element"
    with pytest.raises(ValueError, match=f"blinded element is {message}"):
        evaluate(KEY, element)
    with pytest.raises(ValueError, match=f"evaluated element is {message}"):
        finalize(blind(ID_A)[0], element)


@pytest.mark.parametrize("element", [b"", bytes(31), oprf.hash_to_group(b"x") + b"\0", "ab" * 16, None])
def test_oprf_evaluate_rejects_wrong_length_or_type(element) -> None:
    with pytest.raises(ValueError, match="must be a bytes object of 32 bytes"):
        evaluate(KEY, element)


# -- ID numbers -----------------------------------------------------------------


@pytest.mark.parametrize("text, normal", [
    (ID_A, ID_A),
    (ID_B, ID_B),
    (ID_A.lower(), ID_A),
    (f" {ID_B}\t", ID_B),
])
def test_oprf_id_number_accepts_valid(text: str, normal: str) -> None:
    assert oprf.normalize_id_number(text) == normal


@pytest.mark.parametrize("text, message", [
    ("11010519491231002", "18 characters, got 17"),
    (ID_B + "4", "18 characters, got 19"),
    ("", "18 characters, got 0"),
    ("110105194912310021", "check character does not match"),  # ID_A with a digit check
    ("440524188001010015", "check character does not match"),
    ("44052418800101001X", "check character does not match"),
    ("1101051949123100X2", "17 ASCII digits"),
    ("11010519491231002Y", "end with a digit or X"),
    ("４４０５２４１８８００１０１００１４", "17 ASCII digits"),  # full-width digits
    ("1101 0519491231002X", "18 characters"),
    (110105194912310021, "must be a string"),
])
def test_oprf_id_number_rejects_invalid(text, message: str) -> None:
    with pytest.raises(IdNumberError, match=message):
        oprf.normalize_id_number(text)
    with pytest.raises(IdNumberError):
        blind(text)


@settings(max_examples=200, deadline=None)
@given(
    body=st.text(alphabet="0123456789", min_size=17, max_size=17),
    position=st.integers(0, 16),
    shift=st.integers(1, 9),
)
def test_oprf_id_checksum_catches_every_single_digit_error(body: str, position: int, shift: int) -> None:
    valid = _complete(body)  # also asserts exactly one check character fits each body
    digit = str((int(valid[position]) + shift) % 10)
    mistyped = valid[:position] + digit + valid[position + 1:]
    with pytest.raises(IdNumberError, match="check character"):
        oprf.normalize_id_number(mistyped)


# -- the key --------------------------------------------------------------------


@pytest.mark.parametrize("scalar, message", [
    (bytes(32), "must not be zero"),
    (L.to_bytes(32, "little"), "not a canonical scalar"),
    ((L + 1).to_bytes(32, "little"), "not a canonical scalar"),
    (b"\xff" * 32, "not a canonical scalar"),
    (bytes(31), "must be 32 bytes"),
])
def test_oprf_key_rejects_bad_scalars(scalar: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OprfKey(scalar)


def test_oprf_key_accepts_largest_scalar_and_hides_it() -> None:
    key = OprfKey((L - 1).to_bytes(32, "little"))
    assert bytes(key).hex() not in repr(key) and key.public_key.hex() in repr(key)
    assert OprfKey.generate() != OprfKey.generate()


def test_oprf_key_file_round_trip_0600(tmp_path) -> None:
    path = tmp_path / "oprf.key"
    key = oprf.generate_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert lines[0] == oprf.KEY_FILE_HEADER and lines[1] == f"# public_key {key.public_key.hex()}"
    loaded = oprf.load_key(path)
    assert loaded == key and _tag(loaded, ID_A) == _tag(key, ID_A)
    with pytest.raises(keys.KeyFileError, match="already exists"):
        oprf.generate_key_file(path)
    os.chmod(path, 0o640)
    with pytest.raises(keys.KeyFileError, match="accessible by group or others"):
        oprf.load_key(path)


def test_oprf_key_file_is_not_an_ed25519_key_file(tmp_path) -> None:
    keys.generate_key_file(tmp_path / "node.key")
    oprf.generate_key_file(tmp_path / "oprf.key")
    with pytest.raises(keys.KeyFileError, match="first line must be"):
        oprf.load_key(tmp_path / "node.key")
    with pytest.raises(keys.KeyFileError, match="first line must be"):
        keys.load_signing_key(tmp_path / "oprf.key")


@pytest.mark.parametrize("secret, public, message", [
    (L.to_bytes(32, "little"), None, "invalid key: OPRF key is not a canonical scalar"),
    (bytes(32), None, "invalid key: OPRF key must not be zero"),
    (bytes(KEY), "22" * 32, "does not match the private key"),
])
def test_oprf_key_file_rejects_bad_secret(tmp_path, secret: bytes, public: str | None, message: str) -> None:
    path = tmp_path / "oprf.key"
    public_line = f"# public_key {public}\n" if public else ""
    path.write_text(f"{oprf.KEY_FILE_HEADER}\n{public_line}{secret.hex()}\n")
    os.chmod(path, 0o600)
    with pytest.raises(keys.KeyFileError, match=message):
        oprf.load_key(path)
