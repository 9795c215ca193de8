"""Service items and cases on 4 real node processes (docs/design.md,
"Service items and cases"): the power company's node drives cases of its
service items, asking the housing registry's node verification queries
on consents the service window grants on the real authz contract (citing
the citizen's authn event), records evidence and decisions on the item
chain, and `govchain case rerun` reproduces each decision."""
from __future__ import annotations

import json
import time

import grpc
import pytest

from node.adapters import sample
from node.core import rules
from node.core.keys import generate_key_file, load_signing_key
from node.pb import client_pb2
from node.tools import localnet

from .conftest import run_cli
from .test_verify import ITEM_REGISTRATION, bind, commit, consent, genesis_key, home, subject, uses

pytestmark = pytest.mark.e2e
PROVIDER, COMPETENT = 0, 2  # housing-registry, power-company
AUDITING = 3  # the department given an auditor key (the appeal body)
CHAINS = ("catalog", "authn", "authz", "item")
CATALOG_ITEM = "household-registration"
INPUTS = [{"name": "married", "provider": "housing-registry", "catalog_item": CATALOG_ITEM,
           "predicate": {"field": "status", "op": "eq", "value": "married"}},
          {"name": "district", "provider": "housing-registry", "catalog_item": CATALOG_ITEM, "field": "district"}]
ITEM = {"item_id": "family-tariff", "title": "Family electricity tariff", "inputs": INPUTS,
        "rule": 'married && district == "Dongcheng"', "auto_approve": True, "notice_template": "tariff-result"}
MANUAL_ITEM = {**ITEM, "item_id": "family-tariff-reviewed", "auto_approve": False}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from tests.e2e.conftest import Net

    root = tmp_path_factory.mktemp("cases")
    specs = localnet.create_network(root, nodes=4, chains=CHAINS)
    net = Net(root, specs, CHAINS)
    genesis_key(specs, root, COMPETENT, "window.key", "window")  # localnet gives no department role window
    genesis_key(specs, root, AUDITING, "auditor.key", "auditor")
    sample.write_sqlite(home(net, PROVIDER) / "household.db")
    with open(specs[PROVIDER].config, "a") as f:
        f.write("\n" + sample.SOURCES_TOML.format(dir=home(net, PROVIDER)) + '\n[verify]\nkey_file = "app.key"\n')
    with open(specs[COMPETENT].config, "a") as f:
        f.write(f'\n[cases]\nkey_file = "app.key"\nproviders = {{ "{specs[PROVIDER].department}" = '
                f'"{specs[PROVIDER].client}" }}\n')
    net.start()
    try:
        net.wait_ready(timeout_s=60)
        commit(net, PROVIDER, load_signing_key(home(net, PROVIDER) / "app.key"), "catalog", "catalog",
               "register_item", ITEM_REGISTRATION)
        commit(net, COMPETENT, load_signing_key(home(net, COMPETENT) / "officer.key"), "item", "item",
               "register_item", ITEM, MANUAL_ITEM)
        yield net
    finally:
        net.kill_all()


def _authenticate(net, id_number: str, case_id: str) -> tuple[bytes, bytes]:
    """The identity service records an authn event for the citizen at the power company's window, and the
    window grants a single-use consent per input of the case citing it; (tag, OPRF output)."""
    event = f"ev-{case_id}"
    bind(net, generate_key_file(_app_key(net, case_id)), id_number, event, "power-company/window-1")
    grants = [{**consent(f"consent-{case_id}-m", fields=None, case_id=case_id, purpose="family-tariff",
                         id_number=id_number), "authn_event": event},
              {**consent(f"consent-{case_id}-d", fields=["district"], case_id=case_id, purpose="family-tariff",
                         id_number=id_number), "authn_event": event}]
    commit(net, COMPETENT, load_signing_key(home(net, COMPETENT) / "window.key"), "authz", "authz", "grant", *grants)
    return subject(id_number)


def _open(net, *, case_id: str, id_number: str, item: str = ITEM["item_id"]) -> dict:
    tag, n = _authenticate(net, id_number, case_id)
    out = run_cli("case", "open", "--node", net.specs[COMPETENT].client, "--window-key",
                  str(home(net, COMPETENT) / "window.key"), "--item", item, "--case", case_id, "--tag", tag.hex(),
                  "--oprf-output", n.hex(), "--id-number", id_number, "--authn-event", f"ev-{case_id}",
                  "--consent", f"married=consent-{case_id}-m", "--consent", f"district=consent-{case_id}-d",
                  "--purpose", "family-tariff", "--json", "--timeout", "120", *_ca(net), timeout=150)
    return json.loads(out.stdout)["case"]


def _ca(net) -> tuple[str, ...]:
    return ("--ca", str(net.root / "tls" / "ca.crt"))


def _app_key(net, case_id: str):
    """The key file of the app the citizen of `case_id` authenticated with (bound to their tag)."""
    return net.root / f"app-{case_id}.key"


def _rerun(net, case_id: str, node: int = 1, key=None) -> dict:
    """`govchain case rerun`, reading the openings with `key` (default: the app key the case's citizen
    authenticated with)."""
    out = run_cli("case", "rerun", case_id, "--node", net.specs[node].client, "--address",
                  net.specs[COMPETENT].client, "--key", str(key or _app_key(net, case_id)), "--json", *_ca(net))
    return json.loads(out.stdout)


def _get_case(net, request):
    from node.net.client import channel
    from node.pb import cases_pb2_grpc

    return cases_pb2_grpc.CasesStub(channel(net.specs[COMPETENT].client, net.tls)).GetCase(request, timeout=10)


def _shown(net, case_id: str, node: int = 1) -> dict:
    def read():
        out = run_cli("case", "show", case_id, "--node", net.specs[node].client, "--json", *_ca(net), check=False)
        return json.loads(out.stdout)["case"] if out.returncode == 0 else None
    return localnet.wait_until(lambda: (c := read()) and c.get("decision") and c, 30, what="the case on node 1")


def test_a_case_is_approved_automatically_from_real_verification_queries_and_reruns_the_same(cluster):
    case = _open(cluster, case_id="case-ok", id_number=sample.SAMPLE_ID_NUMBERS[0])  # married, Dongcheng
    assert case["status"] == "approved" and case["decision"]["outcome"] == rules.APPROVED
    item = json.loads(cluster.client(0).Query(client_pb2.QueryRequest(
        chain_id="item", contract="item", method="item", args=json.dumps({"item_id": ITEM["item_id"]}).encode()),
        timeout=10).result)
    assert case["rule_hash"] == item["rule_hash"]
    entries = case["evidence"]["entries"]
    assert sorted(e["input"] for e in entries) == ["district", "married"]
    assert case["decision"]["evidence"] == [e["request_digest"] for e in entries]
    assert uses(cluster, "consent-case-ok-m") == uses(cluster, "consent-case-ok-d") == 1  # spent on the authz chain
    text = json.dumps(case)
    assert sample.SAMPLE_ID_NUMBERS[0] not in text and "Dongcheng" not in text  # no PII, no answer on chain
    assert _shown(cluster, "case-ok") == case  # the same record on another node
    again = _rerun(cluster, "case-ok")
    assert again["same"] and again["outcome"] == "approved" and again["evidence"] == case["decision"]["evidence"]


def test_a_rule_that_does_not_hold_refuses_and_reruns_the_same(cluster):
    case = _open(cluster, case_id="case-no", id_number=sample.SAMPLE_ID_NUMBERS[2])  # divorced, Lixia
    assert case["status"] == "refused" and case["decision"]["reason"] == "the rule does not hold"
    again = _rerun(cluster, "case-no")
    assert again["same"] and again["outcome"] == "refused"


def test_a_manual_item_goes_to_review_and_an_officer_decides(cluster):
    case = _open(cluster, case_id="case-review", id_number=sample.SAMPLE_ID_NUMBERS[0],
                 item=MANUAL_ITEM["item_id"])
    assert case["status"] == "review" and case["decision"]["outcome"] == rules.MANUAL
    assert "decided by an officer (the rule holds)" in case["decision"]["reason"]
    assert _rerun(cluster, "case-review")["same"]
    reviewed = commit(cluster, COMPETENT, load_signing_key(home(cluster, COMPETENT) / "officer.key"), "item",
                      "item", "review", {"case_id": "case-review", "outcome": "approved",
                                         "reason": "checked at the window"})[0]
    assert reviewed["status"] == "approved" and reviewed["review"]["outcome"] == "approved"


def test_a_tampered_opening_does_not_rerun(cluster):
    from node.net.client import stub
    from node.services.cases import signed_get_case
    from node.tools.case_cli import Differs, rerun

    _open(cluster, case_id="case-tamper", id_number=sample.SAMPLE_ID_NUMBERS[0])
    client = stub(cluster.specs[1].client, cluster.tls)
    case = _shown(cluster, "case-tamper")
    openings = json.loads(_get_case(cluster, signed_get_case(load_signing_key(_app_key(cluster, "case-tamper")),
                                                             "case-tamper")).openings_json)
    assert rerun(client, openings, case, 10) == ("approved", "the rule holds")
    openings["district"]["answer"] = {"found": True, "fields": {"district": "Lixia"}}
    with pytest.raises(Differs, match="does not match the answer commitment"):
        rerun(client, openings, case, 10)


def test_only_the_subjects_app_key_or_an_auditor_reads_a_cases_openings(cluster):
    """The openings are the citizen's answers: GetCase gives them to the key the authn chain binds to the
    case's tag, or to an auditor; a key bound to another citizen, a department's own key, an unsigned,
    replayed, stale or forged request gets a precise refusal and no answer."""
    from node.pb import cases_pb2
    from node.services.audit import signed_request
    from node.services.cases import signed_get_case

    _open(cluster, case_id="case-private", id_number=sample.SAMPLE_ID_NUMBERS[0])
    _open(cluster, case_id="case-other", id_number=sample.SAMPLE_ID_NUMBERS[2])
    citizen = load_signing_key(_app_key(cluster, "case-private"))
    mine = _get_case(cluster, signed_get_case(citizen, "case-private"))
    assert json.loads(mine.openings_json)["district"]["answer"] == {"found": True, "fields": {"district": "Dongcheng"}}
    auditor = _get_case(cluster, signed_get_case(load_signing_key(home(cluster, AUDITING) / "auditor.key"),
                                                 "case-private"))
    assert auditor.openings_json == mine.openings_json and auditor.case_json == mine.case_json

    def refused(request) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.RpcError) as caught:
            _get_case(cluster, request)
        return caught.value.code(), caught.value.details()

    code, why = refused(signed_get_case(load_signing_key(_app_key(cluster, "case-other")), "case-private"))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "is bound to another subject" in why
    code, why = refused(signed_get_case(load_signing_key(home(cluster, COMPETENT) / "officer.key"), "case-private"))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "not the role 'auditor'" in why
    code, why = refused(cases_pb2.GetCaseRequest(case_id="case-private"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and why.startswith("key must be an Ed25519 public key")
    once = signed_get_case(citizen, "case-private")
    _get_case(cluster, once)
    code, why = refused(once)
    assert code == grpc.StatusCode.PERMISSION_DENIED and why.startswith("replayed request")
    code, why = refused(signed_get_case(citizen, "case-private", time_ms=int(time.time() * 1000) - 3_600_000))
    assert code == grpc.StatusCode.PERMISSION_DENIED and why.startswith("stale request")
    forged = signed_get_case(citizen, "case-other")
    forged.case_id = "case-private"  # a signature over another case does not open this one
    code, why = refused(forged)
    assert code == grpc.StatusCode.PERMISSION_DENIED and why.startswith("signature does not verify")
    code, why = refused(signed_get_case(citizen, "no-such-case"))
    assert code == grpc.StatusCode.NOT_FOUND and why.startswith("no case 'no-such-case' on the item chain")
    code, why = refused(signed_get_case(load_signing_key(home(cluster, COMPETENT) / "window.key"), "case-private"))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "not the role 'auditor'" in why  # the window that opened it
    code, why = refused(signed_get_case(citizen, "case private"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and why.startswith("case_id must be 1-64 of letters")
    audit = signed_request(citizen, json.loads(mine.case_json)["tag"], time_ms=int(time.time() * 1000),
                           nonce=b"audit-nonce-0001")  # the same key's signature for another read
    code, why = refused(cases_pb2.GetCaseRequest(case_id="case-private", time_ms=audit.time_ms, nonce=audit.nonce,
                                                 key=audit.key, signature=audit.signature))
    assert code == grpc.StatusCode.PERMISSION_DENIED and why.startswith("signature does not verify")


def test_open_case_does_not_hand_out_the_openings(cluster):
    """OpenCase's transaction is public on the item chain and a window gets any OPRF output: calling it again
    on a decided case must not be a way around GetCase."""
    from node.core import codec
    from node.core.tx import sign_transaction
    from node.net.client import channel
    from node.pb import cases_pb2, cases_pb2_grpc
    from node.services.cases import signed_get_case

    case = _open(cluster, case_id="case-reopen", id_number=sample.SAMPLE_ID_NUMBERS[0])
    tag, n = subject(sample.SAMPLE_ID_NUMBERS[0])
    again = sign_transaction(load_signing_key(home(cluster, COMPETENT) / "window.key"), chain_id="item",
                             nonce=time.time_ns(), contract="item", method="open_case", payload=json.dumps(
                                 {"case_id": "case-reopen", "item_id": ITEM["item_id"], "tag": tag.hex(),
                                  "authn_event": "ev-case-reopen"}).encode())
    reply = cases_pb2_grpc.CasesStub(channel(cluster.specs[COMPETENT].client, cluster.tls)).OpenCase(
        cases_pb2.OpenCaseRequest(open_case=codec.to_proto(again), id_number=sample.SAMPLE_ID_NUMBERS[0],
                                  oprf_output=n, consent_ids={"married": "consent-case-reopen-m",
                                                              "district": "consent-case-reopen-d"},
                                  purpose="family-tariff"), timeout=60)
    assert json.loads(reply.case_json) == case and reply.openings_json == "{}"
    citizen = load_signing_key(_app_key(cluster, "case-reopen"))
    assert json.loads(_get_case(cluster, signed_get_case(citizen, "case-reopen")).openings_json)["district"]
