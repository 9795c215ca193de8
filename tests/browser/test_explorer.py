"""The explorer in headless Chromium against a real 4-department network
(docs/design.md, "Explorer and audit page"): the blocks it lists are the
blocks `govchain block get` reads, a transaction page shows its receipt, the
keyboard alone reaches the block list, and the page's own WebCrypto check of
an inclusion proof passes for the node's proof and fails, with the Python
verifier's words, for tampered ones."""
from __future__ import annotations

import copy
import json
import re
import urllib.error
import urllib.request

import pytest

from node.core import codec
from node.core.genesis import load_genesis
from node.ledger.proofs import verify_inclusion_proof
from node.pb import client_pb2
from tests.e2e.conftest import make_tx, run_cli, submit_batch

from .conftest import commit, department_key, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def explorer(net, i: int = 0) -> str:
    return net.specs[i].explorer


def cli_env(net) -> dict:
    return {"GOVCHAIN_CA": str(net.root / "tls" / "ca.crt")}


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def committed(net):
    """Three blocks' worth of kv puts on demo; the receipts."""
    import nacl.signing
    key = nacl.signing.SigningKey.generate()
    receipts = []
    for batch in range(3):
        response = submit_batch(net.client(0), [make_tx(key, "demo", f"explorer-{batch}-{i}", f"v{i}")
                                                for i in range(3)])
        assert all(r.code == 0 and r.committed for r in response.results), response
        receipts += [r.receipt for r in response.results]
    net.wait_same_head("demo", range(4), at_least=max(r.height for r in receipts))
    return receipts


def test_the_explorer_lists_the_blocks_the_cli_sees_and_the_keyboard_reaches_them(net, committed, page):
    page.goto(explorer(net, 1))
    page.wait_for_selector("#chains")
    assert page.locator("h1").inner_text() == f"节点 {net.specs[1].department} · Node {net.specs[1].department}"
    # Keyboard only: Tab from the top of the page to the chain's link, Enter, Tab into the block list.
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "demo":
            break
    else:
        pytest.fail("Tab never reached the demo chain's link")
    page.keyboard.press("Enter")
    page.wait_for_selector("#blocks")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('#blocks') !== null"):
            break
    else:
        pytest.fail("Tab never reached the block list")
    focused = page.evaluate("document.activeElement.textContent")
    screenshot(page, "explorer-blocks.png")

    rows = page.locator("#blocks tbody tr")
    listed = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
    top = int(listed[0][0])
    assert focused == str(top)  # the first block link in the list: the newest block
    assert [int(r[0]) for r in listed] == list(range(top, max(0, top - 20), -1))
    assert top >= max(r.height for r in committed)
    for row in listed[:3]:
        cli = json.loads(run_cli("block", "get", "--node", net.specs[1].client, "--chain", "demo",
                                 "--height", row[0], "--json", env=cli_env(net)).stdout)
        assert row[1] == cli["hash"][:16] + "…"
        assert int(row[3]) == cli["txs"]
        signers = sorted(net.specs[i].department for i in cli["certificate"]["signers"])
        assert sorted(row[5].split(", ")) == signers

    # A block page: its header hash and the commit certificate's signers, as the CLI reads them from the
    # same node (each node keeps the certificate it assembled: 2f+1 commits, not always the same ones).
    height = max(r.height for r in committed)
    page.goto(explorer(net, 1) + f"#/chain/demo/block/{height}")
    page.wait_for_selector("#commits")
    cli = json.loads(run_cli("block", "get", "--node", net.specs[1].client, "--chain", "demo", "--height",
                             str(height), "--json", env=cli_env(net)).stdout)
    assert cli["hash"] in page.locator("dl").first.inner_text()
    assert [int(t) for t in page.locator("#commits tbody tr td:first-child").all_inner_texts()] == \
        cli["certificate"]["signers"]
    assert page.locator("#txs tbody tr").count() == cli["txs"]


def test_a_transaction_page_shows_its_receipt_and_verifies_its_proof(net, committed, page):
    receipt = committed[4]
    tx_id = receipt.tx_id.hex()
    page.goto(explorer(net, 3) + f"#/chain/demo/tx/{tx_id}")
    page.wait_for_selector("#verdict[data-verdict]")
    shown = dict(zip(page.locator("#receipt dt").all_inner_texts(), page.locator("#receipt dd").all_inner_texts()))
    assert shown["结果 · Result"] == "成功 · OK"
    assert shown["区块 · Block"] == str(receipt.height) and shown["区块内序号 · Index"] == str(receipt.index)
    tx = codec.tx_from_proto(net.client(3).GetTransaction(
        client_pb2.GetTransactionRequest(chain_id="demo", tx_id=receipt.tx_id)).tx)
    details = dict(zip(page.locator("dl").first.locator("dt").all_inner_texts(),
                       page.locator("dl").first.locator("dd").all_inner_texts()))
    assert details["序号 · Nonce"] == str(tx.nonce)  # a uint64 above 2^53, shown without rounding
    assert details["合约.方法 · Contract.method"] == "kv.put" and details["发送方公钥 · Sender key"] == tx.sender.hex()
    assert page.locator("#find-chain").input_value() == "demo"  # the finder follows the chain on screen
    verdict = page.locator("#verdict")
    assert verdict.get_attribute("data-verdict") == "ok", verdict.inner_text()
    assert f"block {receipt.height} of chain demo" in verdict.inner_text()
    screenshot(page, "explorer-proof.png")


def _tampered(proof: dict) -> dict[str, dict]:
    """Ways a dishonest node could alter a real proof."""
    def altered(edit) -> dict:
        copy_ = copy.deepcopy(proof)
        edit(copy_)
        return copy_

    def flip(hex_: str, at: int = 0) -> str:
        return hex_[:at] + format(int(hex_[at], 16) ^ 1, "x") + hex_[at + 1:]

    return {
        "body": altered(lambda p: p["tx"].__setitem__("body", flip(p["tx"]["body"], len(p["tx"]["body"]) - 3))),
        "path": altered(lambda p: p.__setitem__("audit_path", [flip(p["audit_path"][0])] + p["audit_path"][1:])),
        "signature": altered(lambda p: p["certificate"]["commits"][0].__setitem__(
            "signature", flip(p["certificate"]["commits"][0]["signature"]))),
        "state_root": altered(lambda p: p["header"].__setitem__("state_root", flip(p["header"]["state_root"]))),
        "too_few": altered(lambda p: p["certificate"].__setitem__("commits", p["certificate"]["commits"][:2])),
    }


def test_tampered_proofs_fail_in_the_browser_as_they_fail_in_python(net, committed, page):
    tx_id = committed[1].tx_id.hex()
    base = explorer(net, 0)
    proof = get_json(base + f"api/chains/demo/txs/{tx_id}/proof")
    genesis = load_genesis(net.genesis("demo"))
    assert verify_inclusion_proof(proof, genesis).ok
    tampered = _tampered(proof)
    served = {"proof": proof}
    page.route(re.compile(r".*/proof$"), lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(served["proof"])))
    for name, bad in tampered.items():
        served["proof"] = bad
        page.goto("about:blank")  # a new document per proof
        page.goto(base + f"#/chain/demo/tx/{tx_id}")
        page.wait_for_selector("#verdict[data-verdict]")
        verdict = page.locator("#verdict")
        expected = verify_inclusion_proof(bad, genesis)
        assert not expected.ok
        assert verdict.get_attribute("data-verdict") == "failed", name
        assert "验证失败 · Verification FAILED. " + expected.problem in verdict.inner_text(), name
        if name == "signature":
            screenshot(page, "explorer-proof-tampered.png")


def test_the_catalog_page_shows_the_departments_the_catalog_chain_holds(net, page):
    page.goto(explorer(net, 2) + "#/catalog")
    page.wait_for_selector("#departments")
    cli = json.loads(run_cli("query", "--node", net.specs[2].client, "--chain", "catalog", "--contract", "catalog",
                             "--method", "departments", "--json", env=cli_env(net)).stdout)
    departments = cli.get("result", cli)["departments"]
    assert page.locator("#departments tbody tr td:first-child").all_inner_texts() == [d["id"] for d in departments]
    assert len(departments) == 4
    page.goto(explorer(net, 2) + "#/items")
    page.wait_for_selector("#find-case")
    assert "还没有服务事项。 · No service items yet." in page.locator("main").inner_text()
    page.fill("#case-id", "no-such-case")
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:has-text('Case no-such-case')")
    assert page.locator("main .note").inner_text() == "没有这个办件。 · No such case."


def test_the_catalog_page_lists_the_standing_agreements(net, page):
    """Who may ask whom without the citizen's consent is public: proposed, active and revoked agreements."""
    housing, power = "housing-registry", "power-company"
    commit(net, department_key(net, housing), "catalog", "register_item", {
        "item_id": "property-district", "fields": ["district"], "answer_modes": ["predicate"],
        "consent_required": False, "requester_roles": ["requester"]})
    base, officer = explorer(net, 3), department_key(net, housing, "officer.key")
    seen = {a["id"] for a in get_json(base + "api/catalog/agreements?limit=100")["result"]["agreements"]}

    def propose() -> dict:
        commit(net, officer, "catalog", "propose_agreement", {"department": power, "items": ["property-district"]})
        [fresh] = [a for a in get_json(base + "api/catalog/agreements?limit=100")["result"]["agreements"]
                   if a["id"] not in seen]
        seen.add(fresh["id"])
        return fresh

    active, proposed, revoked = propose(), propose(), propose()
    commit(net, department_key(net, power, "officer.key"), "catalog", "accept_agreement", {"id": active["id"]})
    commit(net, officer, "catalog", "revoke_agreement", {"id": revoked["id"]})
    page.goto(base + "#/catalog")
    page.wait_for_selector("#agreements")
    rows = [r.locator("td").all_inner_texts()[:5] for r in page.locator("#agreements tbody tr").all()]
    for agreement, status in ((active, "有效 · active"), (proposed, "待接受 · proposed"), (revoked, "已撤销 · revoked")):
        assert [agreement["id"], housing, power, "property-district", status] in rows
    assert _http(base + "api/catalog/agreements?after=not-an-id")[0] == 400


def _http(url: str, method: str = "GET") -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_api_is_read_only_bounded_and_names_bad_input(net, committed):
    base = explorer(net, 0)
    status, headers, body = _http(base)
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8" and b"govchain explorer" in body
    assert "script-src 'self'" in headers["Content-Security-Policy"] and headers["X-Content-Type-Options"] == "nosniff"
    assert _http(base + "api/chains", "POST")[0] == 405
    assert _http(base + "api/chains", "DELETE")[0] == 405
    status, _, body = _http(base + "api/chains/demo/blocks?limit=51")
    assert status == 400 and json.loads(body)["error"] == "limit must be an integer in 1..50, not '51'"
    status, _, body = _http(base + "api/chains/nope/blocks")
    assert status == 404 and json.loads(body)["error"] == "no chain 'nope' on this node (it runs authn, authz, catalog, demo, item)"
    status, _, body = _http(base + "api/chains/demo/txs/" + "ab" * 32)
    assert status == 404 and "is not committed on demo" in json.loads(body)["error"]
    assert _http(base + "api/chains/demo/txs/XYZ")[0] == 400
    assert _http(base + "static/../../node.toml")[0] == 404  # static files are a fixed set, never a path on disk
    assert _http(base + "static/%2e%2e%2fkey.json")[0] == 404
    page = get_json(base + "api/chains/demo/blocks?limit=2")
    assert [b["height"] for b in page["blocks"]] == [page["height"], page["height"] - 1]
    assert page["next_before"] == page["height"] - 1
    older = get_json(base + f"api/chains/demo/blocks?limit=2&before={page['next_before']}")
    assert older["blocks"][0]["height"] == page["height"] - 2
    chains = get_json(base + "api/chains")
    assert "address" not in json.dumps(chains)  # no peer addresses, only departments and public keys
    items = get_json(base + "api/items?limit=5")
    assert (items["available"], items["chain_id"], items["result"]) == (True, "item", {"items": [], "more": False})
    assert get_json(base + "api/items/cases/no-such-case")["result"] is None
    assert _http(base + "api/items?limit=101")[0] == 400
    assert chains["department"] == net.specs[0].department
    assert _http(base + "metrics")[0] == 404  # the metrics have a port of their own, and no explorer there
    assert _http(net.specs[0].metrics.removesuffix("metrics"))[0] == 404
