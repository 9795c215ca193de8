"""The citizen audit page in headless Chromium against a real 4-department
network (docs/design.md, "Explorer and audit page"): a real access log entry
(an authn binding recorded by public security's identity key, a catalog item,
the citizen's consent, a log_access signed by the provider with a real
attestation) is listed and verified green; the same entry altered in the
node's answer, or its proof altered, shows red with the Python verifier's
words; a key bound to another tag gets the service's precise refusal; and the
key file never leaves the browser."""
from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from node.core.genesis import load_genesis
from node.core.keys import generate_key_file
from node.ledger.proofs import verify_inclusion_proof
from node.tools.audit_cli import entry_problem
from tests.node.authz_chain import access, consent

from .conftest import commit, department_key, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

TAG = hashlib.sha256(b"audit-page citizen").hexdigest()
OTHER_TAG = hashlib.sha256(b"audit-page another citizen").hexdigest()
ITEM = "property-owner"


def _bind(net, app_key: SigningKey, tag: str, event_id: str) -> None:
    """What the identity service records at the window: the citizen's app key bound to their tag."""
    commit(net, department_key(net, "public-security"), "authn", "record", {
        "event_id": event_id, "tag": tag, "method": "face-window", "assurance": 4,
        "app_key": bytes(app_key.verify_key).hex(), "expires_at_ms": int(time.time() * 1000) + 20 * 60_000,
        "window": "power-company/window-1"})


@pytest.fixture(scope="module")
def citizen(net, tmp_path_factory):
    """A citizen with one access log entry (housing registry answered the power company, with consent),
    and another citizen with one (answered under a standing agreement); their key files."""
    home = tmp_path_factory.mktemp("citizen")
    key, other = generate_key_file(home / "citizen.key"), generate_key_file(home / "other.key")
    _bind(net, key, TAG, "ev-audit-page-1")
    _bind(net, other, OTHER_TAG, "ev-audit-page-2")
    housing, power = department_key(net, "housing-registry"), department_key(net, "power-company")
    commit(net, housing, "catalog", "register_item", {
        "item_id": ITEM, "fields": ["address", "area", "owner_since"], "answer_modes": ["fields", "predicate"],
        "consent_required": True, "requester_roles": ["requester"]})
    now = int(time.time() * 1000)
    commit(net, key, "authz", "grant", consent(consent_id="c-page", tag=TAG, not_before_ms=now - 60_000,
                                                expires_at_ms=now + 3_600_000, max_uses=2))
    commit(net, housing, "authz", "log_access", access(hashlib.sha256(b"audit-page request").digest(),
                                                        requester_key=power, provider_key=housing, tag=TAG,
                                                        basis={"consent": "c-page"}))
    # The other citizen: an answer under a standing agreement between the two departments (no consent).
    commit(net, housing, "catalog", "register_item", {
        "item_id": "property-address", "fields": ["address"], "answer_modes": ["fields"], "consent_required": False,
        "requester_roles": ["requester"]})
    agreement = json.loads(commit(net, department_key(net, "housing-registry", "officer.key"), "catalog",
                                  "propose_agreement", {"department": "power-company",
                                                        "items": ["property-address"]}))["agreement"]
    commit(net, department_key(net, "power-company", "officer.key"), "catalog", "accept_agreement", {"id": agreement})
    commit(net, housing, "authz", "log_access", access(hashlib.sha256(b"audit-page agreement").digest(),
                                                        requester_key=power, provider_key=housing, tag=OTHER_TAG,
                                                        item="property-address", basis={"agreement": agreement}))
    return {"agreement": agreement, "key": home / "citizen.key", "other": home / "other.key",
            "public": bytes(key.verify_key).hex(), "seed": bytes(key).hex(), "other_public": bytes(other.verify_key).hex()}


def sign_in(net, page, key_file: Path, tag: str = TAG, node: int = 1) -> None:
    """Opens the audit page from the menu and signs in with the keyboard (the file chooser is set directly)."""
    page.goto(net.specs[node].explorer)
    page.get_by_role("link", name="我的数据使用记录 · Who used my data").click()
    page.wait_for_selector("#audit-sign-in")
    page.set_input_files("#audit-key", str(key_file))
    page.focus("#audit-tag")
    page.keyboard.type(tag)
    page.keyboard.press("Enter")


def wait_listed(page) -> None:
    """Until the page shows its verdicts, or fails with the refusal it shows instead."""
    page.wait_for_selector("#audit-summary[data-verdict], #audit-error")
    assert page.locator("#audit-error").count() == 0, page.locator("#audit-error").inner_text()


def rows(page) -> list[dict]:
    headers = page.locator("#audit-entries thead th").all_inner_texts()
    out = []
    for row in page.locator("#audit-entries tbody tr").all():
        out.append({"verdict": row.get_attribute("data-verdict"),
                    **dict(zip(headers, row.locator("td").all_inner_texts()))})
    return out


def test_a_real_entry_is_listed_and_verified_green_and_the_key_never_leaves(net, citizen, page):
    posted: list[str] = []
    page.on("request", lambda r: posted.append((r.url, r.post_data or "")))
    sign_in(net, page, citizen["key"])
    wait_listed(page)
    [entry] = rows(page)
    assert entry["verdict"] == "ok", entry
    assert entry["查询部门 · Requester"] == "power-company" and entry["提供部门 · Provider"] == "housing-registry"
    assert (entry["数据项 · Item"], entry["字段 · Fields"], entry["用途 · Purpose"], entry["结果 · Decision"]) == \
        (ITEM, "address", "power-transfer", "允许 · PERMIT")
    assert entry["依据 · Basis"] == "您的同意 · your consent c-page"
    assert entry["本浏览器验证 · Checked in this browser"].startswith("✓ 已验证 · Verified — 区块 ")
    assert page.locator("#audit-summary").inner_text().startswith("✓ 1 条记录全部在本浏览器中验证通过")
    screenshot(page, "audit-verified.png")
    # What the browser sent: the public key and a signature, never the seed; one POST, to this node.
    bodies = [body for url, body in posted if url.endswith("/api/audit")]
    assert len(bodies) == 1 and json.loads(bodies[0])["key"] == citizen["public"]
    assert not any(citizen["seed"] in body or citizen["seed"] in url for url, body in posted)


def test_a_tampered_entry_or_proof_shows_red_with_the_reason(net, citizen, page):
    genesis = load_genesis(net.genesis("authz"))
    served: dict = {}

    def tamper(route):
        answer = route.fetch()
        page_ = answer.json()
        assert len(page_["entries"]) == 1, page_
        served["real"] = copy.deepcopy(page_["entries"][0])
        served["edit"](page_["entries"][0])
        served["shown"] = page_["entries"][0]
        route.fulfill(response=answer, json=page_)

    page.route("**/api/audit", tamper)

    def flip_signature(item):
        commit = item["proof"]["certificate"]["commits"][0]
        commit["signature"] = format(int(commit["signature"][0], 16) ^ 1, "x") + commit["signature"][1:]

    for name, edit in (("entry", lambda item: item["entry"].__setitem__("requester", "civil-affairs")),
                       ("proof", flip_signature)):
        served["edit"] = edit
        page.goto("about:blank")
        sign_in(net, page, citizen["key"], node=2)
        wait_listed(page)
        [entry] = rows(page)
        real, shown = served["real"], served["shown"]
        assert entry_problem(real["entry"], real["proof"], genesis) == ""  # what the node sent holds
        expected = entry_problem(shown["entry"], shown["proof"], genesis)
        assert expected, name
        assert entry["verdict"] == "failed", name
        assert entry["本浏览器验证 · Checked in this browser"] == f"✗ 验证失败 · FAILED: {expected}", name
        assert page.locator("#audit-summary").get_attribute("data-verdict") == "failed"
        assert "1 条记录中 1 条验证失败" in page.locator("#audit-summary").inner_text()
        if name == "entry":
            assert expected == "the entry's requester differ from the proven transaction's (altered entry)"
            screenshot(page, "audit-tampered.png")
        else:
            assert not verify_inclusion_proof(shown["proof"], genesis).ok


def test_an_access_under_a_standing_agreement_says_so(net, citizen, page):
    sign_in(net, page, citizen["other"], tag=OTHER_TAG)
    wait_listed(page)
    [entry] = rows(page)
    assert entry["verdict"] == "ok", entry
    assert entry["依据 · Basis"] == f"部门间常设协议 · standing agreement between the departments {citizen['agreement']}"
    assert (entry["数据项 · Item"], entry["结果 · Decision"]) == ("property-address", "允许 · PERMIT")


def test_a_key_bound_to_another_tag_gets_the_precise_refusal(net, citizen, page):
    sign_in(net, page, citizen["other"], tag=TAG, node=3)
    page.wait_for_selector("#audit-error")
    assert page.locator("#audit-error").inner_text() == (
        "节点拒绝了请求 · The node refused: permission denied: only the citizen's bound app key or an auditor reads "
        f"tag {TAG[:16]}'s access log; key {citizen['other_public'][:16]} is bound to another subject, "
        f"not tag {TAG[:16]}")
    assert page.locator("#audit-entries").count() == 0
