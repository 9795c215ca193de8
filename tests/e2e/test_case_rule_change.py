"""A rule changed mid-case, on 4 real node processes (docs/design.md,
"Service items and cases"): a case keeps the rule hash it was opened
with. The citizen opens the case with their own bound app key (`govchain
case open --key`), governance changes the item's rule before the power
company's node decides, and the decision follows the old rule; a new case
follows the new one; `govchain case rerun` reproduces both. The network is
tests/e2e/test_cases.py's (its `cluster` fixture: a fresh one for this
module)."""
from __future__ import annotations

import json
import time

import pytest

from node.adapters import sample
from node.core import rules
from node.core.keys import generate_key_file, load_signing_key
from node.core.tx import sign_transaction
from node.pb import client_pb2

from .conftest import run_cli, submit_batch
from .test_cases import COMPETENT, INPUTS, ITEM, _ca, _rerun, _shown, cluster, home  # noqa: F401
from .test_verify import IDENTITY, commit, consent, subject

pytestmark = pytest.mark.e2e
RESIDENT = sample.SAMPLE_ID_NUMBERS[2]  # divorced, Lixia: rule A refuses, rule B approves
RULE_B = 'district == "Lixia"'


def _document(rule: str) -> dict:
    return {"rule": rule, "inputs": INPUTS, "auto_approve": True}


def _bind_citizen(net, path, event_id: str) -> tuple[object, bytes, bytes]:
    """The identity service records an authn event binding the citizen's new app key to their tag."""
    key = generate_key_file(path)
    tag, n = subject(RESIDENT)
    commit(net, IDENTITY, load_signing_key(home(net, IDENTITY) / "app.key"), "authn", "authn", "record",
           {"event_id": event_id, "tag": tag.hex(), "method": "face-app", "assurance": 3,
            "app_key": bytes(key.verify_key).hex(), "expires_at_ms": int(time.time() * 1000) + 20 * 60_000,
            "window": "power-company/app"})
    return key, tag, n


def _drive(net, key_path, case_id: str, tag: bytes, n: bytes) -> dict:
    """The citizen grants a single-use consent per input (authz.grant with their bound key), then `govchain case
    open --key citizen.key`: the competent node drives the case to its decision."""
    commit(net, COMPETENT, load_signing_key(key_path), "authz", "authz", "grant",
           *(consent(f"consent-{case_id}-{suffix}", fields=fields, case_id=case_id, purpose="family-tariff",
                     id_number=RESIDENT) for suffix, fields in (("m", None), ("d", ["district"]))))
    out = run_cli("case", "open", "--node", net.specs[COMPETENT].client, "--key", str(key_path),
                  "--item", ITEM["item_id"], "--case", case_id, "--tag", tag.hex(), "--oprf-output", n.hex(),
                  "--id-number", RESIDENT, "--consent", f"married=consent-{case_id}-m",
                  "--consent", f"district=consent-{case_id}-d", "--purpose", "family-tariff", "--json",
                  "--timeout", "120", *_ca(net), timeout=150)
    return json.loads(out.stdout)["case"]


def test_a_case_keeps_the_rule_it_was_opened_with_and_both_rules_rerun_the_same(cluster, tmp_path):
    net, key_path = cluster, tmp_path / "citizen.key"
    hash_a, hash_b = rules.rule_hash(_document(ITEM["rule"])), rules.rule_hash(_document(RULE_B))
    key, tag, n = _bind_citizen(net, key_path, "ev-citizen-app")
    # the citizen's app opens the case on chain under rule A; the driver has not decided it yet
    opened = commit(net, COMPETENT, key, "item", "item", "open_case",
                    {"case_id": "case-mid", "item_id": ITEM["item_id"], "tag": tag.hex()})[0]
    assert opened["rule_hash"] == hash_a and opened["decision"] is None
    assert opened["opened"]["by"] == "citizen" and opened["opened"]["key"] == bytes(key.verify_key).hex()
    assert opened["opened"]["authn_event"] == "ev-citizen-app"
    # governance changes the rule before the decision
    officer = load_signing_key(home(net, COMPETENT) / "officer.key")
    changed = commit(net, COMPETENT, officer, "item", "item", "update_item",
                     {"item_id": ITEM["item_id"], "rule": RULE_B})[0]
    assert changed["rule_hash"] == hash_b != hash_a
    # the citizen hands the case to the competent node (its open_case, signed again, finds the case open)
    decided = _drive(net, key_path, "case-mid", tag, n)
    assert decided["rule_hash"] == decided["decision"]["rule_hash"] == hash_a
    assert decided["status"] == decided["decision"]["outcome"] == rules.REFUSED  # rule A: not married
    assert decided["decision"]["reason"] == "the rule does not hold"
    assert len(decided["decision"]["evidence"]) == 2
    # a new case of the same citizen follows rule B
    later = _drive(net, key_path, "case-after", tag, n)
    assert later["rule_hash"] == later["decision"]["rule_hash"] == hash_b
    assert later["status"] == rules.APPROVED and later["opened"]["by"] == "citizen"
    # both decisions re-run from chain data alone (another node), each under its own rule
    for case, outcome, rule_hash in ((decided, "refused", hash_a), (later, "approved", hash_b)):
        assert _shown(net, case["case_id"]) == case
        again = _rerun(net, case["case_id"], key=key_path)
        assert again["same"] and again["outcome"] == outcome and again["rule_hash"] == rule_hash
        assert again["evidence"] == case["decision"]["evidence"]


def test_a_citizen_key_cannot_open_a_case_for_another_subject(cluster, tmp_path):
    net = cluster
    key, _, _ = _bind_citizen(net, tmp_path / "citizen.key", "ev-citizen-other")
    other_tag, _ = subject(sample.SAMPLE_ID_NUMBERS[0])
    tx = sign_transaction(key, chain_id="item", nonce=time.time_ns(), contract="item", method="open_case",
                          payload=json.dumps({"case_id": "case-other", "item_id": ITEM["item_id"],
                                              "tag": other_tag.hex()}).encode())
    result = submit_batch(net.client(COMPETENT), [tx]).results[0]
    assert result.committed and result.receipt.status == client_pb2.Receipt.FAILED
    assert "only the citizen may open a case without citing 'authn_event': the sender's authn binding is for " \
           f"another subject, not tag {other_tag.hex()[:16]}" in result.receipt.message
