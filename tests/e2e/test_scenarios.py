"""The five seed scenarios (scenarios/; docs/design.md, "Scenarios") played on
one real network: 7 department nodes, a real Mosquitto, the real authz
contract. Each step checks itself as it plays (node/tools/scenario_run.py
raises ScenarioFailed); the tests below check the records again from the
chains: every decision, every notice, every audit entry, consents spent
once, a rule that refuses, manual review then an officer, and re-runs."""
from __future__ import annotations

import json

import pytest

from node.pb import client_pb2
from node.tools import localnet, scenario_run, scenarios
from node.tools.case_cli import rerun

from ..mosquitto import Mosquitto

pytestmark = pytest.mark.e2e
SEEDS = scenarios.available()


@pytest.fixture(scope="module")
def playing(tmp_path_factory):
    """(net, reports, lines, the citizens' app keys by tag) of one network that played every seed scenario."""
    root = tmp_path_factory.mktemp("scenarios")
    (root / "mqtt").mkdir()
    broker = Mosquitto(root / "mqtt", persistence=True).start()
    net = scenario_run.create(root / "net", scenarios.load_many(SEEDS), broker.port)
    lines: list[str] = []
    try:
        scenario_run.start(net, lines.append)
        player = scenario_run.Player(net, lines.append)
        try:
            reports = {s.name: player.play(s) for s in net.scenarios}
        finally:
            player.close()
        yield net, reports, lines, {c.tag: c.app_key for c in player.citizens.values()}
    finally:
        for spec in net.specs:
            localnet.kill(spec)
        broker.stop()


@pytest.fixture(scope="module")
def played(playing):
    return playing[:3]


def query(net, chain: str, method: str, args: dict, node: int = 1):
    reply = localnet.client_stub(net.specs[node]).Query(client_pb2.QueryRequest(
        chain_id=chain, contract=chain, method=method, args=json.dumps(args).encode()), timeout=10)
    return json.loads(reply.result)


EXPECTED = {  # scenario -> case -> (status on chain, decision outcome, reason)
    "house-sale": {"electricity-transfer-1": ("approved", "approved", "the rule holds"),
                   "electricity-transfer-2": ("refused", "refused", "the rule does not hold")},
    "unemployment": {"benefit-1": ("approved", "approved", "the rule holds"),
                     "benefit-2": ("refused", "refused", "the rule does not hold")},
    "school-enrolment": {"enrolment-1": ("approved", "approved", "the rule holds"),
                         "enrolment-2": ("refused", "refused", "the rule does not hold")},
    "company-opening": {"company-1": ("approved", "approved", "the rule holds"),
                        "company-2": ("refused", "refused", "the rule does not hold")},
    "gallery-licence": {"gallery-1": ("approved", "manual",
                                      "the item is decided by an officer (the rule holds)")},
}


def test_the_network_has_the_departments_the_scenarios_name(played):
    net, _, _ = played
    assert [s.department for s in net.specs] == ["culture-tourism", "education", "housing-registry",
                                                 "human-resources", "market-regulation", "power-company",
                                                 "public-security"]


@pytest.mark.parametrize("scenario", SEEDS)
def test_every_decision_is_the_expected_one_on_every_node(played, scenario):
    net, reports, _ = played
    report = reports[scenario]
    assert set(report.cases) == set(EXPECTED[scenario])
    for name, (status, outcome, reason) in EXPECTED[scenario].items():
        case = query(net, "item", "case", {"case_id": report.cases[name]["case_id"]})
        assert (case["status"], case["decision"]["outcome"], case["decision"]["reason"]) == (status, outcome, reason)
        assert case["decision"]["evidence"] == [e["request_digest"] for e in case["evidence"]["entries"]]
        assert case["notice"] is not None


def test_an_officer_decides_the_gallery_after_the_checks(played):
    net, reports, _ = played
    case = query(net, "item", "case", {"case_id": reports["gallery-licence"].cases["gallery-1"]["case_id"]})
    assert case["review"]["outcome"] == "approved" and case["decision"]["outcome"] == "manual"


def test_every_notice_reached_the_right_phone_and_its_digest_is_on_chain(played):
    net, reports, _ = played
    got = {name: sorted((n["person"], n["notice"].get("kind", "result")) for n in r.notices)
           for name, r in reports.items()}
    assert got == {
        "house-sale": [("buyer", "result"), ("seller", "offer"), ("visitor", "result")],
        "unemployment": [("jobseeker", "offer"), ("jobseeker", "result"), ("newcomer", "result")],
        "school-enrolment": [("parent", "result"), ("tenant", "result")],
        "company-opening": [("founder", "offer"), ("founder", "result"), ("restricted", "result")],
        "gallery-licence": [("gallerist", "result")]}
    for report in reports.values():
        digests = {query(net, "item", "case", {"case_id": c["case_id"]})["notice"]["notice_digest"]
                   for c in report.cases.values()}
        assert digests == {n["digest"] for n in report.notices if "case_id" in n["notice"]}
    offers = [n["notice"] for r in reports.values() for n in r.notices if n["notice"].get("kind") == "offer"]
    assert sorted(o["notice"] for o in offers) == ["business-licence.issued", "electricity-account.moves-to-new-owner",
                                                   "unemployment-benefit.you-may-apply"]


def test_every_audit_shows_each_query_of_the_citizens_cases_with_its_consent_or_agreement(played):
    net, reports, _ = played
    audited = {name: sorted(r.audits) for name, r in reports.items()}
    assert audited == {"house-sale": ["buyer"], "unemployment": ["jobseeker"], "school-enrolment": ["parent"],
                       "company-opening": [], "gallery-licence": ["gallerist"]}
    for report in reports.values():
        for person, entries in report.audits.items():
            assert entries and all(e["decision"] == "PERMIT" for e in entries)
            for entry in entries:
                if "agreement" in entry["basis"]:
                    agreement = query(net, "catalog", "agreement", {"id": entry["basis"]["agreement"]})["agreement"]
                    assert agreement["status"] == "active" and entry["item"] in agreement["items"]
                    assert (agreement["provider"], agreement["requester"]) == (entry["provider"], entry["requester"])
                    continue
                consent = query(net, "authz", "consent", {"consent_id": entry["basis"]["consent"]})
                assert consent["max_uses"] == 1 and consent["uses"] == 1
                assert consent["grantee"] == entry["requester"] and consent["tag"] == entry["tag"]
    school = reports["school-enrolment"].audits["parent"]
    assert sorted(next(iter(e["basis"])) for e in school) == ["agreement", "consent"]
    house = reports["house-sale"].audits["buyer"]
    assert [(e["requester"], e["provider"], e["item"], e["purpose"]) for e in house] == \
        [("power-company", "housing-registry", "property-ownership", "electricity-transfer")]


def test_no_id_number_or_name_reaches_a_chain(played):
    net, reports, _ = played
    people = [p for s in net.scenarios for p in s.people.values()]
    records = json.dumps([query(net, "item", "case", {"case_id": c["case_id"]})
                          for r in reports.values() for c in r.cases.values()]) + \
        json.dumps([r.audits for r in reports.values()])
    assert not [p for p in people if p.id_number in records or p.name in records]


@pytest.mark.parametrize("scenario", SEEDS)
def test_a_rerun_from_chain_data_gives_the_recorded_decision(playing, scenario):
    from node.net.client import channel
    from node.pb import cases_pb2_grpc
    from node.services.cases import signed_get_case

    net, reports, _, app_keys = playing
    for case in reports[scenario].cases.values():
        competent = net.spec(case["department"])
        openings = json.loads(cases_pb2_grpc.CasesStub(channel(competent.client, net.tls)).GetCase(
            signed_get_case(app_keys[case["tag"]], case["case_id"]), timeout=10).openings_json)
        recorded = query(net, "item", "case", {"case_id": case["case_id"]})
        assert rerun(localnet.client_stub(net.specs[0]), openings, recorded, 10) == \
            (recorded["decision"]["outcome"], recorded["decision"]["reason"])


def test_the_steps_are_told_in_plain_words(played):
    _, _, lines = played
    text = "\n".join(lines)
    assert "Sample Buyer consents, once, that Power Company may ask Housing Registry \"owner_is_subject?\"" in text
    assert "Power Company's node asks Housing Registry's node \"owner_is_subject?\"" in text
    assert "Housing Registry and Education Commission sign a standing agreement: education may ask " \
           "home-in-district without a consent" in text
    assert "Education Commission's node asks Housing Registry's node \"owns_home?\" (home-in-district, under the " \
           "standing agreement; Housing Registry's node checked the tag with the identity service)" in text
    assert "Sample Seller's phone shows a notice from Power Company: \"electricity-account.moves-to-new-owner\"" in text


def test_under_the_agreement_the_provider_checks_the_tag_with_the_identity_service(played):
    """school-enrolment asks housing-registry under a standing agreement, with no consent to bind the tag: a
    tag hashed with an OPRF key of the requester's making (matching the sealed ID number and OPRF output) is
    refused and logged as a DENY, which only the identity service's own answer can tell."""
    import grpc
    from nacl.bindings import crypto_scalarmult_ed25519_noclamp
    from nacl.public import PrivateKey

    from node.identity import oprf
    from node.net.client import channel
    from node.pb import verify_pb2_grpc
    from node.services.requester import build_request

    net, _, _ = played
    school = next(s for s in net.scenarios if s.name == "school-enrolment")
    id_number = school.people["parent"].id_number
    data = oprf.oprf_input(id_number)
    made_up = crypto_scalarmult_ed25519_noclamp(bytes(oprf.OprfKey.generate()), oprf.hash_to_group(data))
    signed, digest = build_request(
        key=net.key("education"), department="education", provider="housing-registry",
        provider_key=bytes(net.key("housing-registry").verify_key), item="home-in-district", fields=None,
        predicate=json.dumps({"field": "district", "op": "eq", "value": "Haidian"}),
        tag=oprf.derive_tag(data, made_up), id_number=id_number, oprf_output=made_up, consent=None,
        agreement=scenario_run.agreement_id(net, school.agreements[0]), purpose="school-enrolment",
        case_id="made-up-tag", reply_public=bytes(PrivateKey.generate().public_key))
    with pytest.raises(grpc.RpcError) as refused:
        verify_pb2_grpc.VerificationStub(channel(net.spec("housing-registry").client, net.tls)).Verify(
            signed, timeout=30)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details().startswith("the identity service gives another tag for the sealed ID number")
    # Committed at the provider's node before it answered; node 1, where we read, may execute it a moment later.
    logged = localnet.wait_until(lambda: query(net, "authz", "access", {"request_digest": digest.hex()})["entry"],
                                 10, what="the DENY entry on node 1")
    assert (logged["decision"], logged["reason"]) == \
        ("DENY", "the identity service gives another tag for the ID number")


# Last in the module: it plays house-sale again, which binds the buyer's tag to a new app key.
def test_a_citizen_keeps_one_tag_from_the_identity_service_and_a_second_run_audits_both(playing):
    """The tags come from public-security's identity service (blinded, with the runner's window certificate),
    so a second run on the same network meets the same citizens under the same tags, and the audit step
    reads their whole log: both runs' queries. Without a window certificate the service answers nothing."""
    import grpc

    from node.identity import oprf
    from node.net.client import channel
    from node.pb import identity_pb2, identity_pb2_grpc

    net, reports, _, first_keys = playing
    house = next(s for s in net.scenarios if s.name == "house-sale")
    again = scenario_run.Player(net, lambda _: None)
    try:
        report = again.play(house)
        tags = {c.tag for c in again.citizens.values()}
    finally:
        again.close()
    assert tags and tags <= set(first_keys)
    buyer = [(e["requester"], e["provider"], e["item"], e["request_digest"]) for e in report.audits["buyer"]]
    before = [e["request_digest"] for e in reports["house-sale"].audits["buyer"]]
    assert len(buyer) == 2 and buyer[0][3] == before[0] and buyer[1][3] != before[0]
    assert {b[:3] for b in buyer} == {("power-company", "housing-registry", "property-ownership")}

    identity = net.spec(scenarios.IDENTITY_DEPARTMENT)
    _, blinded = oprf.blind(house.people["buyer"].id_number)
    with pytest.raises(grpc.RpcError) as refused:  # the tools' certificate is not a window's
        identity_pb2_grpc.IdentityStub(channel(identity.client, net.tls)).Evaluate(
            identity_pb2.EvaluateRequest(blinded=blinded), timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
