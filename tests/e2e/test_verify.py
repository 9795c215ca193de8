"""Verification queries on 4 real node processes (docs/design.md,
"Verification queries"): the provider (housing-registry) answers from a
SQLite source, logs every access on the authz chain before release, and
re-delivers the same answer after a crash. The authz chain runs the test
stand-in (tests/authz_standin_contract.py) until the authz contract lands."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import grpc
import pytest
from nacl.bindings import crypto_scalarmult_ed25519_noclamp
from nacl.public import PrivateKey

from node.adapters import sample
from node.core import attest
from node.core.keys import load_signing_key
from node.core.tx import sign_transaction
from node.identity.oprf import OprfKey, derive_tag, hash_to_group, oprf_input
from node.net.client import channel
from node.pb import client_pb2, verify_pb2, verify_pb2_grpc
from node.tools import localnet
from node.tools.verify_cli import NotVerified, build_request, check_log, check_reply

from .conftest import REPO, run_cli, submit_batch

pytestmark = pytest.mark.e2e
PROVIDER, REQUESTER, OTHER = 0, 2, 1  # housing-registry, power-company, market-regulation
ITEM = "household-registration"
ID = sample.SAMPLE_ID_NUMBERS[0]  # married
OPRF = OprfKey.generate()


def subject(id_number: str) -> tuple[bytes, bytes]:
    """(tag, OPRF output) as a window would get them from the identity service."""
    data = oprf_input(id_number)
    n = crypto_scalarmult_ed25519_noclamp(bytes(OPRF), hash_to_group(data))
    return derive_tag(data, n), n


def _start(spec, env=None) -> None:
    """localnet.start, with the authz stand-in registered (tests/e2e/verify_node.py)."""
    with open(spec.log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "e2e" / "verify_node.py"), "node", "run", "--config",
             str(spec.config)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, start_new_session=True)
    spec.pid_file.write_text(str(proc.pid))


def authz_standin_genesis(net, specs) -> None:
    """The authz chain's genesis names authz v1 (the stand-in, started by _start) and reads the catalog."""
    path = net.genesis("authz")
    genesis = json.loads(path.read_text())
    if {"name": "authz", "version": 1} not in genesis["contracts"]:
        genesis["contracts"].append({"name": "authz", "version": 1})
    genesis["reads"] = sorted(set(genesis.get("reads", [])) | {"catalog"})
    path.write_text(json.dumps(genesis))
    localnet.reseal(specs, path)


def make_cluster(root):
    """4 nodes with catalog and authz chains; housing-registry answers ITEM from the sample SQLite table.
    Also used by scripts/bench-verify."""
    from tests.e2e.conftest import Net

    specs = localnet.create_network(root, nodes=4, chains=("catalog", "authz"))
    net = Net(root, specs, ("catalog", "authz"))
    authz_standin_genesis(net, specs)
    home = localnet.Path(specs[PROVIDER].home)
    sample.write_sqlite(home / "household.db")
    with open(specs[PROVIDER].config, "a") as f:
        f.write("\n" + sample.SOURCES_TOML.format(dir=home) + '\n[verify]\nkey_file = "app.key"\n')
    for spec in specs:
        _start(spec)
    try:
        net.wait_ready(timeout_s=60)
        app = load_signing_key(home / "app.key")
        item = sign_transaction(app, chain_id="catalog", nonce=1, contract="catalog", method="register_item",
                                payload=json.dumps({"item_id": ITEM, "fields": ["status", "household", "district"],
                                                    "answer_modes": ["fields", "predicate"],
                                                    "consent_required": True,
                                                    "requester_roles": ["requester"]}).encode())
        result = submit_batch(net.client(PROVIDER), [item]).results[0]
        assert result.committed and result.receipt.status == client_pb2.Receipt.OK, result
        net.wait_same_head("catalog", range(4), at_least=result.receipt.height)
    except BaseException:
        net.kill_all()
        raise
    return net


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    net = make_cluster(tmp_path_factory.mktemp("verify"))
    try:
        yield net
    finally:
        net.kill_all()


def requester_key(net, i=REQUESTER):
    return load_signing_key(localnet.Path(net.specs[i].home) / "app.key")


def ask(net, *, id_number=ID, tag_of=None, fields=("status",), predicate=None, consent="consent-1", item=ITEM,
        key=None, department=None, time_ms=None, provider_key=None):
    """(SignedVerifyRequest, digest, reply private key, provider key)."""
    tag, n = subject(tag_of or id_number)
    provider = provider_key or bytes(load_signing_key(localnet.Path(net.specs[PROVIDER].home) / "app.key").verify_key)
    reply = PrivateKey.generate()
    signed, digest = build_request(
        key=key or requester_key(net), department=department or net.specs[REQUESTER].department,
        provider=net.specs[PROVIDER].department, provider_key=provider, item=item,
        fields=list(fields) if predicate is None else None, predicate=predicate, tag=tag, id_number=id_number,
        oprf_output=n, consent=consent, agreement=None, purpose="marriage-registration", case_id="case-1",
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


def uses(net, consent: str) -> int:
    reply = net.client(OTHER).QueryState(client_pb2.QueryStateRequest(
        chain_id="authz", contract="authz", key=b"uses/" + consent.encode()), timeout=10)
    return int(reply.value) if reply.found else 0


def test_cli_round_trip_answers_only_the_asked_field_and_logs_it_first(cluster):
    tag, n = subject(ID)
    out = run_cli("verify-query", "--node", cluster.specs[REQUESTER].client, "--address",
                  cluster.specs[PROVIDER].client, "--key", str(localnet.Path(cluster.specs[REQUESTER].home) / "app.key"),
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
        {"field": "status", "op": "eq", "value": "married"}), fields=())
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
    import nacl.signing
    signed, _, _, _ = ask(cluster)
    signed.signature = bytes(64)
    code, message = refused(cluster, signed)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    stranger, _, _, _ = ask(cluster, key=nacl.signing.SigningKey.generate())
    code, message = refused(cluster, stranger)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "is not registered" in message
    # a governance key (officer.key) is registered, but without role requester
    officer = load_signing_key(localnet.Path(cluster.specs[REQUESTER].home) / "officer.key")
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


def test_authz_refusal_releases_nothing_and_logs_a_deny(cluster):
    signed, digest, _, _ = ask(cluster, consent="refuse-revoked")
    code, message = refused(cluster, signed)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "consent refuse-revoked was revoked" in message
    entry = wait_logged(cluster, digest)
    assert entry["decision"] == "DENY" and entry["reason"] == "the authz contract refused the permit"


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
    _start(spec, env={"GOVCHAIN_FAIL_POINT": f"{point}:1"})
    cluster.wait_ready(timeout_s=60)
    consent = f"consent-crash-{point}"
    signed, digest, reply_key, provider = ask(cluster, consent=consent)
    code, _ = refused(cluster, signed)  # the process died (os._exit) before any answer left it
    assert code == grpc.StatusCode.UNAVAILABLE
    localnet.wait_until(lambda: localnet.pid_of(spec) is None, 30, what="the provider to die at the fail point")
    if point == "verify-logged":  # it died after the commit: the entry is on every node
        localnet.wait_until(lambda: logged(cluster, digest) is not None, 30, what="the log entry to commit")
    before = logged(cluster, digest)  # verify-submitted: the entry may or may not have left the node
    _start(spec)  # no fail point this time
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
