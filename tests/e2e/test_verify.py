"""Verification queries on 4 real node processes running the real authz
contract (docs/design.md, "Verification queries", "Consent and the access
log (authz)", "Citizen audit"): the citizen's app key is bound on the authn
chain and grants consents with authz.grant; the provider (housing-registry)
answers from a SQLite source, logs every access on the authz chain before
release (the contract enforces each consent on every node) and re-delivers
the same answer after a crash; the citizen lists and verifies the audit."""
from __future__ import annotations

import json
import time

import grpc
import pytest
from nacl.bindings import crypto_scalarmult_ed25519_noclamp
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from node.adapters import sample
from node.core import attest
from node.core.keys import generate_key_file, load_signing_key
from node.core.tx import sign_transaction
from node.identity.oprf import OprfKey, derive_tag, hash_to_group, oprf_input
from node.net.client import channel
from node.pb import client_pb2, verify_pb2, verify_pb2_grpc
from node.tools import localnet
from node.tools.verify_cli import NotVerified, build_request, check_log, check_reply

from .conftest import run_cli, submit_batch

pytestmark = pytest.mark.e2e
PROVIDER, OTHER, REQUESTER, IDENTITY = 0, 1, 2, 3  # housing-registry, market-regulation, power-company, public-security
CHAINS = ("catalog", "authn", "authz")
ITEM = "household-registration"
ITEM_REGISTRATION = {"item_id": ITEM, "fields": ["status", "household", "district"], "answer_modes": ["fields", "predicate"],
                "consent_required": True, "requester_roles": ["requester"]}
ID = sample.SAMPLE_ID_NUMBERS[0]  # married
PURPOSE = "marriage-registration"
OPRF = OprfKey.generate()
_nonce = iter(range(time.time_ns(), 1 << 62))


def subject(id_number: str) -> tuple[bytes, bytes]:
    """(tag, OPRF output) as a window would get them from the identity service."""
    data = oprf_input(id_number)
    n = crypto_scalarmult_ed25519_noclamp(bytes(OPRF), hash_to_group(data))
    return derive_tag(data, n), n


def home(net_or_specs, i) -> localnet.Path:
    specs = getattr(net_or_specs, "specs", net_or_specs)
    return localnet.Path(specs[i].home)


def genesis_key(specs, root, i: int, file: str, role: str) -> SigningKey:
    """A new key file in department i's home, registered with `role` in the catalog genesis (the department
    gets the role too): keys beyond localnet's officer.key and app.key."""
    path = root / "genesis" / "catalog.json"
    genesis = json.loads(path.read_text())
    key = generate_key_file(home(specs, i) / file)
    for dept in genesis["app_state"]["catalog"]["departments"]:
        if dept["id"] == specs[i].department:
            dept["roles"] = sorted(set(dept["roles"]) | {role})
            dept["keys"].append({"key": bytes(key.verify_key).hex(), "roles": [role]})
    path.write_text(json.dumps(genesis))
    localnet.reseal(specs, path)
    return key


def commit(net, i, key, chain, contract, method, *payloads) -> list[dict]:
    """Each payload as one transaction of `key`, in one batch to node i; all commit OK, every node has them."""
    txs = [sign_transaction(key, chain_id=chain, nonce=next(_nonce), contract=contract, method=method,
                            payload=json.dumps(p).encode()) for p in payloads]
    results = submit_batch(net.client(i), txs).results
    for result in results:
        assert result.committed and result.receipt.status == client_pb2.Receipt.OK, result
    net.wait_same_head(chain, range(4), at_least=max(r.receipt.height for r in results))
    return [json.loads(r.receipt.output) if r.receipt.output else {} for r in results]


def bind(net, citizen: SigningKey, id_number: str, event_id: str, window: str) -> None:
    """The identity service (public-security's app.key, role identity) records an authn event binding the
    citizen's app key to their tag."""
    commit(net, IDENTITY, load_signing_key(home(net, IDENTITY) / "app.key"), "authn", "authn", "record",
           {"event_id": event_id, "tag": subject(id_number)[0].hex(), "method": "face-window", "assurance": 4,
            "app_key": bytes(citizen.verify_key).hex(), "expires_at_ms": int(time.time() * 1000) + 25 * 60_000,
            "window": window})


def consent(consent_id: str, *, fields=("status",), max_uses=1, case_id="case-1", purpose=PURPOSE,
            grantee="power-company", id_number=ID) -> dict:
    """An authz.grant payload: grantee asks housing-registry's ITEM about the citizen, for a day."""
    now = int(time.time() * 1000)
    return {"consent_id": consent_id, "tag": subject(id_number)[0].hex(), "grantee": grantee,
            "provider": "housing-registry", "item": ITEM,
            "scope": {"predicate": True} if fields is None else {"fields": list(fields)}, "purpose": purpose,
            "case_id": case_id, "not_before_ms": now - 60_000, "expires_at_ms": now + 86_400_000,
            "max_uses": max_uses}


def citizen_key(net) -> SigningKey:
    return load_signing_key(net.root / "citizen.key")


def make_cluster(root, consents=()):
    """4 nodes with catalog, authn and authz chains; housing-registry answers ITEM from the sample SQLite table
    (registered on the catalog); the citizen of ID has an app key (root/citizen.key) bound on the authn chain
    and grants `consents` (authz.grant payloads). Also used by scripts/bench-verify."""
    from tests.e2e.conftest import Net

    specs = localnet.create_network(root, nodes=4, chains=CHAINS)
    net = Net(root, specs, CHAINS)
    genesis_key(specs, root, REQUESTER, "rotating.key", "requester")  # for the key rotation test
    sample.write_sqlite(home(net, PROVIDER) / "household.db")
    with open(specs[PROVIDER].config, "a") as f:
        f.write("\n" + sample.SOURCES_TOML.format(dir=home(net, PROVIDER)) + '\n[verify]\nkey_file = "app.key"\n')
    net.start()
    try:
        net.wait_ready(timeout_s=60)
        commit(net, PROVIDER, load_signing_key(home(net, PROVIDER) / "app.key"), "catalog", "catalog",
               "register_item", ITEM_REGISTRATION)
        citizen = generate_key_file(root / "citizen.key")
        bind(net, citizen, ID, "ev-citizen", "public-security/window-1")
        if consents:
            commit(net, REQUESTER, citizen, "authz", "authz", "grant", *consents)
    except BaseException:
        net.kill_all()
        raise
    return net


CONSENTS = [consent(c) for c in ("consent-1", "consent-tamper", "consent-replay", "consent-tag", "consent-field",
                                 "consent-again", "consent-once", "consent-revoked", "consent-crash-verify-submitted",
                                 "consent-crash-verify-logged")] + [
    consent("consent-cli", case_id="case-7"), consent("consent-predicate", fields=None),
    consent("consent-rotate", case_id="case-rotate", max_uses=2)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    net = make_cluster(tmp_path_factory.mktemp("verify"), CONSENTS)
    try:
        yield net
    finally:
        net.kill_all()


def requester_key(net, i=REQUESTER):
    return load_signing_key(home(net, i) / "app.key")


def ask(net, *, id_number=ID, tag_of=None, fields=("status",), predicate=None, consent="consent-1", item=ITEM,
        key=None, department=None, time_ms=None, provider_key=None, case_id="case-1"):
    """(SignedVerifyRequest, digest, reply private key, provider key)."""
    tag, n = subject(tag_of or id_number)
    provider = provider_key or bytes(load_signing_key(home(net, PROVIDER) / "app.key").verify_key)
    reply = PrivateKey.generate()
    signed, digest = build_request(
        key=key or requester_key(net), department=department or net.specs[REQUESTER].department,
        provider=net.specs[PROVIDER].department, provider_key=provider, item=item,
        fields=list(fields) if predicate is None else None, predicate=predicate, tag=tag, id_number=id_number,
        oprf_output=n, consent=consent, agreement=None, purpose=PURPOSE, case_id=case_id,
        reply_public=bytes(reply.public_key), time_ms=time_ms)
    return signed, digest, reply, provider


def verify_stub(net):
    return verify_pb2_grpc.VerificationStub(channel(net.specs[PROVIDER].client, net.tls))


def refused(net, signed) -> tuple[grpc.StatusCode, str]:
    try:
        verify_stub(net).Verify(signed, timeout=30)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    raise AssertionError("the query was answered; expected a refusal")


def logged(net, digest: bytes):
    reply = net.client(OTHER).Query(client_pb2.QueryRequest(
        chain_id="authz", contract="authz", method="access",
        args=json.dumps({"request_digest": digest.hex()}).encode()), timeout=10)
    found = json.loads(reply.result)
    return found["entry"] if found else None


def wait_logged(net, digest: bytes):
    """The entry, once node OTHER has the block (the provider waited for its own commit only)."""
    return localnet.wait_until(lambda: logged(net, digest), 30, what="the log entry on another node")


def uses(net, consent_id: str) -> int:
    """The uses the authz contract counted for the consent (on node OTHER)."""
    reply = net.client(OTHER).Query(client_pb2.QueryRequest(
        chain_id="authz", contract="authz", method="consent",
        args=json.dumps({"consent_id": consent_id}).encode()), timeout=10)
    return json.loads(reply.result)["uses"]


def answered(net, **kw) -> dict:
    """Ask (ask's keywords) and check the reply: the answer, once node OTHER has its log entry."""
    signed, digest, reply_key, provider = ask(net, **kw)
    reply = verify_stub(net).Verify(signed, timeout=30)
    answer = check_reply(reply, digest=digest, provider_key=provider, reply_private=reply_key)
    assert wait_logged(net, digest)["decision"] == "PERMIT"
    return answer


def test_cli_round_trip_answers_only_the_asked_field_and_logs_it_first(cluster):
    tag, n = subject(ID)
    out = run_cli("verify-query", "--node", cluster.specs[REQUESTER].client, "--address",
                  cluster.specs[PROVIDER].client, "--key", str(home(cluster, REQUESTER) / "app.key"),
                  "--department", cluster.specs[REQUESTER].department, "--provider", cluster.specs[PROVIDER].department,
                  "--item", ITEM, "--fields", "status", "--tag", tag.hex(), "--oprf-output", n.hex(),
                  "--id-number", ID, "--consent", "consent-cli", "--purpose", "marriage-registration",
                  "--case", "case-7", "--genesis", str(cluster.genesis("authz")), "--json",
                  env={"GOVCHAIN_CA": str(cluster.root / "tls" / "ca.crt")})
    result = json.loads(out.stdout)
    assert result["verified"] and result["proof_checked"]
    assert result["answer"] == {"found": True, "fields": {"status": "married"}}
    entry = wait_logged(cluster, bytes.fromhex(result["request_digest"]))
    assert entry["decision"] == "PERMIT" and entry["answer_commitment"] == result["answer_commitment"]
    assert entry["fields"] == ["status"] and entry["tag"] == tag.hex()
    assert ID not in json.dumps(entry) and "married" not in json.dumps(entry)  # no PII, no answer on chain
    assert uses(cluster, "consent-cli") == 1


def test_predicate_answer_is_yes_or_no_only(cluster):
    signed, digest, reply_key, provider = ask(cluster, predicate=json.dumps(
        {"field": "status", "op": "eq", "value": "married"}), fields=(), consent="consent-predicate")
    reply = verify_stub(cluster).Verify(signed, timeout=30)
    assert check_reply(reply, digest=digest, provider_key=provider, reply_private=reply_key) == \
        {"found": True, "holds": True}
    assert check_log(cluster.client(OTHER), reply, digest=digest, timeout=10)["predicate"] is True


def test_tampered_answer_and_forged_attestation_are_refused_by_the_requester(cluster):
    signed, digest, reply_key, provider = ask(cluster, consent="consent-tamper")
    reply = verify_stub(cluster).Verify(signed, timeout=30)
    check_reply(reply, digest=digest, provider_key=provider, reply_private=reply_key)  # the genuine one verifies
    from node.services.verify import seal_to
    forged = verify_pb2.VerifyReply()
    forged.CopyFrom(reply)
    forged.sealed_answer = seal_to(bytes(reply_key.public_key), json.dumps(
        {"answer": {"found": True, "fields": {"status": "single"}}, "salt": "00" * 32}).encode())
    with pytest.raises(NotVerified, match="commitment"):
        check_reply(forged, digest=digest, provider_key=provider, reply_private=reply_key)
    forged.CopyFrom(reply)
    forged.attestation = requester_key(cluster).sign(
        attest.attestation_digest(digest, reply.answer_commitment, "PERMIT")).signature
    with pytest.raises(NotVerified, match="attestation"):
        check_reply(forged, digest=digest, provider_key=provider, reply_private=reply_key)
    forged.CopyFrom(reply)
    forged.answer_commitment = bytes(32)
    with pytest.raises(NotVerified, match="attestation"):
        check_reply(forged, digest=digest, provider_key=provider, reply_private=reply_key)


def test_replayed_nonce_and_stale_request_are_refused_without_a_log_entry(cluster):
    signed, digest, _, _ = ask(cluster, consent="consent-replay")
    verify_stub(cluster).Verify(signed, timeout=30)
    # the same nonce in another request (another case id), signed again by the requester
    request = verify_pb2.VerifyRequest.FromString(signed.request)
    request.case_id = "case-2"
    raw = request.SerializeToString(deterministic=True)
    key = requester_key(cluster)
    other = verify_pb2.SignedVerifyRequest(request=raw, signature=key.sign(attest.request_signing_bytes(
        attest.request_digest(raw))).signature)
    code, message = refused(cluster, other)
    assert code == grpc.StatusCode.ALREADY_EXISTS and "replayed nonce" in message
    assert logged(cluster, attest.request_digest(raw)) is None
    stale, stale_digest, _, _ = ask(cluster, time_ms=int(time.time() * 1000) - 10 * 60 * 1000)
    code, message = refused(cluster, stale)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "stale request" in message
    assert logged(cluster, stale_digest) is None


def test_bad_signature_unregistered_and_wrong_department_keys_are_refused(cluster):
    signed, _, _, _ = ask(cluster)
    signed.signature = bytes(64)
    code, message = refused(cluster, signed)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    stranger, _, _, _ = ask(cluster, key=SigningKey.generate())
    code, message = refused(cluster, stranger)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "is not registered" in message
    # a governance key (officer.key) is registered, but without role requester
    officer = load_signing_key(home(cluster, REQUESTER) / "officer.key")
    wrong_role, _, _, _ = ask(cluster, key=officer)
    code, message = refused(cluster, wrong_role)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "has roles [governance]" in message
    # another department's requester key, claiming to be the requesting department
    impostor, _, _, _ = ask(cluster, key=requester_key(cluster, OTHER))
    code, message = refused(cluster, impostor)
    assert code == grpc.StatusCode.PERMISSION_DENIED and f"is {cluster.specs[OTHER].department}'s" in message


def test_tag_of_another_person_and_field_outside_the_item_are_denied_and_logged(cluster):
    signed, digest, _, _ = ask(cluster, tag_of=sample.SAMPLE_ID_NUMBERS[2], consent="consent-tag")
    code, message = refused(cluster, signed)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "tag does not match" in message
    entry = wait_logged(cluster, digest)
    assert entry["decision"] == "DENY" and entry["reason"] == "the tag does not match the ID number"
    signed, digest, _, _ = ask(cluster, fields=("status", "birth_date"), consent="consent-field")
    code, message = refused(cluster, signed)  # birth_date: in the source, not in the catalog item
    assert code == grpc.StatusCode.PERMISSION_DENIED and "'birth_date' is not a field of catalog item" in message
    assert wait_logged(cluster, digest)["decision"] == "DENY"
    assert uses(cluster, "consent-tag") == uses(cluster, "consent-field") == 0
    code, message = refused(cluster, signed)  # sent again: still refused, from the log
    assert code == grpc.StatusCode.PERMISSION_DENIED and "logged as DENY" in message


def _refused_by_the_contract(net, consent_id: str, why: str) -> None:
    """A new request citing the consent: PERMISSION_DENIED with the authz contract's reason, logged as a DENY
    (the provider's reason for it), no answer released."""
    signed, digest, _, _ = ask(net, consent=consent_id)
    code, message = refused(net, signed)  # refused: no VerifyReply, so no sealed answer, left the provider
    assert code == grpc.StatusCode.PERMISSION_DENIED, message
    assert f"PERMIT refused: consent {consent_id!r} {why}" in message and "logged as DENY" in message
    entry = wait_logged(net, digest)
    assert entry["decision"] == "DENY" and entry["reason"] == "the authz contract refused the permit"
    assert entry["consent_use"] is None and entry["basis"] == {"consent": consent_id}


def test_a_consent_of_one_use_answers_once_then_is_refused(cluster):
    assert answered(cluster, consent="consent-once") == {"found": True, "fields": {"status": "married"}}
    assert uses(cluster, "consent-once") == 1
    _refused_by_the_contract(cluster, "consent-once", "has no uses left (1 of 1 spent)")
    assert uses(cluster, "consent-once") == 1


def test_a_consent_the_citizen_revoked_is_refused(cluster):
    revoked = commit(cluster, OTHER, citizen_key(cluster), "authz", "authz", "revoke",
                     {"consent_id": "consent-revoked"})[0]
    _refused_by_the_contract(cluster, "consent-revoked",
                             f"was revoked at height {revoked['revoked']['height']}")
    assert uses(cluster, "consent-revoked") == 0


def test_a_requester_key_rotated_mid_case(cluster):
    """Governance revokes the key power-company asked the case's first query with and adds a new one: the old
    key's next request is refused, the new key's answered, both on the case's consent."""
    old, new = load_signing_key(home(cluster, REQUESTER) / "rotating.key"), SigningKey.generate()
    case = {"consent": "consent-rotate", "case_id": "case-rotate"}
    assert answered(cluster, key=old, **case)["found"]
    officers = [load_signing_key(home(cluster, i) / "officer.key") for i in range(3)]
    changes = [{"type": "revoke_key", "key": bytes(old.verify_key).hex()},
               {"type": "add_key", "department": "power-company", "key": bytes(new.verify_key).hex(),
                "roles": ["requester"]}]
    ids = [r["change"] for r in commit(cluster, 0, officers[0], "catalog", "catalog", "propose",
                                       *({"change": c} for c in changes))]
    for officer in officers[1:]:
        done = commit(cluster, 0, officer, "catalog", "catalog", "approve", *({"change": i} for i in ids))
    assert [d["status"] for d in done] == ["applied", "applied"]
    signed, digest, _, _ = ask(cluster, key=old, **case)
    code, message = refused(cluster, signed)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "of power-company was revoked at catalog height" in message
    assert logged(cluster, digest) is None  # not authenticated: nothing reaches the chain
    assert answered(cluster, key=new, **case)["found"]
    assert uses(cluster, "consent-rotate") == 2


def test_redelivery_returns_the_same_commitment_without_a_second_use(cluster):
    signed, digest, reply_key, provider = ask(cluster, consent="consent-again")
    first = verify_stub(cluster).Verify(signed, timeout=30)
    again = verify_stub(cluster).Verify(signed, timeout=30)
    assert again.redelivered and not first.redelivered
    assert (again.answer_commitment, again.log_tx_id, again.log_height) == \
        (first.answer_commitment, first.log_tx_id, first.log_height)
    assert check_reply(again, digest=digest, provider_key=provider, reply_private=reply_key)["found"]
    wait_logged(cluster, digest)
    assert uses(cluster, "consent-again") == 1


@pytest.mark.parametrize("point", ["verify-submitted", "verify-logged"])
def test_provider_killed_before_replying_releases_nothing_then_redelivers_once(cluster, point):
    spec = cluster.specs[PROVIDER]
    localnet.kill(spec)
    localnet.start(spec, env={"GOVCHAIN_FAIL_POINT": f"{point}:1"})
    cluster.wait_ready(timeout_s=60)
    consent = f"consent-crash-{point}"
    signed, digest, reply_key, provider = ask(cluster, consent=consent)
    code, _ = refused(cluster, signed)  # the process died (os._exit) before any answer left it
    assert code == grpc.StatusCode.UNAVAILABLE
    localnet.wait_until(lambda: localnet.pid_of(spec) is None, 30, what="the provider to die at the fail point")
    if point == "verify-logged":  # it died after the commit: the entry is on every node
        localnet.wait_until(lambda: logged(cluster, digest) is not None, 30, what="the log entry to commit")
    before = logged(cluster, digest)  # verify-submitted: the entry may or may not have left the node
    localnet.start(spec)  # no fail point this time
    cluster.wait_ready(timeout_s=60)
    cluster.wait_same_head("authz", range(4), timeout_s=60)
    reply = verify_stub(cluster).Verify(signed, timeout=30)  # the same request, re-delivered
    entry = wait_logged(cluster, digest)
    assert before in (None, entry) and reply.answer_commitment.hex() == entry["answer_commitment"]
    if point == "verify-logged":
        assert reply.redelivered  # found in the log, not logged a second time
    assert check_reply(reply, digest=digest, provider_key=provider, reply_private=reply_key) == \
        {"found": True, "fields": {"status": "married"}}
    assert check_log(cluster.client(OTHER), reply, digest=digest, timeout=10) == entry
    assert uses(cluster, consent) == 1


def test_the_citizen_lists_the_audit_and_verifies_it_offline(cluster, tmp_path):
    """After the tests above: every access to the citizen's data, PERMIT and DENY, with proofs that `govchain
    audit verify` checks against the authz genesis alone; an altered entry fails it."""
    tag = subject(ID)[0].hex()
    audit = tmp_path / "audit.json"
    env = {"GOVCHAIN_CA": str(cluster.root / "tls" / "ca.crt")}
    run_cli("audit", "list", "--address", cluster.specs[OTHER].client, "--key", str(cluster.root / "citizen.key"),
            "--tag", tag, "--out", str(audit), "--json", env=env)
    doc = json.loads(audit.read_text())
    entries = [e["entry"] for e in doc["entries"]]
    assert {e["tag"] for e in entries} == {tag}
    assert {e["decision"] for e in entries} == {"PERMIT", "DENY"}
    by_consent = {}
    for e in entries:
        by_consent.setdefault(e["basis"]["consent"], []).append(e["decision"])
    assert by_consent["consent-once"] == ["PERMIT", "DENY"] and by_consent["consent-revoked"] == ["DENY"]
    assert by_consent["consent-rotate"] == ["PERMIT", "PERMIT"] and by_consent["consent-again"] == ["PERMIT"]
    assert [(e["height"], e["index"]) for e in entries] == sorted((e["height"], e["index"]) for e in entries)
    verify = ("audit", "verify", str(audit), "--genesis", str(cluster.genesis("authz")), "--json")
    result = json.loads(run_cli(*verify).stdout)
    assert result["ok"] and len(result["entries"]) == len(entries)
    doc["entries"][0]["entry"]["purpose"] = "tax-inspection"  # an entry claiming another purpose
    audit.write_text(json.dumps(doc))
    out = run_cli(*verify, check=False)
    assert out.returncode == 3
    result = json.loads(out.stdout)
    assert not result["ok"] and [r["entry"] for r in result["entries"] if not r["ok"]] == [0]
    assert "the entry's purpose differ from the proven transaction's" in result["entries"][0]["problem"]
