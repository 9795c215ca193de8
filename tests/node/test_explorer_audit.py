"""POST /api/audit, the citizen audit page's call (docs/design.md, "Explorer and
audit page"): the explorer's route over a real authz ledger and the Audit
service, and its HTTP bounds over a real socket. The page itself is tested in
tests/browser/test_audit_page.py."""
from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace

import pytest

from node.ledger.proofs import verify_inclusion_proof
from node.ledger.query import StateSnapshot
from node.services.audit import AuditService, request_digest
from node.services.explorer import AUDIT_BURST, AUDIT_RATE_PER_S, Explorer
from node.services.http import POST_BODY_BYTES_MAX, HttpRequest
from node.tools.audit_cli import entry_problem
from tests.node.authz_chain import CITIZEN, CITIZEN_2, HOUSING, T0, TAG, TAG_2, AuthzChain, access, bind, consent

NOW = T0 + 5_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """An explorer over an authz chain with one PERMIT entry of TAG (CITIZEN's) and none of TAG_2."""
    chain = AuthzChain(tmp_path_factory.mktemp("explorer-audit") / "authz")
    bind(chain.authn, CITIZEN, TAG)
    bind(chain.authn, CITIZEN_2, TAG_2, event_id="ev-2")
    assert chain.send(CITIZEN, "grant", consent()).status == "OK"
    assert chain.send(HOUSING, "log_access", access(b"\x01" * 32)).status == "OK"
    authz = SimpleNamespace(state=StateSnapshot(chain.ledger), registry=chain.registry, ledger=chain.ledger)
    chains = {"authz": authz, "authn": SimpleNamespace(state=SimpleNamespace(get=chain.authn.state_get)),
              "catalog": SimpleNamespace(state=SimpleNamespace(get=chain.catalog.state_get))}
    host = SimpleNamespace(chains=chains, audit_service=AuditService(chains, clock=lambda: NOW))
    clock = Clock()
    yield SimpleNamespace(chain=chain, explorer=Explorer(host, clock=clock), clock=clock)
    authz.state.close()


_nonce = iter(range(1, 1 << 30))


def body(signer, tag=TAG, **changes) -> dict:
    nonce = next(_nonce).to_bytes(16, "big")
    fields = {"tag": tag, "time_ms": NOW, "nonce": nonce.hex(), "key": bytes(signer.verify_key).hex(),
              "signature": signer.sign(request_digest(tag, NOW, nonce)).signature.hex()}
    return {**fields, **changes}


def post(site, payload, peer="10.0.0.1") -> tuple[str, dict]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    site.clock.now += 1 / AUDIT_RATE_PER_S  # one request per client's refill: the rate limit is its own test
    response = site.explorer.route(HttpRequest("POST", "/api/audit", {}, {}, raw, peer))
    return response.status, json.loads(response.body)


def test_a_signed_request_is_answered_with_entries_whose_proofs_hold(site, caplog):
    caplog.set_level(logging.DEBUG)
    status, page = post(site, body(CITIZEN))
    assert status == "200 OK", page
    assert (page["chain_id"], page["height"], page["more"]) == ("authz", site.chain.ledger.height, False)
    [item] = page["entries"]
    assert (item["entry"]["tag"], item["entry"]["decision"], item["entry"]["requester"]) == \
        (TAG, "PERMIT", "power-company")
    assert verify_inclusion_proof(item["proof"], site.chain.genesis).ok
    assert entry_problem(item["entry"], item["proof"], site.chain.genesis) == ""
    assert TAG not in caplog.text


def test_refusals_carry_the_services_words_and_code(site):
    status, answer = post(site, body(CITIZEN_2, TAG))
    assert status == "403 Forbidden" and answer["code"] == "PERMISSION_DENIED"
    assert answer["error"].startswith(f"permission denied: only the citizen's bound app key or an auditor reads tag "
                                      f"{TAG[:16]}'s access log; key ")
    assert answer["error"].endswith(f"is bound to another subject, not tag {TAG[:16]}")
    replayed = body(CITIZEN)
    assert post(site, replayed)[0] == "200 OK"
    status, answer = post(site, replayed)
    assert status == "403 Forbidden" and answer["error"].startswith("replayed request")
    status, answer = post(site, body(CITIZEN, tag=TAG.upper()))
    assert status == "400 Bad Request" and answer == {"code": "INVALID_ARGUMENT",
                                                      "error": "tag must be a subject tag: 64 lowercase hex digits"}


@pytest.mark.parametrize("payload, message", [
    (b"{not json", "the body must be a JSON object: {tag, time_ms, nonce, key, signature, after?, limit?}"),
    (b"[1]", "the body must be a JSON object"),
    ({"extra": 1}, "unknown field 'extra'; the fields are tag, time_ms, nonce, key, signature, after, limit"),
    ({"signature": None}, "signature must be a string"),
    ({"time_ms": -1}, "time_ms must be an integer in 0..2^64-1"),
    ({"time_ms": True}, "time_ms must be an integer in 0..2^64-1"),
    ({"key": "AB" * 32}, "key must be lowercase hex, at most 128 bytes"),
    ({"limit": 51}, "limit must be 0..50 (0: 50)"),
])
def test_malformed_bodies_are_refused_before_the_service(site, payload, message):
    if isinstance(payload, dict):
        payload = body(CITIZEN, **payload)
    status, answer = post(site, payload)
    assert (status, answer) == ("400 Bad Request", {"error": message})
    missing = body(CITIZEN)
    del missing["nonce"]
    assert post(site, missing) == ("400 Bad Request", {"error": "nonce is missing"})


def test_each_client_is_rate_limited_and_refills():
    clock = Clock()
    explorer = Explorer(SimpleNamespace(chains={}), clock=clock)

    def status(peer):
        return explorer.route(HttpRequest("POST", "/api/audit", {}, {}, b"{}", peer)).status

    assert [status("a") for _ in range(AUDIT_BURST + 1)] == ["400 Bad Request"] * AUDIT_BURST + \
        ["429 Too Many Requests"]
    assert status("b") == "400 Bad Request"  # another client has its own bucket
    clock.now += 1 / AUDIT_RATE_PER_S
    assert [status("a"), status("a")] == ["400 Bad Request", "429 Too Many Requests"]


def _exchange(explorer: Explorer, raw: bytes) -> bytes:
    async def run() -> bytes:
        server = explorer.server()
        port = await server.listen("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(raw)
            await writer.drain()
            answer = await reader.read()
            writer.close()
            return answer
        finally:
            await server.stop()
    return asyncio.run(run())


def test_over_http_only_bounded_json_posts_to_the_audit_path_are_read(site):
    def request(path: str, headers: str, data: bytes = b"") -> str:
        return _exchange(site.explorer, f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode() + data
                         ).split(b"\r\n")[0].decode()

    assert request("/api/chains", "Content-Type: application/json\r\nContent-Length: 2\r\n", b"{}") == \
        "HTTP/1.1 405 Method Not Allowed"
    assert request("/api/audit", "Content-Type: text/plain\r\nContent-Length: 2\r\n", b"{}") == \
        "HTTP/1.1 415 Unsupported Media Type"
    assert request("/api/audit", "Content-Type: application/json\r\n") == "HTTP/1.1 411 Length Required"
    assert request("/api/audit", f"Content-Type: application/json\r\nContent-Length: {POST_BODY_BYTES_MAX + 1}\r\n"
                   ) == "HTTP/1.1 413 Content Too Large"
    signed = json.dumps(body(CITIZEN)).encode()
    site.clock.now += 1 / AUDIT_RATE_PER_S
    answer = _exchange(site.explorer, b"POST /api/audit HTTP/1.1\r\nContent-Type: application/json; charset=utf-8"
                                      b"\r\nContent-Length: %d\r\n\r\n" % len(signed) + signed)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and len(json.loads(payload)["entries"]) == 1
