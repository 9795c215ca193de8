"""govchain.v1.Audit: a citizen's access log with inclusion proofs
(docs/design.md, "Citizen audit"; proto/govchain/v1/audit.proto is the
contract).

Each call is checked in this order, cheapest first: the fields' shapes
(INVALID_ARGUMENT), that this node serves the authz chain
(FAILED_PRECONDITION), the signature, freshness and the nonce, then who the
key is (PERMISSION_DENIED). Only then does the node read the authz
contract's per-tag index and build one proof per entry.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable

import grpc
from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from node.core.canonical import canonical_json
from node.identity.citizens import AUTHN_CHAIN, binding_of, binding_problem
from node.identity.signers import CATALOG_CHAIN, check_role, lookup_signer, short
from node.ledger.proofs import build_inclusion_proof
from node.ledger.query import run_query
from node.pb import audit_pb2, audit_pb2_grpc

SERVICE_NAME = audit_pb2.DESCRIPTOR.services_by_name["Audit"].full_name
AUTHZ_CHAIN = "authz"
AUDITOR = "auditor"
DOMAIN = b"govchain:v1:audit-request:"
FRESHNESS_MS = 60_000
NONCE_BYTES = (16, 64)
LIMIT_MAX = 200
NONCES_MAX = 100_000  # answered (key, nonce) pairs remembered within the freshness window
_TAG_RE = re.compile(r"[0-9a-f]{64}")
_CURSOR_RE = re.compile(r"[0-9a-f]{24}")


def request_digest(tag: str, time_ms: int, nonce: bytes) -> bytes:
    """What the caller signs: SHA-256(domain || tag || u64be(time_ms) || u8(len(nonce)) || nonce)."""
    return hashlib.sha256(DOMAIN + bytes.fromhex(tag) + time_ms.to_bytes(8, "big") + bytes([len(nonce)])
                          + nonce).digest()


def signed_request(signing_key, tag: str, *, time_ms: int, nonce: bytes, after: str = "",
                   limit: int = 0) -> audit_pb2.AuditRequest:
    """An AuditRequest signed by `signing_key` (a nacl SigningKey)."""
    return audit_pb2.AuditRequest(tag=tag, time_ms=time_ms, nonce=nonce, key=bytes(signing_key.verify_key),
                                  signature=signing_key.sign(request_digest(tag, time_ms, nonce)).signature,
                                  after=after, limit=limit)


def _shape_problem(request) -> str | None:
    if not _TAG_RE.fullmatch(request.tag):
        return "tag must be a subject tag: 64 lowercase hex digits"
    if len(request.key) != 32:
        return f"key must be an Ed25519 public key of 32 bytes (got {len(request.key)})"
    if len(request.signature) != 64:
        return f"signature must be 64 bytes (got {len(request.signature)})"
    if not NONCE_BYTES[0] <= len(request.nonce) <= NONCE_BYTES[1]:
        return f"nonce must be {NONCE_BYTES[0]}..{NONCE_BYTES[1]} random bytes (got {len(request.nonce)})"
    if request.limit > LIMIT_MAX:
        return f"limit must be 0..{LIMIT_MAX} (0: 50)"
    if request.after and not _CURSOR_RE.fullmatch(request.after):
        return "after must be the `next` cursor of the previous page (24 hex digits), or empty"
    return None


class Refusal(Exception):
    """A request the service does not answer: the gRPC status code and why."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class Nonces:
    """(key, nonce) pairs answered within the freshness window, oldest first."""

    def __init__(self) -> None:
        self._seen: OrderedDict[bytes, int] = OrderedDict()

    def first_use(self, key: bytes, nonce: bytes, now_ms: int) -> bool:
        while self._seen and (next(iter(self._seen.values())) < now_ms - 2 * FRESHNESS_MS
                              or len(self._seen) >= NONCES_MAX):
            self._seen.popitem(last=False)
        pair = key + nonce
        if pair in self._seen:
            return False
        self._seen[pair] = now_ms
        return True


class AuditService(audit_pb2_grpc.AuditServicer):
    def __init__(self, chains: dict, clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self._chains = chains
        self._clock = clock
        self._nonces = Nonces()

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
        try:
            VerifyKey(request.key).verify(request_digest(request.tag, request.time_ms, request.nonce),
                                          request.signature)
        except (CryptoError, ValueError):
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                          "signature does not verify: sign SHA-256(\"govchain:v1:audit-request:\" || tag || "
                          "u64be(time_ms) || u8(len(nonce)) || nonce) with the key's private half") from None
        if abs(now - request.time_ms) > FRESHNESS_MS:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                          f"stale request: signed at {request.time_ms} ms, this node's clock is {now} ms; a "
                          f"request is fresh for {FRESHNESS_MS // 1000} s either side (check the clock)")
        if not self._nonces.first_use(request.key, request.nonce, now):
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                          "replayed request: this key's nonce was already answered; sign a new request")
        code, why = self._refusal(request.key, request.tag, now)
        if why:
            raise Refusal(code, why)
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

    def _refusal(self, key: bytes, tag: str, now_ms: int) -> tuple[grpc.StatusCode, str]:
        """(code, why the key may not read the tag's log) or (OK, "")."""
        authn, catalog = self._chains.get(AUTHN_CHAIN), self._chains.get(CATALOG_CHAIN)
        if authn is None and catalog is None:
            return grpc.StatusCode.FAILED_PRECONDITION, \
                "this node serves neither the authn nor the catalog chain, so it cannot tell who the caller is"
        binding = binding_of(authn.state.get, key) if authn is not None else None
        if binding is not None and binding["tag"] == tag and binding_problem(binding, key, now_ms) is None:
            return grpc.StatusCode.OK, ""
        signer = lookup_signer(catalog.state.get, key) if catalog is not None else None
        if signer is not None and check_role(signer, AUDITOR) is None:
            return grpc.StatusCode.OK, ""
        if binding is not None and binding["tag"] != tag:
            why = f"key {short(key)} is bound to another subject, not tag {tag[:16]}"
        elif signer is not None:
            why = f"{check_role(signer, AUDITOR)}, not the role 'auditor'"
        else:
            why = binding_problem(binding, key, now_ms)
        return grpc.StatusCode.PERMISSION_DENIED, \
            f"permission denied: only the citizen's bound app key or an auditor reads tag {tag[:16]}'s access log; " \
            f"{why}"


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
