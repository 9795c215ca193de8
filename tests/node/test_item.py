"""The item contract (node/contracts/item.py; docs/design.md, "Service items
and cases"), against an in-memory chain whose cross-chain reads (catalog,
authn) come from dicts."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from nacl.signing import SigningKey

from node.contracts.item import ItemContract
from node.core import attest, rules
from node.identity.signers import permission_refusal
from node.ledger.execution import OK, ContractError, TxContext
from node.ledger.query import QueryContext

T0 = 1_800_000_000_000
TAG = "ab" * 32


def _signing(seed: int) -> SigningKey:
    return SigningKey(bytes([seed]) * 32)


OFFICER, SERVICE, WINDOW, OTHER_OFFICER, OTHER_SERVICE, PROVIDER = (
    bytes(_signing(n).verify_key) for n in (1, 2, 3, 4, 5, 6))
PROVIDER_KEY = _signing(6)
CITIZEN, OTHER_CITIZEN, EXPIRED_CITIZEN, REVOKED_CITIZEN = (bytes(_signing(n).verify_key) for n in (7, 8, 9, 10))
BINDINGS = {CITIZEN: (TAG, T0 + 600_000, None), OTHER_CITIZEN: ("cd" * 32, T0 + 600_000, None),
            EXPIRED_CITIZEN: (TAG, T0 + 1, None), REVOKED_CITIZEN: (TAG, T0 + 600_000, {"height": 2})}
KEYS = {OFFICER: ("power-company", ["governance"]), SERVICE: ("power-company", ["provider", "requester"]),
        WINDOW: ("power-company", ["window"]), OTHER_OFFICER: ("tax-bureau", ["governance"]),
        OTHER_SERVICE: ("tax-bureau", ["provider"]), PROVIDER: ("housing-registry", ["provider"])}


def _foreign() -> dict:
    state = {("catalog", b"key/" + k.hex().encode()): json.dumps(
        {"department": d, "roles": r, "status": "active", "since": 1, "revoked_at": None}).encode()
        for k, (d, r) in KEYS.items()}
    state[("catalog", b"item/property-ownership")] = json.dumps(
        {"item_id": "property-ownership", "department": "housing-registry", "fields": ["owner", "district"],
         "answer_modes": ["fields", "predicate"], "status": "active"}).encode()
    state[("catalog", b"item/arrears")] = json.dumps(
        {"item_id": "arrears", "department": "housing-registry", "fields": ["amount"],
         "answer_modes": ["predicate"], "status": "active"}).encode()
    for n, (k, (tag, expires, revoked)) in enumerate(BINDINGS.items()):  # what authn.record leaves
        state[("authn", b"binding/" + k.hex().encode())] = json.dumps(
            {"tag": tag, "assurance": 3, "expires_at_ms": expires, "event_id": f"ev-app-{n}",
             "revoked": revoked}).encode()
    state[("authn", b"event/ev-1")] = json.dumps({"tag": TAG, "expires_at_ms": T0 + 600_000,
                                                  "revoked": None}).encode()
    return state


class Ctx(TxContext):
    def read(self, chain, contract, key):
        return self.foreign.get((chain, key))

    def read_height(self, chain):
        return 9


class Chain:
    def __init__(self) -> None:
        self.contract, self.state, self.height, self.foreign = ItemContract(), {}, 0, _foreign()

    def run(self, sender: bytes, method: str, args: dict) -> dict:
        self.height += 1
        ctx = Ctx(chain_id="item", height=self.height, index=0, timestamp_ms=T0 + self.height, tx_id=bytes(32),
                  sender=sender, contract="item", block_writes={}, reader=self)
        ctx.foreign = self.foreign
        status, _, output = self.contract.execute(ctx, SimpleNamespace(method=method,
                                                                       payload=json.dumps(args).encode()))
        assert status == OK
        self.state.update(ctx.writes)
        return json.loads(output)

    def state_get(self, contract, key):
        return self.state.get(key)

    def query(self, method: str, args: dict):
        snapshot = SimpleNamespace(height=self.height, get=lambda c, k: self.state.get(k), scan=self._scan)
        return json.loads(self.contract.query(QueryContext(chain_id="item", contract="item", state=snapshot),
                                              method, json.dumps(args).encode()))

    def _scan(self, contract, prefix, *, after, limit):
        keys = sorted(k for k in self.state if k.startswith(prefix) and (after is None or k > after))
        return [(k, self.state[k]) for k in keys[:limit]]


INPUTS = [{"name": "owner_is_subject", "provider": "housing-registry", "catalog_item": "property-ownership",
           "predicate": {"field": "owner", "op": "eq", "value": "subject"}},
          {"name": "account_arrears", "provider": "housing-registry", "catalog_item": "arrears",
           "predicate": {"field": "amount", "op": "gt", "value": 0}, "if_missing": False}]
ITEM = {"item_id": "power-transfer", "title": "Electricity account transfer", "inputs": INPUTS,
        "rule": "owner_is_subject && !account_arrears", "auto_approve": True, "notice_template": "transfer-result"}


@pytest.fixture
def chain() -> Chain:
    c = Chain()
    c.run(OFFICER, "register_item", ITEM)
    return c


def _refused(chain, sender, method, args, match):
    with pytest.raises(ContractError, match=match):
        chain.run(sender, method, args)


def _open(chain, case_id="case-1"):
    return chain.run(WINDOW, "open_case", {"case_id": case_id, "item_id": "power-transfer", "tag": TAG,
                                           "authn_event": "ev-1"})


def _evidence(name: str, n: int, key: SigningKey = PROVIDER_KEY) -> dict:
    digest, commitment = bytes([n]) * 32, bytes([n + 100]) * 32
    return {"input": name, "request_digest": digest.hex(), "answer_commitment": commitment.hex(),
            "attestation": key.sign(attest.attestation_digest(digest, commitment, "PERMIT")).signature.hex(),
            "provider_key": bytes(key.verify_key).hex(), "log_tx_id": (bytes([n + 50]) * 32).hex(), "log_height": 3}


def test_roles_and_queries_are_declared():
    assert dict(ItemContract.methods) == {
        "register_item": "governance", "update_item": "governance", "open_case": ("citizen", "window"),
        "record_evidence": "provider", "decide": "provider", "review": "governance", "record_notice": "provider"}
    assert ItemContract.queries == {"item", "items", "rule", "case", "cases"}


def test_an_item_is_registered_with_its_rule_hash_and_the_rule_is_kept_by_hash(chain):
    item = chain.query("item", {"item_id": "power-transfer"})
    document = {"rule": ITEM["rule"], "inputs": INPUTS, "auto_approve": True}
    assert item["department"] == "power-company" and item["rule_hash"] == rules.rule_hash(document)
    assert chain.query("rule", {"rule_hash": item["rule_hash"]}) == document
    assert chain.query("items", {"department": "power-company"})["items"] == [item]
    assert chain.query("items", {"department": "tax-bureau"})["items"] == []


@pytest.mark.parametrize("change, match", [
    ({"rule": "owner_is_subject &&"}, "does not parse as CEL"),
    ({"rule": "owner_is_subject && !spouse_consents"}, "'spouse_consents', which is not a declared input"),
    ({"rule": "[true].all(x, x)"}, "no comprehensions"),
    ({"inputs": [{**INPUTS[0], "catalog_item": "unknown-item"}]}, "'unknown-item' is not registered"),
    ({"inputs": [{**INPUTS[0], "provider": "tax-bureau"}]}, "housing-registry's, not tax-bureau's"),
    ({"inputs": [{"name": "owner", "provider": "housing-registry", "catalog_item": "arrears", "field": "amount"}],
      "rule": "owner == 1"}, "does not answer in mode fields"),
    ({"inputs": [{"name": "owner", "provider": "housing-registry", "catalog_item": "property-ownership",
                  "field": "id_number"}], "rule": "owner == 1"}, "'id_number' is not a field"),
    ({"inputs": [INPUTS[0], INPUTS[0]]}, "distinct input name"),
    ({"inputs": [{**INPUTS[0], "name_of_citizen": "x"}]}, "unknown field 'name_of_citizen'"),
    ({"auto_approve": "yes"}, "auto_approve"),
])
def test_registration_refusals(change, match):
    _refused(Chain(), OFFICER, "register_item", {**ITEM, **change}, match)


def test_an_item_is_registered_once_and_changed_only_by_its_department(chain):
    _refused(chain, OTHER_OFFICER, "register_item", ITEM, "already registered by power-company")
    _refused(chain, OTHER_OFFICER, "update_item", {"item_id": "power-transfer", "auto_approve": False},
             "only that department changes it")


def test_a_rule_changed_mid_case_leaves_the_case_on_the_hash_it_started_with(chain):
    first = _open(chain)["rule_hash"]
    changed = chain.run(OFFICER, "update_item", {"item_id": "power-transfer", "rule": "owner_is_subject"})
    assert changed["rule_hash"] != first
    later = _open(chain, "case-2")
    assert later["rule_hash"] == changed["rule_hash"]
    assert chain.query("case", {"case_id": "case-1"})["rule_hash"] == first
    chain.run(SERVICE, "record_evidence", {"case_id": "case-1", "evidence": [
        _evidence("owner_is_subject", 1), _evidence("account_arrears", 2)]})  # the old rule's two inputs
    decided = chain.run(SERVICE, "decide", {"case_id": "case-1", "outcome": "approved", "reason": "the rule holds"})
    assert decided["decision"]["rule_hash"] == first and decided["status"] == "approved"
    assert chain.query("rule", {"rule_hash": first})["rule"] == ITEM["rule"]  # still there for a re-run


def test_a_case_is_opened_by_the_competent_departments_window_for_the_authenticated_subject(chain):
    _refused(chain, WINDOW, "open_case", {"case_id": "c", "item_id": "power-transfer", "tag": "cd" * 32,
                                          "authn_event": "ev-1"}, "for another subject")
    _refused(chain, WINDOW, "open_case", {"case_id": "c", "item_id": "power-transfer", "tag": TAG,
                                          "authn_event": "ev-9"}, "not recorded")
    chain.foreign[("authn", b"event/ev-2")] = json.dumps({"tag": TAG, "expires_at_ms": T0, "revoked": None}).encode()
    _refused(chain, WINDOW, "open_case", {"case_id": "c", "item_id": "power-transfer", "tag": TAG,
                                          "authn_event": "ev-2"}, "expired")
    case = _open(chain)
    assert case["status"] == "open" and case["opened"]["authn_event"] == "ev-1" and case["tag"] == TAG
    _refused(chain, WINDOW, "open_case", {"case_id": "case-1", "item_id": "power-transfer", "tag": TAG,
                                          "authn_event": "ev-1"}, "already open")
    assert [c["case_id"] for c in chain.query("cases", {"tag": TAG})["items"]] == ["case-1"]


def test_a_citizen_opens_their_own_case_with_their_bound_app_key(chain):
    case = chain.run(CITIZEN, "open_case", {"case_id": "case-1", "item_id": "power-transfer", "tag": TAG})
    assert case["status"] == "open" and case["department"] == "power-company" and case["tag"] == TAG
    assert case["rule_hash"] == chain.query("item", {"item_id": "power-transfer"})["rule_hash"]
    assert case["opened"] == {"by": "citizen", "key": CITIZEN.hex(), "authn_event": "ev-app-0", "height": 2,
                              "at_ms": T0 + 2, "authn_height": 9}
    assert [c["case_id"] for c in chain.query("cases", {"tag": TAG})["items"]] == ["case-1"]
    # the competent department drives it as it drives a window's case
    chain.run(SERVICE, "record_evidence", {"case_id": "case-1", "evidence": [
        _evidence("owner_is_subject", 1), _evidence("account_arrears", 2)]})
    assert chain.run(SERVICE, "decide", {"case_id": "case-1", "outcome": "approved",
                                         "reason": "the rule holds"})["status"] == "approved"


@pytest.mark.parametrize("sender, match", [
    (OTHER_CITIZEN, "only the citizen may open a case without citing 'authn_event': the sender's authn binding "
                    "is for another subject, not tag abababababababab"),
    (EXPIRED_CITIZEN, f"only the citizen may open a case without citing 'authn_event': key "
                      f"{EXPIRED_CITIZEN.hex()[:16]}'s authn binding \\(event ev-app-2\\) expired at {T0 + 1} ms"),
    (REVOKED_CITIZEN, f"only the citizen may open a case without citing 'authn_event': key "
                      f"{REVOKED_CITIZEN.hex()[:16]}'s authn binding \\(event ev-app-3\\) was revoked"),
    (SERVICE, f"only the citizen may open a case without citing 'authn_event': key {SERVICE.hex()[:16]} has no "
              "authn binding"),  # a catalog key posing as the citizen
    (WINDOW, f"key {WINDOW.hex()[:16]} has no authn binding"),  # a window must cite the authn event
])
def test_a_case_is_opened_by_the_citizen_only_with_a_binding_in_force_for_its_tag(chain, sender, match):
    _refused(chain, sender, "open_case", {"case_id": "c", "item_id": "power-transfer", "tag": TAG}, match)
    assert chain.query("case", {"case_id": "c"}) is None


def test_a_citizen_cannot_pose_as_a_window_and_a_catalog_key_is_no_citizen_at_the_platform(chain):
    _refused(chain, CITIZEN, "open_case", {"case_id": "c", "item_id": "power-transfer", "tag": TAG,
                                           "authn_event": "ev-1"},
             "a case is opened by a window key \\(role 'window' on the catalog chain\\) when it cites 'authn_event'")
    _refused(chain, OFFICER, "open_case", {"case_id": "c", "item_id": "power-transfer", "tag": TAG,
                                           "authn_event": "ev-1"}, "a case is opened by a window key")
    # the platform's permission check (admission and execution) runs before the contract
    catalog = lambda contract, key: chain.foreign.get(("catalog", key))  # noqa: E731
    authn = lambda contract, key: chain.foreign.get(("authn", key))  # noqa: E731
    role = ItemContract.methods["open_case"]
    assert permission_refusal(catalog, CITIZEN, "item", "open_case", role, authn=authn, at_ms=T0) is None
    assert permission_refusal(catalog, WINDOW, "item", "open_case", role, authn=authn, at_ms=T0) is None
    assert permission_refusal(catalog, SERVICE, "item", "open_case", role, authn=authn, at_ms=T0) == (
        f"permission denied: item.open_case needs role 'citizen' or 'window'; key {SERVICE.hex()[:16]} has no "
        f"authn binding (authenticate first: an authn event binds the app key to a subject); key "
        f"{SERVICE.hex()[:16]} of power-company has roles [provider, requester]")
    assert "expired at" in permission_refusal(catalog, EXPIRED_CITIZEN, "item", "open_case", role, authn=authn,
                                              at_ms=T0 + 5)


def test_evidence_and_decisions_are_recorded_only_by_the_competent_department(chain):
    _open(chain)
    evidence = {"case_id": "case-1", "evidence": [_evidence("owner_is_subject", 1)]}
    _refused(chain, OTHER_SERVICE, "record_evidence", evidence, "only that department records")
    _refused(chain, OTHER_SERVICE, "decide", {"case_id": "case-1", "outcome": "manual", "reason": "x"},
             "only that department records")
    forged = _evidence("owner_is_subject", 1, key=_signing(2))  # signed by a key without role provider there
    _refused(chain, SERVICE, "record_evidence", {"case_id": "case-1", "evidence": [forged]},
             "not an active catalog key of housing-registry")
    bad = {**_evidence("owner_is_subject", 1), "answer_commitment": "00" * 32}
    _refused(chain, SERVICE, "record_evidence", {"case_id": "case-1", "evidence": [bad]}, "does not verify")
    chain.run(SERVICE, "record_evidence", evidence)
    _refused(chain, SERVICE, "record_evidence", evidence, "already has its evidence")  # a replay
    _refused(chain, SERVICE, "decide", {"case_id": "case-1", "outcome": "approved", "reason": "r"},
             "needs evidence for every input")
    decided = chain.run(SERVICE, "decide", {"case_id": "case-1", "outcome": "manual",
                                            "reason": "no verified answer for input account_arrears"})
    assert decided["status"] == "review" and decided["decision"]["evidence"] == ["01" * 32]
    _refused(chain, SERVICE, "decide", {"case_id": "case-1", "outcome": "refused", "reason": "r"}, "was decided")
    _refused(chain, OTHER_OFFICER, "review", {"case_id": "case-1", "outcome": "approved", "reason": "checked"},
             "only that department")
    reviewed = chain.run(OFFICER, "review", {"case_id": "case-1", "outcome": "approved", "reason": "checked"})
    assert reviewed["status"] == "approved" and reviewed["decision"]["outcome"] == "manual"


def test_a_manual_item_is_never_approved_automatically():
    c = Chain()
    c.run(OFFICER, "register_item", {**ITEM, "auto_approve": False})
    _open(c)
    c.run(SERVICE, "record_evidence", {"case_id": "case-1", "evidence": [
        _evidence("owner_is_subject", 1), _evidence("account_arrears", 2)]})
    _refused(c, SERVICE, "decide", {"case_id": "case-1", "outcome": "approved", "reason": "r"},
             "without auto-approve")
    assert c.run(SERVICE, "decide", {"case_id": "case-1", "outcome": "manual", "reason": "officer"})["status"] == \
        "review"


def test_the_notice_is_recorded_once_after_the_decision(chain):
    _open(chain)
    notice = {"case_id": "case-1", "notice_digest": "ee" * 32}
    _refused(chain, SERVICE, "record_notice", notice, "no decision yet")
    chain.run(SERVICE, "decide", {"case_id": "case-1", "outcome": "manual", "reason": "r"})
    assert chain.run(SERVICE, "record_notice", notice)["notice"]["notice_digest"] == "ee" * 32
    _refused(chain, SERVICE, "record_notice", notice, "has its notice")


def test_replaying_the_same_transactions_gives_the_same_state():
    def play() -> dict:
        c = Chain()
        c.run(OFFICER, "register_item", ITEM)
        _open(c)
        c.run(SERVICE, "record_evidence", {"case_id": "case-1", "evidence": [
            _evidence("owner_is_subject", 1), _evidence("account_arrears", 2)]})
        c.run(SERVICE, "decide", {"case_id": "case-1", "outcome": "refused", "reason": "the rule does not hold"})
        return c.state
    assert play() == play()
