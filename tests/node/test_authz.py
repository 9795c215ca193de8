"""The authz contract (node/contracts/authz.py) on a real ledger and
executor: every consent rule, enforced at execution, the same on every node
(docs/design.md, "Consent and the access log (authz)")."""
from __future__ import annotations

import json

import pytest

from node.contracts.authz import AuthzContract
from node.identity.citizens import CITIZEN as CITIZEN_ROLE
from node.ledger.execution import FAILED, OK
from tests.node.authz_chain import (
    CITIZEN, CITIZEN_2, CIVIL, HOUSING, POWER, T0, TAG, TAG_2, WINDOW, AuthzChain, access, bind, consent, hexkey,
    item, key, set_key,
)


@pytest.fixture
def chain(tmp_path) -> AuthzChain:
    chain = AuthzChain(tmp_path / "authz")
    bind(chain.authn, CITIZEN)
    return chain


def ok(chain, signer, method, payload) -> dict:
    receipt = chain.send(signer, method, payload)
    assert receipt.status == OK, receipt.message
    return json.loads(receipt.output)


def refused(chain, signer, method, payload) -> str:
    receipt = chain.send(signer, method, payload)
    assert receipt.status == FAILED, receipt
    return receipt.message


def granted(chain, **changes) -> dict:
    return ok(chain, CITIZEN, "grant", consent(**changes))


def test_authz_declares_its_roles_and_queries():
    assert dict(AuthzContract.methods) == {"grant": (CITIZEN_ROLE, "window"), "log_access": "provider",
                                           "revoke": CITIZEN_ROLE}
    assert AuthzContract.queries == {"consent", "access", "by_tag"}


# ---- grant and revoke ------------------------------------------------------------------------------

def test_a_citizen_grants_a_consent_citing_the_catalog_and_authn_heights(chain):
    out = granted(chain)
    assert out == {**consent(), "scope": {"fields": ["address", "area"]}, "uses": 0, "revoked": None,
                   "granted_by": {"by": "citizen", "key": hexkey(CITIZEN), "authn_height": chain.authn.height},
                   "height": 1, "granted_at_ms": T0, "catalog_height": chain.catalog.height}
    assert chain.query("consent", consent_id="c-1") == out
    assert chain.query("consent", consent_id="c-2") is None


@pytest.mark.parametrize("changes, message", [
    ({"name": "张三"}, "unknown field 'name'"),
    ({"id_number": "11010519491231002X"}, "unknown field 'id_number'"),
    ({"tag": TAG_2}, "authn binding is for another subject"),
    ({"grantee": "nowhere"}, "department 'nowhere' is not registered"),
    ({"item": "no-such-item"}, "catalog item 'no-such-item' is not registered"),
    ({"provider": "power-company"}, "is housing-registry's, not power-company's"),
    ({"scope": {"fields": ["income"]}}, "has no field 'income'"),
    ({"scope": {"fields": ["area", "area"]}}, "names a field twice"),
    ({"scope": {"predicate": False}}, "must be"),
    ({"expires_at_ms": T0}, "must be after the block time"),
    ({"not_before_ms": T0 + 3_600_000}, "must be after 'not_before_ms'"),
    ({"max_uses": 0}, "'max_uses' must be an integer from 1"),
    ({"purpose": "for Zhang San's house"}, "'purpose' must be"),
    ({"case_id": "x" * 65}, "'case_id' must be"),
])
def test_grant_refuses_what_its_rules_do_not_allow(chain, changes, message):
    assert message in refused(chain, CITIZEN, "grant", consent(**changes))


def test_a_consent_id_is_granted_once(chain):
    granted(chain)
    assert "consent 'c-1' already exists" in refused(chain, CITIZEN, "grant", consent())


@pytest.mark.parametrize("state, message", [
    ("none", "has no authn binding"),
    ("expired", "expired at"),
    ("revoked", "was revoked"),
])
def test_only_a_citizen_whose_binding_is_in_force_grants(chain, state, message):
    if state != "none":
        bind(chain.authn, CITIZEN_2, expires_at_ms=T0 if state == "expired" else T0 + 60_000,
             revoked=state == "revoked", event_id="ev-2")
    assert message in refused(chain, CITIZEN_2, "grant", consent())


def test_a_window_grants_citing_an_authn_event_of_the_tag_in_force(chain):
    bind(chain.authn, CITIZEN_2, TAG_2, event_id="ev-w")
    out = ok(chain, WINDOW, "grant", consent(tag=TAG_2, authn_event="ev-w"))
    assert out["granted_by"] == {"by": "window", "key": hexkey(WINDOW), "department": "civil-affairs",
                                 "authn_event": "ev-w", "authn_height": chain.authn.height}
    assert out["tag"] == TAG_2


def test_a_window_grant_is_refused_for_an_expired_revoked_other_tag_or_elsewhere_recorded_event(chain):
    bind(chain.authn, CITIZEN_2, TAG_2, event_id="ev-exp", expires_at_ms=T0)
    assert "is valid until" in refused(chain, WINDOW, "grant", consent(tag=TAG_2, authn_event="ev-exp"))
    bind(chain.authn, CITIZEN_2, TAG_2, event_id="ev-rev", revoked=True)
    assert "was revoked" in refused(chain, WINDOW, "grant", consent(tag=TAG_2, authn_event="ev-rev"))
    bind(chain.authn, CITIZEN_2, TAG_2, event_id="ev-other")
    assert "authenticated another subject" in refused(chain, WINDOW, "grant",
                                                      consent(authn_event="ev-other"))
    assert "is not recorded" in refused(chain, WINDOW, "grant", consent(tag=TAG_2, authn_event="ev-none"))
    bind(chain.authn, CITIZEN_2, TAG_2, event_id="ev-far", window="tax-bureau/window-1")
    assert "not at civil-affairs's" in refused(chain, WINDOW, "grant", consent(tag=TAG_2, authn_event="ev-far"))
    # a citizen cannot pose as a window by naming an event
    assert "granted by a window key" in refused(chain, CITIZEN, "grant", consent(authn_event="ev-1"))


def test_only_the_citizen_of_the_tag_revokes(chain):
    granted(chain)
    bind(chain.authn, CITIZEN_2, TAG_2, event_id="ev-2")
    assert "for another subject" in refused(chain, CITIZEN_2, "revoke", {"consent_id": "c-1"})
    assert "no consent 'c-9'" in refused(chain, CITIZEN, "revoke", {"consent_id": "c-9"})
    out = ok(chain, CITIZEN, "revoke", {"consent_id": "c-1"})
    assert out["revoked"]["height"] == 4 and out["revoked"]["by"] == hexkey(CITIZEN)
    assert "already revoked (at height 4)" in refused(chain, CITIZEN, "revoke", {"consent_id": "c-1"})


# ---- log_access: each consent rule --------------------------------------------------------------------

def test_a_permit_within_the_consent_spends_one_use_and_is_indexed_by_tag(chain):
    granted(chain, max_uses=2)
    entry = ok(chain, HOUSING, "log_access", access())
    assert entry["decision"] == "PERMIT" and entry["consent_use"] == 1
    assert entry["provider_key"] == hexkey(HOUSING) and entry["height"] == 2 and entry["index"] == 0
    assert entry["catalog_height"] == chain.catalog.height and entry["time_ms"] == T0
    assert chain.query("consent", consent_id="c-1")["uses"] == 1
    assert chain.query("access", request_digest=entry["request_digest"]) == {"entry": entry, "height": 2, "index": 0}
    assert chain.query("by_tag", tag=TAG) == {"items": [entry], "more": False, "next": "0" * 15 + "2" + "0" * 8}
    assert chain.query("by_tag", tag=TAG_2) == {"items": [], "more": False, "next": None}


def _time(chain, ms):
    chain.time_ms = ms


@pytest.mark.parametrize("setup, changes, message", [
    (lambda c: ok(c, CITIZEN, "revoke", {"consent_id": "c-1"}), {}, "consent 'c-1' was revoked at height 3"),
    (lambda c: _time(c, T0 + 3_600_000), {}, "expired at"),
    (None, {"basis": {"consent": "c-late"}}, "is not valid before"),
    (None, {"requester": "civil-affairs", "requester_key": CIVIL}, "is for grantee 'power-company'"),
    (None, {"item": "tax-clear"}, "is for item 'property-owner'"),
    (None, {"purpose": "tax-check"}, "is for purpose 'power-transfer'"),
    (None, {"case_id": "case-8"}, "is for case_id 'case-7'"),
    (None, {"tag": TAG_2}, "is for tag"),
    (None, {"fields": ["address", "owner_since"]}, "does not allow field 'owner_since'"),
    (None, {"fields": None, "predicate": True}, "not a predicate"),
    (None, {"basis": {"consent": "c-none"}}, "no consent 'c-none'"),
])
def test_a_permit_outside_the_consent_fails_and_spends_nothing(chain, setup, changes, message):
    granted(chain)
    granted(chain, consent_id="c-late", not_before_ms=T0 + 60_000)
    if setup:
        setup(chain)
    requester_key = changes.pop("requester_key", POWER)
    text = refused(chain, HOUSING, "log_access", access(requester_key=requester_key, **changes))
    assert text.startswith("PERMIT refused: ") and message in text
    assert chain.query("consent", consent_id="c-1")["uses"] == 0
    assert chain.query("by_tag", tag=TAG)["items"] == []


def test_a_consent_not_yet_valid_becomes_usable_at_its_not_before(chain):
    granted(chain, not_before_ms=T0 + 60_000)
    assert "is not valid before" in refused(chain, HOUSING, "log_access", access())
    chain.time_ms = T0 + 60_000
    assert ok(chain, HOUSING, "log_access", access())["consent_use"] == 1


def test_a_spent_consent_refuses_the_next_permit(chain):
    granted(chain, max_uses=1)
    ok(chain, HOUSING, "log_access", access(b"\x01" * 32))
    assert "has no uses left (1 of 1 spent)" in refused(chain, HOUSING, "log_access", access(b"\x02" * 32))


def test_colluding_requester_and_provider_cannot_exceed_max_uses_in_one_block_or_across_blocks(chain):
    granted(chain, max_uses=2)
    digests = [bytes([n]) * 32 for n in range(1, 6)]
    # three PERMITs in one block: the third sees the two uses the first two spent in the same block
    result = chain.block(*(chain.tx(HOUSING, "log_access", access(d)) for d in digests[:3]))
    assert [r.status for r in result.receipts] == [OK, OK, FAILED]
    assert "has no uses left (2 of 2 spent)" in result.receipts[2].message
    assert chain.query("consent", consent_id="c-1")["uses"] == 2
    # and in a later block
    assert "has no uses left" in refused(chain, HOUSING, "log_access", access(digests[3]))
    assert [e["consent_use"] for e in chain.query("by_tag", tag=TAG)["items"]] == [1, 2]


def test_a_request_digest_is_logged_once_so_redelivery_spends_no_second_use(chain):
    granted(chain, max_uses=3)
    digest = b"\x09" * 32
    ok(chain, HOUSING, "log_access", access(digest))
    assert f"request {digest.hex()} already logged at height 2" in refused(chain, HOUSING, "log_access",
                                                                            access(digest))
    result = chain.block(*(chain.tx(HOUSING, "log_access", access(b"\x0a" * 32)) for _ in range(2)))
    assert [r.status for r in result.receipts] == [OK, FAILED] and "already logged at height 4" in \
        result.receipts[1].message
    assert chain.query("consent", consent_id="c-1")["uses"] == 2


def test_a_deny_is_recorded_without_spending_and_names_the_requester_and_reason(chain):
    granted(chain, max_uses=1)
    entry = ok(chain, HOUSING, "log_access", access(decision="DENY", reason="fields outside the consent",
                                                    answer=None))
    assert entry["decision"] == "DENY" and entry["reason"] == "fields outside the consent"
    assert entry["requester"] == "power-company" and entry["requester_key"] == hexkey(POWER)
    assert entry["consent_use"] is None
    assert chain.query("consent", consent_id="c-1")["uses"] == 0
    # a DENY may cite no basis, and even a spent or unknown consent
    assert ok(chain, HOUSING, "log_access", access(decision="DENY", basis=None, answer=0))["basis"] is None
    assert [e["decision"] for e in chain.query("by_tag", tag=TAG)["items"]] == ["DENY", "DENY"]


@pytest.mark.parametrize("reason", ["", "ID 110105194912310021 not found", "x" * 201, None])
def test_a_deny_reason_carries_no_digits_and_is_bounded(chain, reason):
    assert "needs field 'reason'" in refused(chain, HOUSING, "log_access", access(decision="DENY", reason=reason))


def test_a_permit_carries_no_reason(chain):
    granted(chain, max_uses=2)
    assert "'reason' is for a DENY" in refused(chain, HOUSING, "log_access", access(reason="fine"))
    assert ok(chain, HOUSING, "log_access", access(reason=""))["reason"] is None  # the verification service's form


def test_only_the_providing_department_logs_its_accesses_and_signatures_are_checked(chain):
    granted(chain)
    assert "only housing-registry logs its own accesses" in refused(chain, POWER, "log_access",
                                                                     access(provider_key=POWER))
    forged = access() | {"requester_signature": CIVIL.sign(b"\x01" * 32).signature.hex()}
    assert "requester_signature is not requester_key's signature" in refused(chain, HOUSING, "log_access", forged)
    assert "attestation is not the sender's signature" in refused(
        chain, HOUSING, "log_access", access() | {"decision": "PERMIT", "answer_commitment": "00" * 32})
    assert chain.query("consent", consent_id="c-1")["uses"] == 0


def test_a_permit_needs_an_active_item_a_registered_requester_and_an_allowed_answer_mode(chain):
    granted(chain, max_uses=5)
    set_key(chain.catalog, POWER, "power-company", ["requester"], status="revoked")
    assert "requester_key of power-company was revoked" in refused(chain, HOUSING, "log_access", access())
    set_key(chain.catalog, POWER, "power-company", ["provider"])
    assert "answers roles [requester, window]" in refused(chain, HOUSING, "log_access", access())
    set_key(chain.catalog, POWER, "power-company", ["requester"])
    chain.catalog.put("catalog", b"item/property-owner", item(answer_modes=["predicate"]))
    assert "does not answer by fields" in refused(chain, HOUSING, "log_access", access())
    chain.catalog.put("catalog", b"item/property-owner", item(status="retired"))
    assert "catalog item 'property-owner' is retired" in refused(chain, HOUSING, "log_access", access())
    stranger = key("stranger")
    assert "is not a registered key of power-company" in refused(chain, HOUSING, "log_access",
                                                                  access(requester_key=stranger))
    assert chain.query("consent", consent_id="c-1")["uses"] == 0


def test_a_permit_on_a_standing_agreement(chain):
    agreement = {"agreement": "aa" * 32}
    entry = ok(chain, HOUSING, "log_access", access(item="tax-clear", basis=agreement, fields=None, predicate=True))
    assert entry["basis"] == agreement and entry["consent_use"] is None
    assert "requires the citizen's consent" in refused(chain, HOUSING, "log_access", access(basis=agreement))
    assert "no agreement" in refused(chain, HOUSING, "log_access", access(
        item="tax-clear", basis={"agreement": "bb" * 32}, fields=None, predicate=True))
    assert "lets power-company ask housing-registry, not civil-affairs" in refused(chain, HOUSING, "log_access", access(
        item="tax-clear", basis=agreement, requester="civil-affairs", requester_key=CIVIL, fields=None,
        predicate=True))


def test_by_tag_pages_in_log_order(chain):
    granted(chain, max_uses=5)
    entries = [ok(chain, HOUSING, "log_access", access(bytes([n]) * 32)) for n in range(1, 6)]
    first = chain.query("by_tag", tag=TAG, limit=2)
    assert first["items"] == entries[:2] and first["more"] is True
    second = chain.query("by_tag", tag=TAG, limit=2, after=first["next"])
    assert second["items"] == entries[2:4]
    last = chain.query("by_tag", tag=TAG, after=second["next"])
    assert last == {"items": entries[4:], "more": False, "next": last["next"]}


# ---- the role citizen in the platform's permission check (admission and execution) ------------------

def _screen(chain, signer, method, payload, now_ms=T0):
    from node.chain.admission import screen
    from node.core import codec
    tx = codec.tx_from_request(chain.tx(signer, method, payload))
    return screen(tx, chain_id="authz", registry=chain.registry, stopping=False, replayed=lambda _: False,
                  catalog=chain.catalog.state_get, authn=chain.authn.state_get, now_ms=now_ms)


@pytest.mark.parametrize("state, why", [
    ("none", "has no authn binding"),
    ("expired", f"expired at {T0 + 60_000} ms (time {T0 + 60_000} ms)"),
    ("revoked", "authn binding (event ev-2) was revoked"),
])
def test_the_citizen_role_needs_a_binding_in_force_at_admission_and_at_execution(chain, state, why):
    granted(chain)
    if state != "none":
        bind(chain.authn, CITIZEN_2, TAG, expires_at_ms=T0 + 60_000, revoked=state == "revoked", event_id="ev-2")
    at_t0 = _screen(chain, CITIZEN_2, "revoke", {"consent_id": "c-1"}, now_ms=T0)
    assert (at_t0 is None) == (state == "expired")  # in force until its expiry
    chain.time_ms = T0 + 60_000
    refusal = _screen(chain, CITIZEN_2, "revoke", {"consent_id": "c-1"}, now_ms=chain.time_ms)
    rule = f"permission denied: authz.revoke needs role 'citizen'; key {hexkey(CITIZEN_2)[:16]}"
    assert refusal.outcome.name == "PERMISSION_DENIED" and refusal.error.startswith(rule) and why in refusal.error
    receipt = chain.send(CITIZEN_2, "revoke", {"consent_id": "c-1"})  # a faulty primary proposed it anyway
    assert receipt.status == FAILED and receipt.message == refusal.error
    assert chain.query("consent", consent_id="c-1")["revoked"] is None


def test_a_bound_citizen_passes_admission_and_a_catalog_key_is_no_citizen(chain):
    granted(chain)
    assert _screen(chain, CITIZEN, "revoke", {"consent_id": "c-1"}) is None
    refusal = _screen(chain, WINDOW, "revoke", {"consent_id": "c-1"})
    assert "needs role 'citizen'" in refusal.error and "has no authn binding" in refusal.error
    # grant takes a citizen or a window: a key that is neither is told both
    stranger = key("stranger")
    refusal = _screen(chain, stranger, "grant", consent())
    assert refusal.error == (f"permission denied: authz.grant needs role 'citizen' or 'window'; key "
                             f"{hexkey(stranger)[:16]} has no authn binding (authenticate first: an authn event "
                             f"binds the app key to a subject); key {hexkey(stranger)[:16]} is not registered in "
                             f"the catalog")
    assert _screen(chain, WINDOW, "grant", consent(authn_event="ev-1")) is None
    # log_access is a provider's: a citizen is refused before the contract runs
    assert "needs role 'provider'" in _screen(chain, CITIZEN, "log_access", access()).error
