"""The citizen audit (docs/design.md, "Citizen audit"): the Audit service
over real gRPC (an in-process server on a real authz ledger), and
`govchain audit list` / `audit verify` against it."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from types import SimpleNamespace

import grpc
import pytest

from node.core.genesis import write_genesis
from node.core.keys import generate_key_file
from node.ledger.proofs import verify_inclusion_proof
from node.ledger.query import StateSnapshot
from node.net.client import channel
from node.pb import audit_pb2_grpc
from node.services.audit import DOMAIN, AuditService, signed_request
from node.services import signed_reads
from node.services.signed_reads import FRESHNESS_MS, Nonces, Refusal, check_signed
from node.tools.audit_cli import entry_problem
from node.tools.cli import main
from node.tools.localnet import free_ports
from tests.node.authz_chain import (
    CITIZEN, CITIZEN_2, HOUSING, T0, TAG, TAG_2, AuthzChain, access, bind, consent, key, set_key,
)

NOW = T0 + 5_000
AUDITOR = key("auditor-app")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """An authz chain with two entries of TAG and one of TAG_2, served by the Audit service on a local port."""
    root = tmp_path_factory.mktemp("audit")
    chain = AuthzChain(root / "authz")
    citizen_key = generate_key_file(root / "citizen.key")
    bind(chain.authn, citizen_key, TAG, expires_at_ms=NOW + 600_000, event_id="ev-c")
    bind(chain.authn, CITIZEN, TAG)
    bind(chain.authn, CITIZEN_2, TAG_2, event_id="ev-2")
    set_key(chain.catalog, AUDITOR, "civil-affairs", ["auditor"])
    for signer, tag, cid in ((CITIZEN, TAG, "c-1"), (CITIZEN_2, TAG_2, "c-2")):
        assert chain.send(signer, "grant", consent(consent_id=cid, tag=tag, max_uses=3)).status == "OK"
    for n, (tag, cid, decision) in enumerate(((TAG, "c-1", "PERMIT"), (TAG_2, "c-2", "PERMIT"), (TAG, "c-1", "DENY"))):
        receipt = chain.send(HOUSING, "log_access", access(bytes([n + 1]) * 32, tag=tag, basis={"consent": cid},
                                                           decision=decision))
        assert receipt.status == "OK", receipt.message
    authz = SimpleNamespace(state=StateSnapshot(chain.ledger), registry=chain.registry, ledger=chain.ledger)
    chains = {"authz": authz, "authn": SimpleNamespace(state=SimpleNamespace(get=chain.authn.state_get)),
              "catalog": SimpleNamespace(state=SimpleNamespace(get=chain.catalog.state_get))}
    address = f"127.0.0.1:{free_ports(1)[0]}"
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def serve():
        server = grpc.aio.server()
        audit_pb2_grpc.add_AuditServicer_to_server(AuditService(chains, clock=lambda: NOW), server)
        server.add_insecure_port(address)
        await server.start()
        ready.set()
        await server.wait_for_termination()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield SimpleNamespace(chain=chain, address=address, root=root, citizen_key=citizen_key,
                          stub=audit_pb2_grpc.AuditStub(channel(address)))
    authz.state.close()


_nonce = iter(range(1, 1 << 30))


def ask(node, signer, tag=TAG, *, time_ms=NOW, nonce=None, **kw):
    request = signed_request(signer, tag, time_ms=time_ms, nonce=nonce or next(_nonce).to_bytes(16, "big"), **kw)
    return node.stub.List(request, timeout=10)


def refusal(node, *args, **kw) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        ask(node, *args, **kw)
    return info.value.code(), info.value.details()


def test_a_citizen_sees_only_their_tags_entries_each_with_a_proof_that_holds(node):
    reply = ask(node, node.citizen_key)
    entries = [json.loads(e.entry_json) for e in reply.entries]
    assert [(e["tag"], e["decision"]) for e in entries] == [(TAG, "PERMIT"), (TAG, "DENY")]
    assert reply.chain_id == "authz" and reply.height == node.chain.ledger.height and not reply.more
    for e, raw in zip(entries, reply.entries):
        proof = json.loads(raw.proof_json)
        verdict = verify_inclusion_proof(proof, node.chain.genesis)
        assert verdict.ok and verdict.transaction.id.hex() == e["tx_id"] and verdict.height == e["height"]
        assert entry_problem(e, proof, node.chain.genesis) == ""
    # the other citizen sees theirs only
    assert [json.loads(e.entry_json)["tag"] for e in ask(node, CITIZEN_2, TAG_2).entries] == [TAG_2]


def test_pages_follow_the_next_cursor(node):
    first = ask(node, node.citizen_key, limit=1)
    assert len(first.entries) == 1 and first.more
    second = ask(node, node.citizen_key, limit=1, after=first.next)
    assert json.loads(second.entries[0].entry_json)["decision"] == "DENY" and not second.more


def test_an_auditor_reads_any_tag(node):
    assert len(ask(node, AUDITOR, TAG_2).entries) == 1


def test_stale_and_replayed_requests_are_refused(node):
    code, details = refusal(node, node.citizen_key, time_ms=NOW - FRESHNESS_MS - 1)
    assert code == grpc.StatusCode.PERMISSION_DENIED and details.startswith("stale request: signed at")
    code, _ = refusal(node, node.citizen_key, time_ms=NOW + FRESHNESS_MS + 1)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    nonce = b"n" * 16
    ask(node, node.citizen_key, nonce=nonce)
    code, details = refusal(node, node.citizen_key, nonce=nonce)
    assert code == grpc.StatusCode.PERMISSION_DENIED and details.startswith("replayed request")


def test_a_key_bound_to_another_tag_or_unbound_or_expired_is_refused(node):
    code, details = refusal(node, CITIZEN_2, TAG)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "is bound to another subject" in details
    code, details = refusal(node, key("nobody"))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "has no authn binding" in details
    code, details = refusal(node, HOUSING)  # a catalog key without the role auditor
    assert code == grpc.StatusCode.PERMISSION_DENIED and "has roles [provider, requester], not the role 'auditor'" \
        in details
    expired = key("expired-app")
    bind(node.chain.authn, expired, TAG, expires_at_ms=NOW, event_id="ev-x")
    code, details = refusal(node, expired)
    assert code == grpc.StatusCode.PERMISSION_DENIED and f"expired at {NOW} ms" in details


def test_a_refused_request_does_not_use_up_its_nonce(node):
    """Only answered requests are remembered: keys nobody admits cannot fill the nonce store, and a request
    that failed the who-check (here: signed before the citizen's binding existed) can be sent again."""
    late = key("late-app")
    nonce = b"late-nonce-00001"
    code, _ = refusal(node, late, nonce=nonce)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    bind(node.chain.authn, late, TAG, expires_at_ms=NOW + 600_000, event_id="ev-late")
    assert len(ask(node, late, nonce=nonce).entries) >= 1
    code, details = refusal(node, late, nonce=nonce)
    assert code == grpc.StatusCode.PERMISSION_DENIED and details.startswith("replayed request")


def test_a_full_nonce_store_refuses_new_reads_instead_of_forgetting_fresh_ones(monkeypatch):
    monkeypatch.setattr(signed_reads, "NONCES_MAX", 3)
    nonces = Nonces(since_ms=NOW)
    for n in range(3):
        nonces.record(b"k", bytes([n]), NOW)
    with pytest.raises(Refusal) as full:
        nonces.record(b"k", b"\x09", NOW)
    assert full.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert nonces.used(b"k", b"\x00", NOW + 2 * FRESHNESS_MS)  # still fresh enough to be a replay
    assert not nonces.used(b"k", b"\x00", NOW + 2 * FRESHNESS_MS + 1)  # expired pairs go
    nonces.record(b"k", b"\x09", NOW + 2 * FRESHNESS_MS + 1)


def test_a_request_signed_before_the_service_started_is_refused_as_a_possible_replay():
    """Answered nonces live in memory: after a restart, a request signed before it (still fresh) could have been
    answered already, so it is refused with what to do; one signed after the start is not."""
    nonces = Nonces(since_ms=NOW)
    before = signed_request(CITIZEN, TAG, time_ms=NOW - 1, nonce=b"r" * 16)
    with pytest.raises(Refusal) as refused:
        check_signed(before, DOMAIN, bytes.fromhex(TAG), "tag", NOW + 10, nonces)
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert str(refused.value) == (f"signed at {NOW - 1} ms, before this node's service started at {NOW} ms: it keeps "
                                  "no record of what it answered before, so sign a new request (with a clock that is "
                                  "not behind)")
    check_signed(signed_request(CITIZEN, TAG, time_ms=NOW, nonce=b"r" * 16), DOMAIN, bytes.fromhex(TAG), "tag",
                 NOW + 10, nonces)


def test_bad_shapes_and_a_forged_signature_are_refused(node):
    good = signed_request(node.citizen_key, TAG, time_ms=NOW, nonce=b"f" * 16)
    for change, code, message in (
            ({"tag": TAG.upper()}, grpc.StatusCode.INVALID_ARGUMENT, "tag must be a subject tag"),
            ({"nonce": b"short"}, grpc.StatusCode.INVALID_ARGUMENT, "nonce must be 16..64 random bytes"),
            ({"limit": 201}, grpc.StatusCode.INVALID_ARGUMENT, "limit must be 0..200"),
            ({"after": "zz"}, grpc.StatusCode.INVALID_ARGUMENT, "after must be the `next` cursor"),
            ({"key": bytes(CITIZEN.verify_key)}, grpc.StatusCode.PERMISSION_DENIED, "signature does not verify"),
            ({"time_ms": NOW + 1}, grpc.StatusCode.PERMISSION_DENIED, "signature does not verify")):
        request = type(good)()
        request.CopyFrom(good)
        for field, value in change.items():
            setattr(request, field, value)
        with pytest.raises(grpc.RpcError) as info:
            node.stub.List(request, timeout=10)
        assert (info.value.code(), message in info.value.details()) == (code, True), info.value.details()


# ---- the CLI: audit list, audit verify ----------------------------------------------------------------

def test_audit_list_writes_a_file_that_audit_verify_passes_and_a_tampered_entry_fails(node, capsys):
    genesis_path = node.root / "authz.json"
    write_genesis(genesis_path, node.chain.genesis)
    out = node.root / "audit.json"
    args = ["audit", "list", "--address", node.address, "--insecure", "--key", str(node.root / "citizen.key"),
            "--tag", TAG, "--out", str(out)]
    real_clock = time.time_ns
    try:  # the CLI signs with the wall clock; the test server's clock is NOW
        time.time_ns = lambda: NOW * 1_000_000
        assert main(args) == 0
        listing = capsys.readouterr().out
        assert main([*args[:-2], "--json"]) == 0
    finally:
        time.time_ns = real_clock
    assert "2 access(es) to tag" in listing and "power-company" in listing and "PERMIT, consent c-1" in listing
    listed = json.loads(capsys.readouterr().out)
    assert [e["decision"] for e in listed["entries"]] == ["PERMIT", "DENY"]

    assert main(["audit", "verify", str(out), "--genesis", str(genesis_path)]) == 0
    assert "OK: 2 of 2 entries" in capsys.readouterr().out

    doc = json.loads(out.read_text())
    doc["entries"][1]["entry"]["requester"] = "civil-affairs"  # someone else asked, says the file
    tampered = node.root / "tampered.json"
    tampered.write_text(json.dumps(doc))
    assert main(["audit", "verify", str(tampered), "--genesis", str(genesis_path), "--json"]) == 3
    result = json.loads(capsys.readouterr().out)
    assert [r["ok"] for r in result["entries"]] == [True, False]
    assert result["entries"][1]["problem"] == "the entry's requester differ from the proven transaction's " \
                                              "(altered entry)"
    doc["entries"][1]["entry"]["requester"] = "power-company"
    doc["entries"][0]["proof"]["tx"]["body"] = doc["entries"][0]["proof"]["tx"]["body"][:-2] + "00"
    tampered.write_text(json.dumps(doc))
    assert main(["audit", "verify", str(tampered), "--genesis", str(genesis_path)]) == 3
    text = capsys.readouterr().out
    assert f"BAD: entry #0 (request {'01' * 8}): the transaction body does not match its id" in text
    assert "BAD: 1 of 2 entries of tag" in text  # one of two proven
