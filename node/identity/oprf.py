"""Subject tags: an oblivious PRF (2HashDH) over the prime-order group of edwards25519.

A subject tag names a citizen on chain without naming them. It must not be a
hash of the ID number: there are only about 10^10 plausible resident ID
numbers, so anyone could hash them all and invert the tag. Instead a tag is a
PRF keyed by a secret `k` that only the identity service (the public security
department) holds, and the PRF is evaluated obliviously, so the identity
service never sees the ID number it tags (Jarecki et al., "2HashDH"; the OPRF
mode of RFC 9497)::

    H1(x)      = from_uniform(h[:32]) + from_uniform(h[32:]),  h = SHA-512(H1_DOMAIN || x)
    tag(id)    = H2(id, H1(x)^k)   where x = OPRF input for id (see `oprf_input`)
    H2(x, N)   = SHA-256(H2_DOMAIN || len(x) || x || len(N) || N)    (lengths: 2 bytes, big-endian)

    client (window)            identity service
    r <- random scalar
    B = H1(x)^r        --B-->  (validates B)
                       <--E--  E = B^k
    N = E^(1/r) = H1(x)^k
    tag = H2(x, N)

B is uniformly distributed in the group whatever the ID (r is uniform), so the
identity service learns nothing about the ID from it. Without `k` nobody, node
operators included, can compute H1(x)^k and so the tag.

The group. The plan named ristretto255, but PyNaCl exposes no ristretto255
function (up to 1.6.2; pyca/pynacl#646 was never merged). PyNaCl does expose
libsodium's edwards25519 arithmetic, and ristretto255 is only an encoding of
the same prime-order group (order L = 2^252 + ...). What ristretto gives by
construction (no small-order or mixed-order elements, one encoding per
element) is enforced here by validation: every element that arrives from the
other side passes `crypto_core_ed25519_is_valid_point` (canonical encoding, on
the curve, in the prime-order subgroup, not of small order), and libsodium's
`crypto_scalarmult_ed25519_noclamp` checks the same and refuses an identity
result. H1 is the "encode twice and add" construction, which behaves as a
random oracle into the group (a single Elligator 2 map reaches only about half
of the points); `from_uniform` clears the cofactor. The price is that these
tags are not RFC 9497's ristretto255-SHA512 outputs: another client has to
implement this file's H1 and H2, not call an off-the-shelf RFC 9497 library.

Not here: the verifiable variant (VOPRF, where the service proves with a DLEQ
proof that it used the published key) is out of scope; a client here trusts the
identity service to evaluate with the right key. The key cannot be rotated
without re-tagging everyone, since every tag depends on it.

This module does no I/O except the key-file helpers at the end.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field

import nacl.utils
from nacl.bindings import (
    crypto_core_ed25519_add,
    crypto_core_ed25519_from_uniform,
    crypto_core_ed25519_is_valid_point,
    crypto_core_ed25519_scalar_invert,
    crypto_core_ed25519_scalar_reduce,
    crypto_scalarmult_ed25519_base_noclamp,
    crypto_scalarmult_ed25519_noclamp,
)

from node.core.keys import read_key_file, write_key_file

# Versioned domains: a different construction must not produce colliding tags.
H1_DOMAIN = b"govchain/subject-tag/v1/H1/edwards25519-sha512-elligator2x2"
H2_DOMAIN = b"govchain/subject-tag/v1/H2/sha256"
# The OPRF input names the kind of identifier, so another kind added later
# (an enterprise's unified social credit code is also 18 characters) can never
# give the same tag as a resident ID with the same characters.
RESIDENT_ID_KIND = b"cn-resident-id"

ELEMENT_BYTES = 32
SCALAR_BYTES = 32
TAG_BYTES = 32
# The encoding of the neutral element (x=0, y=1); its own error message.
IDENTITY_ELEMENT = b"\x01" + bytes(31)

KEY_FILE_HEADER = "# govchain oprf key v1 (subject tags, edwards25519 scalar) -- keep secret, mode 0600"

# GB 11643-1999 check character: ISO 7064 MOD 11-2 over the first 17 digits.
# Weight of position i (0-based) is 2^(17-i) mod 11.
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK_CHARS = "10X98765432"  # indexed by (sum of weighted digits) mod 11
_ASCII_DIGITS = frozenset("0123456789")


class IdNumberError(ValueError):
    """Not a well-formed mainland China resident ID number."""


def normalize_id_number(id_number: str) -> str:
    """The canonical form of a resident ID number: 18 ASCII characters, check character checked.

    Surrounding whitespace is dropped and a final lowercase ``x`` becomes
    ``X``, so the same card always gives the same tag. Anything else that is
    not 17 ASCII digits and a valid check character (digit or ``X``) is
    refused: a typo must be caught at the window, not turned into the tag of
    nobody. Full-width or other Unicode digits are refused too (str.isdigit
    would accept them).
    """
    if not isinstance(id_number, str):
        raise IdNumberError(f"ID number must be a string, got {type(id_number).__name__}")
    text = id_number.strip()
    if len(text) != 18:
        raise IdNumberError(f"ID number must be 18 characters, got {len(text)}")
    body, check = text[:17], text[17].upper()
    if not _ASCII_DIGITS.issuperset(body):
        raise IdNumberError("ID number must start with 17 ASCII digits")
    if check not in _ASCII_DIGITS and check != "X":
        raise IdNumberError("ID number must end with a digit or X")
    expected = _ID_CHECK_CHARS[sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS)) % 11]
    if check != expected:
        raise IdNumberError("ID number check character does not match (ISO 7064 MOD 11-2); mistyped?")
    return body + check


def oprf_input(id_number: str) -> bytes:
    """The bytes the PRF is evaluated on: the identifier kind and the normalized ID number."""
    return RESIDENT_ID_KIND + b":" + normalize_id_number(id_number).encode("ascii")


def hash_to_group(data: bytes) -> bytes:
    """H1: `data` to an element of the prime-order group, modelled as a random oracle."""
    digest = hashlib.sha512(H1_DOMAIN + data).digest()
    return crypto_core_ed25519_add(
        crypto_core_ed25519_from_uniform(digest[:32]),
        crypto_core_ed25519_from_uniform(digest[32:]),
    )


def derive_tag(data: bytes, unblinded: bytes) -> bytes:
    """H2: the 32-byte tag from the OPRF input and H1(input)^k."""
    # Length prefixes make the encoding injective whatever lengths later kinds use.
    hasher = hashlib.sha256(H2_DOMAIN)
    for part in (data, unblinded):
        hasher.update(len(part).to_bytes(2, "big"))
        hasher.update(part)
    return hasher.digest()


def _random_scalar() -> bytes:
    # 64 uniform bytes reduced mod L: bias about 2^-259. Zero has no inverse.
    while True:
        scalar = crypto_core_ed25519_scalar_reduce(nacl.utils.random(64))
        if any(scalar):
            return scalar


def _check_element(element: bytes, what: str) -> None:
    if not isinstance(element, bytes) or len(element) != ELEMENT_BYTES:
        raise ValueError(f"{what} must be a bytes object of {ELEMENT_BYTES} bytes")
    if element == IDENTITY_ELEMENT:
        raise ValueError(f"{what} is the identity element")
    if not crypto_core_ed25519_is_valid_point(element):
        raise ValueError(
            f"{what} is not a valid group element (non-canonical encoding, not on the curve, "
            f"of small order, or outside the prime-order subgroup)"
        )


class OprfKey:
    """The identity service's secret `k`: a nonzero scalar modulo L, canonical encoding.

    The repr never shows the scalar, so a key in a log line or a traceback
    does not leak.
    """

    __slots__ = ("_scalar",)

    def __init__(self, scalar: bytes) -> None:
        if not isinstance(scalar, bytes) or len(scalar) != SCALAR_BYTES:
            raise ValueError(f"OPRF key must be {SCALAR_BYTES} bytes")
        # Reducing a canonical scalar leaves it unchanged; anything >= L is refused
        # so one key has exactly one encoding.
        if crypto_core_ed25519_scalar_reduce(scalar + bytes(32)) != scalar:
            raise ValueError("OPRF key is not a canonical scalar (not below the group order)")
        if not any(scalar):
            raise ValueError("OPRF key must not be zero")
        self._scalar = scalar

    @classmethod
    def generate(cls) -> OprfKey:
        return cls(_random_scalar())

    def __bytes__(self) -> bytes:
        return self._scalar

    @property
    def public_key(self) -> bytes:
        """k*G: identifies the key (in the key file; a verifiable variant would publish it)."""
        return crypto_scalarmult_ed25519_base_noclamp(self._scalar)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OprfKey) and hmac.compare_digest(self._scalar, other._scalar)

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __repr__(self) -> str:
        return f"OprfKey(public_key={self.public_key.hex()})"


@dataclass(frozen=True)
class BlindState:
    """What the client keeps between `blind` and `finalize`: the input and the blind r.

    Both are secret (the input contains the ID number), so neither is in the repr.
    """

    oprf_input: bytes = field(repr=False)
    blind: bytes = field(repr=False)


def blind(id_number: str) -> tuple[BlindState, bytes]:
    """Client side: (state to keep, B = H1(input)^r to send to the identity service)."""
    data = oprf_input(id_number)
    r = _random_scalar()
    return BlindState(data, r), crypto_scalarmult_ed25519_noclamp(r, hash_to_group(data))


def evaluate(key: OprfKey, blinded: bytes) -> bytes:
    """Identity service side: E = B^k. Raises ValueError for an element that is not a valid group element."""
    _check_element(blinded, "blinded element")
    return crypto_scalarmult_ed25519_noclamp(bytes(key), blinded)


def finalize(state: BlindState, evaluated: bytes) -> bytes:
    """Client side: the 32-byte tag H2(input, E^(1/r)).

    The evaluated element comes from the network, so it is validated like the
    blinded one. Without the verifiable variant the client cannot tell an
    evaluation with a wrong key from a right one; it gets a wrong tag.
    """
    return derive_tag(state.oprf_input, unblind(state, evaluated))


def unblind(state: BlindState, evaluated: bytes) -> bytes:
    """Client side: N = E^(1/r) = H1(input)^k, the OPRF output the tag hashes. A
    verification query carries it, sealed to the provider, so that the
    provider can check the tag against the ID number (docs/design.md,
    "Verification queries")."""
    _check_element(evaluated, "evaluated element")
    return crypto_scalarmult_ed25519_noclamp(crypto_core_ed25519_scalar_invert(state.blind), evaluated)


# Key files: the format and permission rules of node/core/keys.py with their own header.

def generate_key_file(path: str | os.PathLike[str]) -> OprfKey:
    """Create a new random OPRF key at `path` (mode 0600, never overwrites) and return it."""
    key = OprfKey.generate()
    write_key_file(path, header=KEY_FILE_HEADER, public_hex=key.public_key.hex(), secret=bytes(key))
    return key


def load_key(path: str | os.PathLike[str], *, check_permissions: bool = True) -> OprfKey:
    """Read a key written by `generate_key_file`; KeyFileError for anything else."""
    scalar = read_key_file(
        path, header=KEY_FILE_HEADER, secret_bytes=SCALAR_BYTES,
        public_of=lambda scalar: OprfKey(scalar).public_key.hex(),
        check_permissions=check_permissions,
    )
    return OprfKey(scalar)
