"""govchain.v1.Audit: a citizen's access log with inclusion proofs
(docs/design.md, "Citizen audit"; proto/govchain/v1/audit.proto is the
contract).

Each call is checked in this order, cheapest first: the fields' shapes
(INVALID_ARGUMENT), that this node serves the authz chain
(FAILED_PRECONDITION), the signature, freshness and the nonce, then who the
key is (PERMISSION_DENIED; node/services/signed_reads.py). Only then does
the node record the nonce, read the authz contract's per-tag index and
build one proof per entry.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import grpc

from node.core.canonical import canonical_json
from node.ledger.proofs import build_inclusion_proof
from node.ledger.query import run_query
from node.pb import audit_pb2, audit_pb2_grpc
from node.services.signed_reads import (Nonces, Refusal, admit_reader, check_signed, read_digest, sign_read,
                                        signature_shape_problem)

SERVICE_NAME = audit_pb2.DESCRIPTOR.services_by_name["Audit"].full_name
AUTHZ_CHAIN = "authz"
DOMAIN = b"govchain:v1:audit-request:"
LIMIT_MAX = 200
_TAG_RE = re.compile(r"[0-9a-f]{64}")
_CURSOR_RE = re.compile(r"[0-9a-f]{24}")


def request_digest(tag: str, time_ms: int, nonce: bytes) -> bytes:
    """What the caller signs: SHA-256(domain || tag || u64be(time_ms) || u8(len(nonce)) || nonce)."""
    return read_digest(DOMAIN, bytes.fromhex(tag), time_ms, nonce)


def signed_request(signing_key, tag: str, *, time_ms: int, nonce: bytes, after: str = "",
                   limit: int = 0) -> audit_pb2.AuditRequest:
    """An AuditRequest signed by `signing_key` (a nacl SigningKey)."""
    return audit_pb2.AuditRequest(tag=tag, after=after, limit=limit,
                                  **sign_read(signing_key, DOMAIN, bytes.fromhex(tag), time_ms, nonce))


def list_all(stub: audit_pb2_grpc.AuditStub, signing_key, tag: str, *, timeout: float):
    """The client's side: every entry of the tag's log, a freshly signed request per page of 200.
    Returns (the entries, the last reply: its chain_id and height)."""
    import secrets

    entries, after = [], ""
    while True:
        reply = stub.List(signed_request(signing_key, tag, time_ms=time.time_ns() // 1_000_000,
                                         nonce=secrets.token_bytes(16), after=after, limit=LIMIT_MAX), timeout=timeout)
        entries += reply.entries
        if not reply.more:
            return entries, reply
        after = reply.next


def _shape_problem(request) -> str | None:
    if not _TAG_RE.fullmatch(request.tag):
        return "tag must be a subject tag: 64 lowercase hex digits"
    if problem := signature_shape_problem(request):
        return problem
    if request.limit > LIMIT_MAX:
        return f"limit must be 0..{LIMIT_MAX} (0: 50)"
    if request.after and not _CURSOR_RE.fullmatch(request.after):
        return "after must be the `next` cursor of the previous page (24 hex digits), or empty"
    return None


class AuditService(audit_pb2_grpc.AuditServicer):
    def __init__(self, chains: dict, clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self._chains = chains
        self._clock = clock
        self._nonces = Nonces(since_ms=clock())

    async def List(self, request, context):
        try:
            return self.answer(request)
        except Refusal as refusal:
            await context.abort(refusal.code, str(refusal))

    def answer(self, request: audit_pb2.AuditRequest) -> audit_pb2.AuditReply:
        """One page of the request's tag, or Refusal (code, why). Synchronous and bounded by the
        request's limit: the explorer's POST /api/audit calls it on the node's loop too
        (docs/design.md, "Explorer and audit page")."""
        if problem := _shape_problem(request):
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, problem)
        authz = self._chains.get(AUTHZ_CHAIN)
        if authz is None:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          "this node does not serve the authz chain; ask a node that does")
        now = self._clock()
        check_signed(request, DOMAIN, bytes.fromhex(request.tag), "tag", now, self._nonces)
        admit_reader(self._chains, request, request.tag, now, f"tag {request.tag[:16]}'s access log", self._nonces)
        state = authz.state  # one height for the whole page
        args = {"tag": request.tag, "limit": request.limit or 50, **({"after": request.after} if request.after
                                                                        else {})}
        page = json.loads(run_query(authz.registry, state, chain_id=AUTHZ_CHAIN, contract="authz",
                                    method="by_tag", args=json.dumps(args).encode()))
        entries = [audit_pb2.AuditEntry(
            entry_json=canonical_json(e).decode(),
            proof_json=json.dumps(build_inclusion_proof(authz.ledger, bytes.fromhex(e["tx_id"])), sort_keys=True))
            for e in page["items"]]
        return audit_pb2.AuditReply(chain_id=AUTHZ_CHAIN, height=state.height, entries=entries, more=page["more"],
                                    next=page["next"] or "")


def service_for(host) -> AuditService:
    """The node's one AuditService, shared by the client port and the explorer's POST /api/audit, so a
    (key, nonce) pair is answered once by either."""
    service = getattr(host, "audit_service", None)
    if service is None:
        service = host.audit_service = AuditService(host.chains)
    return service


def register(host, server: grpc.aio.Server) -> str | None:
    """The audit, on every node that serves the authz chain (node.services.CLIENT_PORT_SERVICES)."""
    if AUTHZ_CHAIN not in host.chains:
        return None
    audit_pb2_grpc.add_AuditServicer_to_server(service_for(host), server)
    return SERVICE_NAME
