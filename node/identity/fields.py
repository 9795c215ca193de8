"""Certificate fields behind a salted Merkle root: the holder discloses one
field at a time (docs/design.md, "Certificates (证照链)").

A certificate's fields {name: value} stay off chain, in the holder's
certificate file; the cert chain stores only `field_root`. Each field gets
its own random 16-byte salt, so a root or a disclosed sibling hash says
nothing about the other fields (without the salt a field with few possible
values, a sex or a birth year, could be guessed from its hash):

    leaf(name, value, salt) = SHA-256(FIELD_DOMAIN || lp(name) || lp(value) || salt)
    field_root              = merkle_root([leaf, ...] in byte order of name)   (consensus/merkle.py)
    lp(x)                   = 4-byte big-endian length || x (UTF-8)

merkle_root hashes each item once more with the RFC 6962 leaf prefix (0x00)
and inner nodes with 0x01, so a leaf can never pass for an inner node. A
disclosure is one field's name, value and salt and its sibling path; anyone
holding the root checks it with `verify_disclosure` and learns that one field
only.

Pure: no I/O; `make_certificate` draws salts from os.urandom unless given.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from typing import Any

from consensus.merkle import merkle_proof, merkle_root, verify_proof

FIELD_DOMAIN = b"govchain/cert-field/v1"
SALT_BYTES = 16
FIELDS_MAX = 256
VALUE_CHARS_MAX = 4096
PROOF_STEPS_MAX = 16  # a tree of FIELDS_MAX leaves is 8 deep; anything longer is not ours
FIELD_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
CERT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
HEX64_RE = re.compile(r"[0-9a-f]{64}")
CERT_FILE_VERSION = 1


class FieldError(ValueError):
    """A certificate file, field or disclosure that is not well formed."""


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def leaf(name: str, value: str, salt: bytes) -> bytes:
    return hashlib.sha256(FIELD_DOMAIN + _lp(name.encode()) + _lp(value.encode()) + salt).digest()


def check_field(name: object, value: object) -> None:
    if not isinstance(name, str) or not FIELD_NAME_RE.fullmatch(name):
        raise FieldError(f"field name {name!r} must be 1-64 of a-z, 0-9, '_', '.', '-' (starting with a letter "
                         f"or digit)")
    if not isinstance(value, str) or len(value) > VALUE_CHARS_MAX:
        raise FieldError(f"field {name!r}: the value must be a string of at most {VALUE_CHARS_MAX} characters")


def _salt(text: object, where: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(rf"[0-9a-f]{{{2 * SALT_BYTES}}}", text):
        raise FieldError(f"{where}: salt must be {2 * SALT_BYTES} lowercase hex digits")
    return bytes.fromhex(text)


def _leaves(fields: Mapping[str, Mapping[str, str]]) -> tuple[list[str], list[bytes]]:
    names = sorted(fields, key=str.encode)
    return names, [leaf(n, fields[n]["value"], bytes.fromhex(fields[n]["salt"])) for n in names]


def make_certificate(cert_id: str, chain: str, values: Mapping[str, Any],
                     salts: Mapping[str, bytes] | None = None) -> dict:
    """The holder's certificate file: {version, cert_id, chain, fields: {name:
    {value, salt}}, field_root}. `salts` (tests only) fixes them."""
    if not isinstance(cert_id, str) or not CERT_ID_RE.fullmatch(cert_id):
        raise FieldError(f"cert_id {cert_id!r} must be 1-64 of letters, digits, '.', '_', ':', '-'")
    if not isinstance(values, Mapping) or not 1 <= len(values) <= FIELDS_MAX:
        raise FieldError(f"fields must be a JSON object of 1 to {FIELDS_MAX} name: value pairs")
    fields = {}
    for name, value in values.items():
        check_field(name, value)
        salt = salts[name] if salts is not None else os.urandom(SALT_BYTES)
        fields[name] = {"value": value, "salt": salt.hex()}
    cert = {"version": CERT_FILE_VERSION, "cert_id": cert_id, "chain": chain, "fields": fields}
    cert["field_root"] = merkle_root(_leaves(fields)[1]).hex()
    return cert


def check_certificate(cert: object) -> dict:
    """A parsed certificate file, checked: its root must match its fields."""
    if not isinstance(cert, dict) or cert.get("version") != CERT_FILE_VERSION:
        raise FieldError(f"not a govchain certificate file (version {CERT_FILE_VERSION})")
    fields = cert.get("fields")
    if not isinstance(fields, dict) or not 1 <= len(fields) <= FIELDS_MAX:
        raise FieldError(f"certificate file: fields must be an object of 1 to {FIELDS_MAX} fields")
    for name, field in fields.items():
        if not isinstance(field, dict) or set(field) != {"value", "salt"}:
            raise FieldError(f"certificate file: field {name!r} must be {{\"value\": ..., \"salt\": ...}}")
        check_field(name, field["value"])
        _salt(field["salt"], f"field {name!r}")
    root = merkle_root(_leaves(fields)[1]).hex()
    if cert.get("field_root") != root:
        raise FieldError(f"certificate file: field_root {cert.get('field_root')!r} does not match its fields "
                         f"({root}); the file was changed")
    return cert


def disclose(cert: dict, name: str) -> dict:
    """One field of a certificate file with what proves it against field_root:
    {cert_id, chain, name, value, salt, proof: [{left, hash}, ...]}."""
    check_certificate(cert)
    names, leaves = _leaves(cert["fields"])
    if name not in cert["fields"]:
        raise FieldError(f"certificate {cert.get('cert_id')} has no field {name!r}; it has: {', '.join(names)}")
    path = merkle_proof(leaves, names.index(name))
    field = cert["fields"][name]
    return {"cert_id": cert["cert_id"], "chain": cert["chain"], "name": name, "value": field["value"],
            "salt": field["salt"], "proof": [{"left": left, "hash": sibling.hex()} for left, sibling in path]}


def check_disclosure(disclosure: object) -> dict:
    """The shape of a disclosure; FieldError names what is wrong."""
    keys = {"cert_id", "chain", "name", "value", "salt", "proof"}
    if not isinstance(disclosure, dict) or set(disclosure) != keys:
        raise FieldError(f"a disclosure is a JSON object with exactly: {', '.join(sorted(keys))}")
    if not isinstance(disclosure["cert_id"], str) or not CERT_ID_RE.fullmatch(disclosure["cert_id"]):
        raise FieldError("disclosure: cert_id is not a certificate id")
    check_field(disclosure["name"], disclosure["value"])
    _salt(disclosure["salt"], "disclosure")
    proof = disclosure["proof"]
    if not isinstance(proof, list) or len(proof) > PROOF_STEPS_MAX or not all(
            isinstance(step, dict) and set(step) == {"left", "hash"} and isinstance(step["left"], bool)
            and isinstance(step["hash"], str) and HEX64_RE.fullmatch(step["hash"]) for step in proof):
        raise FieldError(f"disclosure: proof must be at most {PROOF_STEPS_MAX} steps {{\"left\": bool, "
                         f"\"hash\": 64 hex}}")
    return disclosure


def verify_disclosure(root: bytes | str, disclosure: object) -> bool:
    """Whether the disclosed field is one of the fields under `root`. A
    malformed disclosure is False, not an exception."""
    try:
        check_disclosure(disclosure)
        root_bytes = bytes.fromhex(root) if isinstance(root, str) else root
    except (FieldError, ValueError):
        return False
    item = leaf(disclosure["name"], disclosure["value"], bytes.fromhex(disclosure["salt"]))
    path = [(step["left"], bytes.fromhex(step["hash"])) for step in disclosure["proof"]]
    return verify_proof(item, path, root_bytes)
