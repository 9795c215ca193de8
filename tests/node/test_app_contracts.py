"""The authn and cert contracts (node/contracts/authn.py, cert.py): schemas,
ownership rules and determinism, run against an in-memory chain state.

Role enforcement is the platform's (generic, before a contract runs); here
the contracts' declared roles are checked, and what only they can enforce:
that only the issuing department changes a certificate, only the recording
department revokes an event, and nothing outside the schema is stored.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from nacl.signing import SigningKey

from node.contracts.authn import BINDING_TTL_MAX_MS, AuthnContract
from node.contracts.cert import CertContract
from node.ledger.execution import OK, ContractError, TxContext
from node.ledger.query import QueryContext

T0 = 1_800_000_000_000
TAG = "ab" * 32
OTHER_TAG = "cd" * 32
ROOT = "11" * 32
APP_KEY = bytes(SigningKey(b"\x01" * 32).verify_key).hex()
CATALOG_HEIGHT = 7


def _key(seed: int) -> bytes:
    return bytes(SigningKey(bytes([seed]) * 32).verify_key)


IDENTITY, IDENTITY_2, CIVIL, HOUSING, WINDOW = (_key(n) for n in (10, 11, 12, 13, 14))
CATALOG = {  # the catalog chain's `key/<hex>` records (docs/design.md, "Contracts")
    IDENTITY: ("public-security", ["identity"]), IDENTITY_2: ("other-identity", ["identity"]),
    CIVIL: ("civil-affairs", ["issuer"]), HOUSING: ("housing", ["issuer"]), WINDOW: ("civil-affairs", ["window"]),
}


class Chain:
    """One chain's committed state, one contract, blocks of one transaction."""

    def __init__(self, contract) -> None:
        self.contract = contract
        self.state: dict[bytes, bytes] = {}
        self.height = 0
        self.time_ms = T0

    # the ledger's reader, and the catalog reads of engineer "reads" (ctx.read, ctx.read_height)
    def state_get(self, contract: str, key: bytes) -> bytes | None:
        return self.state.get(key)

    def run(self, sender: bytes, method: str, args: dict | bytes) -> dict:
        """Execute one transaction; commit its writes when OK. ContractError otherwise."""
        self.height += 1
        ctx = CatalogReadingContext(chain_id=self.contract.name, height=self.height, index=0,
                                    timestamp_ms=self.time_ms, tx_id=bytes(32), sender=sender,
                                    contract=self.contract.name, block_writes={}, reader=self)
        payload = args if isinstance(args, bytes) else json.dumps(args).encode()
        status, _, output = self.contract.execute(ctx, SimpleNamespace(method=method, payload=payload))
        assert status == OK
        for key, value in ctx.writes.items():
            assert value is not None
            self.state[key] = value
        return json.loads(output)

    def query(self, method: str, args: dict):
        snapshot = SimpleNamespace(height=self.height, get=lambda contract, key: self.state.get(key),
                                   scan=self._scan)
        ctx = QueryContext(chain_id=self.contract.name, contract=self.contract.name, state=snapshot)
        return json.loads(self.contract.query(ctx, method, json.dumps(args).encode()))

    def _scan(self, contract, prefix, *, after, limit):
        keys = sorted(k for k in self.state if k.startswith(prefix) and (after is None or k > after))
        return [(k, self.state[k]) for k in keys[:limit]]


class CatalogReadingContext(TxContext):
    """TxContext with the documented cross-chain read interface."""

    def read(self, chain: str, contract: str, key: bytes) -> bytes | None:
        assert (chain, contract) == ("catalog", "catalog")
        for pub, (department, roles) in CATALOG.items():
            if key == b"key/" + pub.hex().encode():
                return json.dumps({"department": department, "roles": roles, "status": "active", "since": 1,
                                   "revoked_at": None}).encode()
        return None

    def read_height(self, chain: str) -> int:
        assert chain == "catalog"
        return CATALOG_HEIGHT


# ---- authn -----------------------------------------------------------------------

def _event(**changes) -> dict:
    return {"event_id": "ev-1", "tag": TAG, "method": "face-window", "assurance": 4, "app_key": APP_KEY,
            "expires_at_ms": T0 + 10 * 60_000, "window": "civil-affairs/window-3", **changes}


@pytest.fixture
def authn() -> Chain:
    return Chain(AuthnContract())


def test_authn_declares_identity_roles_and_its_queries():
    assert dict(AuthnContract.methods) == {"record": "identity", "revoke": "identity"}
    assert AuthnContract.queries == {"event", "by_tag", "binding"}


def test_an_event_is_recorded_with_its_signer_and_catalog_height_and_binds_the_app_key(authn):
    out = authn.run(IDENTITY, "record", _event())
    assert out == {**_event(), "recorded_at_ms": T0, "height": 1, "department": "public-security",
                   "recorder": IDENTITY.hex(), "catalog_height": CATALOG_HEIGHT, "revoked": None}
    assert authn.query("event", {"event_id": "ev-1"}) == out
    assert authn.query("event", {"event_id": "nope"}) is None
    binding = {"tag": TAG, "assurance": 4, "expires_at_ms": T0 + 600_000, "event_id": "ev-1", "revoked": False}
    assert authn.query("binding", {"app_key": APP_KEY}) == {**binding, "valid": None}
    assert authn.query("binding", {"app_key": APP_KEY, "at_ms": T0 + 599_999})["valid"] is True
    assert authn.query("binding", {"app_key": APP_KEY, "at_ms": T0 + 600_000})["valid"] is False
    assert authn.query("binding", {"app_key": "ee" * 32}) is None


@pytest.mark.parametrize("changes, message", [
    ({"name": "张三"}, "unknown field 'name'"),
    ({"face_image": "AAAA"}, "unknown field 'face_image'"),
    ({"id_number": "11010519491231002X"}, "unknown field 'id_number'"),
    ({"tag": "AB" * 32}, "'tag' must be a subject tag"),
    ({"tag": "ab" * 31}, "'tag' must be a subject tag"),
    ({"method": "fingerprint"}, "'method' must be one of"),
    ({"assurance": 5}, "'assurance' must be an integer from 1 to 4"),
    ({"method": "password+sms", "assurance": 3}, "reaches at most assurance 2"),
    ({"app_key": "00" * 32}, "not an Ed25519 public key"),
    ({"expires_at_ms": T0}, "must be after the block time"),
    ({"expires_at_ms": T0 + BINDING_TTL_MAX_MS + 1}, "at most 30 minutes"),
    ({"window": "window-3"}, "'window' must be"),
])
def test_authn_refuses_what_its_schema_does_not_allow(authn, changes, message):
    with pytest.raises(ContractError, match=message):
        authn.run(IDENTITY, "record", _event(**changes))
    assert authn.state == {}


def test_a_missing_field_is_named(authn):
    event = _event()
    del event["window"]
    with pytest.raises(ContractError, match="missing field 'window'"):
        authn.run(IDENTITY, "record", event)


def test_an_event_id_is_recorded_once_and_an_app_key_serves_one_subject_while_bound(authn):
    authn.run(IDENTITY, "record", _event())
    with pytest.raises(ContractError, match="already recorded"):
        authn.run(IDENTITY, "record", _event())
    with pytest.raises(ContractError, match="bound to another subject"):
        authn.run(IDENTITY, "record", _event(event_id="ev-2", tag=OTHER_TAG))
    authn.run(IDENTITY, "record", _event(event_id="ev-3"))  # the same subject renews it
    assert authn.query("binding", {"app_key": APP_KEY})["event_id"] == "ev-3"
    authn.time_ms = T0 + 10 * 60_000  # expired: the key may be bound anew
    authn.run(IDENTITY, "record", _event(event_id="ev-4", tag=OTHER_TAG, expires_at_ms=authn.time_ms + 1))
    assert authn.query("binding", {"app_key": APP_KEY})["tag"] == OTHER_TAG


def test_only_the_recording_department_revokes_and_the_binding_ends(authn):
    authn.run(IDENTITY, "record", _event())
    with pytest.raises(ContractError, match="recorded by public-security; only that department"):
        authn.run(IDENTITY_2, "revoke", {"event_id": "ev-1", "reason": "device-lost"})
    with pytest.raises(ContractError, match="'reason' must be one of"):
        authn.run(IDENTITY, "revoke", {"event_id": "ev-1", "reason": "he asked nicely"})
    out = authn.run(IDENTITY, "revoke", {"event_id": "ev-1", "reason": "device-lost"})
    assert out["revoked"] == {"reason": "device-lost", "height": authn.height, "at_ms": T0, "by": IDENTITY.hex(),
                              "catalog_height": CATALOG_HEIGHT}
    assert authn.query("binding", {"app_key": APP_KEY, "at_ms": T0}) == {
        "tag": TAG, "assurance": 4, "expires_at_ms": T0 + 600_000, "event_id": "ev-1", "revoked": True,
        "valid": False}
    assert authn.query("by_tag", {"tag": TAG})["items"][0]["revoked"]["reason"] == "device-lost"
    with pytest.raises(ContractError, match="already revoked"):
        authn.run(IDENTITY, "revoke", {"event_id": "ev-1", "reason": "error"})
    with pytest.raises(ContractError, match="no event 'ev-9'"):
        authn.run(IDENTITY, "revoke", {"event_id": "ev-9", "reason": "error"})
    # revoked, the key may serve another subject at once
    authn.run(IDENTITY, "record", _event(event_id="ev-2", tag=OTHER_TAG))


def test_events_of_a_tag_come_in_pages(authn):
    for n in range(5):
        authn.run(IDENTITY, "record", _event(event_id=f"ev-{n}"))
    authn.run(IDENTITY, "record", _event(event_id="ev-x", tag=OTHER_TAG,
                                         app_key=bytes(SigningKey(b"\x02" * 32).verify_key).hex()))
    first = authn.query("by_tag", {"tag": TAG, "limit": 2})
    assert [e["event_id"] for e in first["items"]] == ["ev-0", "ev-1"] and first["more"]
    rest = authn.query("by_tag", {"tag": TAG, "after": "ev-1", "limit": 10})
    assert [e["event_id"] for e in rest["items"]] == ["ev-2", "ev-3", "ev-4"] and not rest["more"]
    with pytest.raises(ContractError, match="unknown field 'tags'"):
        authn.query("by_tag", {"tags": TAG})


def test_the_same_transactions_give_the_same_state_and_outputs():
    def replay() -> tuple[list, dict]:
        chain = Chain(AuthnContract())
        outs = [chain.run(IDENTITY, "record", _event(event_id=f"ev-{n}")) for n in range(3)]
        outs.append(chain.run(IDENTITY, "revoke", {"event_id": "ev-1", "reason": "error"}))
        return outs, chain.state

    assert replay() == replay()


# ---- cert ------------------------------------------------------------------------

def _cert(**changes) -> dict:
    return {"cert_id": "mc-1", "type": "marriage-certificate", "holder_tag": TAG, "valid_from_ms": T0,
            "valid_until_ms": None, "field_root": ROOT, **changes}


@pytest.fixture
def cert() -> Chain:
    chain = Chain(CertContract())
    chain.run(CIVIL, "issue", _cert())
    return chain


def test_cert_declares_issuer_and_window_roles():
    assert dict(CertContract.methods) == {"issue": "issuer", "record_verification": "window",
                                          "set_status": "issuer"}
    assert CertContract.queries == {"certificate", "by_holder", "verifications"}


def test_a_certificate_is_issued_valid_by_its_department(cert):
    record = cert.query("certificate", {"cert_id": "mc-1"})
    assert record == {**_cert(), "department": "civil-affairs", "issuer": CIVIL.hex(), "issued_height": 1,
                      "issued_at_ms": T0, "catalog_height": CATALOG_HEIGHT, "status": "valid",
                      "superseded_by": None, "status_height": 1, "status_at_ms": T0,
                      "status_catalog_height": CATALOG_HEIGHT}
    assert cert.query("by_holder", {"tag": TAG}) == {"items": [record], "more": False}
    with pytest.raises(ContractError, match="already issued"):
        cert.run(HOUSING, "issue", _cert())


@pytest.mark.parametrize("changes, message", [
    ({"holder_name": "张三"}, "unknown field 'holder_name'"),
    ({"fields": {"name": "张三"}}, "unknown field 'fields'"),
    ({"holder_tag": "11010519491231002X"}, "'holder_tag' must be"),
    ({"field_root": "zz" * 32}, "'field_root' must be"),
    ({"type": "Marriage Certificate"}, "'type' must be"),
    ({"valid_until_ms": T0}, "must be after valid_from_ms"),
    ({"cert_id": "a b"}, "'cert_id' must be"),
])
def test_cert_refuses_what_its_schema_does_not_allow(cert, changes, message):
    before = dict(cert.state)
    with pytest.raises(ContractError, match=message):
        cert.run(CIVIL, "issue", _cert(cert_id="mc-2") | changes)
    assert cert.state == before


def test_only_the_issuing_department_changes_the_status(cert):
    with pytest.raises(ContractError, match="issued by civil-affairs; only that department changes its status "
                                            r"\(the sender is housing's\)"):
        cert.run(HOUSING, "set_status", {"cert_id": "mc-1", "status": "revoked"})
    assert cert.query("certificate", {"cert_id": "mc-1"})["status"] == "valid"
    assert cert.run(CIVIL, "set_status", {"cert_id": "mc-1", "status": "suspended"})["status"] == "suspended"
    assert cert.run(CIVIL, "set_status", {"cert_id": "mc-1", "status": "valid"})["status_height"] == cert.height
    with pytest.raises(ContractError, match="already valid"):
        cert.run(CIVIL, "set_status", {"cert_id": "mc-1", "status": "valid"})
    record = cert.run(CIVIL, "set_status", {"cert_id": "mc-1", "status": "revoked"})
    assert (record["status"], record["status_height"]) == ("revoked", cert.height)
    assert cert.query("by_holder", {"tag": TAG})["items"][0]["status"] == "revoked"
    with pytest.raises(ContractError, match="is revoked .* which is final"):
        cert.run(CIVIL, "set_status", {"cert_id": "mc-1", "status": "valid"})
    with pytest.raises(ContractError, match="no certificate 'mc-9'"):
        cert.run(CIVIL, "set_status", {"cert_id": "mc-9", "status": "valid"})


def test_a_certificate_is_superseded_only_by_another_of_the_same_holder_and_department(cert):
    cert.run(HOUSING, "issue", _cert(cert_id="house-1"))
    cert.run(CIVIL, "issue", _cert(cert_id="mc-other", holder_tag=OTHER_TAG))
    cert.run(CIVIL, "issue", _cert(cert_id="mc-2"))
    with pytest.raises(ContractError, match="needs|missing|no certificate|'superseded_by'"):
        cert.run(CIVIL, "set_status", {"cert_id": "mc-1", "status": "superseded"})
    for successor in ("mc-1", "house-1", "mc-other"):
        with pytest.raises(ContractError, match="another certificate of the same holder issued by the same"):
            cert.run(CIVIL, "set_status", {"cert_id": "mc-1", "status": "superseded", "superseded_by": successor})
    with pytest.raises(ContractError, match="goes only with status"):
        cert.run(CIVIL, "set_status", {"cert_id": "mc-1", "status": "revoked", "superseded_by": "mc-2"})
    record = cert.run(CIVIL, "set_status", {"cert_id": "mc-1", "status": "superseded", "superseded_by": "mc-2"})
    assert (record["status"], record["superseded_by"]) == ("superseded", "mc-2")


def test_a_verification_records_the_field_and_result_never_the_value(cert):
    out = cert.run(WINDOW, "record_verification", {"cert_id": "mc-1", "field": "spouse", "result": "match"})
    assert out == {"cert_id": "mc-1", "field": "spouse", "result": "match", "window": WINDOW.hex(),
                   "department": "civil-affairs", "height": 2, "at_ms": T0, "catalog_height": CATALOG_HEIGHT,
                   "seq": f"{2:020d}/{0:06d}"}
    with pytest.raises(ContractError, match="unknown field 'value'"):
        cert.run(WINDOW, "record_verification", {"cert_id": "mc-1", "field": "spouse", "result": "match",
                                                 "value": "李四"})
    with pytest.raises(ContractError, match="'result' must be one of"):
        cert.run(WINDOW, "record_verification", {"cert_id": "mc-1", "field": "spouse", "result": "ok"})
    with pytest.raises(ContractError, match="no certificate"):
        cert.run(WINDOW, "record_verification", {"cert_id": "mc-2", "field": "spouse", "result": "match"})
    for result in ("mismatch", "invalid-status"):
        cert.run(WINDOW, "record_verification", {"cert_id": "mc-1", "field": "spouse", "result": result})
    first = cert.query("verifications", {"cert_id": "mc-1", "limit": 2})
    assert [v["result"] for v in first["items"]] == ["match", "mismatch"] and first["more"]
    rest = cert.query("verifications", {"cert_id": "mc-1", "after": first["items"][-1]["seq"]})
    assert [v["result"] for v in rest["items"]] == ["invalid-status"] and not rest["more"]
    with pytest.raises(ContractError, match="'after' must be the \"seq\""):
        cert.query("verifications", {"cert_id": "mc-1", "after": "x"})


def test_certificates_of_a_holder_come_in_pages(cert):
    for n in range(2, 5):
        cert.run(CIVIL, "issue", _cert(cert_id=f"mc-{n}"))
    first = cert.query("by_holder", {"tag": TAG, "limit": 3})
    assert [c["cert_id"] for c in first["items"]] == ["mc-1", "mc-2", "mc-3"] and first["more"]
    rest = cert.query("by_holder", {"tag": TAG, "after": "mc-3"})
    assert [c["cert_id"] for c in rest["items"]] == ["mc-4"] and not rest["more"]
    assert cert.query("by_holder", {"tag": OTHER_TAG}) == {"items": [], "more": False}


def test_cert_outputs_and_state_are_deterministic():
    def replay() -> tuple[list, dict]:
        chain = Chain(CertContract())
        outs = [chain.run(CIVIL, "issue", _cert(cert_id=f"c-{n}")) for n in range(3)]
        outs.append(chain.run(CIVIL, "set_status", {"cert_id": "c-0", "status": "superseded",
                                                    "superseded_by": "c-2"}))
        outs.append(chain.run(WINDOW, "record_verification", {"cert_id": "c-1", "field": "name", "result": "match"}))
        return outs, chain.state

    assert replay() == replay()
