"""Salted certificate fields behind a Merkle root (node/identity/fields.py)."""
from __future__ import annotations

import copy

import pytest

from node.identity import fields
from node.identity.fields import FieldError, disclose, make_certificate, verify_disclosure

VALUES = {"name": "张三", "spouse": "李四", "registered_on": "2020-05-20", "office": "Haidian"}


@pytest.fixture
def cert() -> dict:
    return make_certificate("mc-1", "cert", VALUES)


def test_every_field_discloses_and_verifies_against_the_root(cert):
    for name in VALUES:
        disclosure = disclose(cert, name)
        assert (disclosure["name"], disclosure["value"]) == (name, VALUES[name])
        assert set(disclosure) == {"cert_id", "chain", "name", "value", "salt", "proof"}
        assert verify_disclosure(cert["field_root"], disclosure)
        assert verify_disclosure(bytes.fromhex(cert["field_root"]), disclosure)


def test_a_disclosure_carries_no_other_field_value(cert):
    text = repr(disclose(cert, "office"))
    assert all(value not in text for name, value in VALUES.items() if name != "office")


@pytest.mark.parametrize("change", [
    lambda d: d.update(value="王五"),
    lambda d: d.update(name="spouse"),
    lambda d: d.update(salt="00" * 16),
    lambda d: d["proof"][0].update(hash="00" * 32),
    lambda d: d["proof"][0].update(left=not d["proof"][0]["left"]),
    lambda d: d["proof"].pop(),
    lambda d: d["proof"].append({"left": False, "hash": "00" * 32}),
    lambda d: d.update(proof="nonsense"),
    lambda d: d.pop("salt"),
])
def test_a_changed_value_salt_or_proof_fails(cert, change):
    disclosure = disclose(cert, "name")
    change(disclosure)
    assert verify_disclosure(cert["field_root"], disclosure) is False


def test_another_certificate_root_does_not_verify_it(cert):
    other = make_certificate("mc-1", "cert", VALUES)  # same values, fresh salts
    assert other["field_root"] != cert["field_root"]
    assert not verify_disclosure(other["field_root"], disclose(cert, "name"))


def test_the_root_is_fixed_by_fields_and_salts_and_not_by_their_order():
    salts = {name: bytes([n]) * 16 for n, name in enumerate(VALUES)}
    a = make_certificate("c", "cert", VALUES, salts)
    b = make_certificate("c", "cert", dict(reversed(list(VALUES.items()))), salts)
    assert a["field_root"] == b["field_root"]
    leaves = sorted(fields.leaf(n, v, salts[n]) for n, v in VALUES.items())
    assert len(set(leaves)) == len(VALUES)


def test_a_tampered_certificate_file_is_refused(cert):
    bad = copy.deepcopy(cert)
    bad["fields"]["name"]["value"] = "王五"
    with pytest.raises(FieldError, match="does not match its fields"):
        disclose(bad, "name")
    with pytest.raises(FieldError, match="has no field 'age'"):
        disclose(cert, "age")


@pytest.mark.parametrize("values, message", [
    ({}, "1 to 256"),
    ({"Name": "x"}, "field name 'Name'"),
    ({"name": 5}, "value must be a string"),
])
def test_make_refuses_bad_fields(values, message):
    with pytest.raises(FieldError, match=message):
        make_certificate("c", "cert", values)
