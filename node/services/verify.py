"""govchain.v1.Verification: the provider's side of a verification query
(docs/design.md, "Verification queries"; proto/govchain/v1/verify.proto is
the contract for clients).

Checks run cheapest first. Until the requester is authenticated (signature,
catalog key with role requester, fresh time, unused nonce) a refusal is a
status and nothing more: unauthenticated garbage never reaches the chain.
From then on every refusal is logged on the authz chain as a DENY entry
before the requester hears of it, and every answer is logged as a PERMIT
entry, committed, before it leaves this node (log before release).

The log entry's transaction is deterministic in the request (its nonce comes
from the request digest, the answer's salt from the provider key and the
digest, Ed25519 signatures are deterministic), so the same request sent
again, after a crash at any step, finds or rebuilds the same transaction:
the same commitment, the same log entry, no second use of a consent.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.signing import SigningKey, VerifyKey
from google.protobuf.message import DecodeError

from node.adapters import AdapterError, PredicateError, Sources, holds, open_sources, predicate_fields
from node.chain.admission import Outcome
from node.chain.stats import COMMIT_LATENCY_BUCKETS_S, Histogram
from node.contracts.catalog import FIELD_RE, ITEM_ID_RE
from node.identity.signers import CATALOG_CHAIN, CATALOG_CONTRACT, check_role, lookup_signer
from node.core import attest
from node.core.config import DEPARTMENT_RE
from node.core.crypto import open_with_signing_key
from node.core.failpoints import fail_point
from node.core.keys import KeyFileError, load_signing_key
from node.core.tx import sign_transaction
from node.identity.oprf import IdNumberError, blind, derive_tag, finalize, normalize_id_number, oprf_input
from node.ledger.query import QueryError, run_query
from node.net.client import aio_channel
from node.net.tls import Material, TlsError
from node.pb import identity_pb2, identity_pb2_grpc, verify_pb2, verify_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = verify_pb2.DESCRIPTOR.services_by_name["Verification"].full_name
AUTHZ_CHAIN = AUTHZ_CONTRACT = "authz"
REQUEST_BYTES_MAX = 16 * 1024
PREDICATE_BYTES_MAX = 4096
SEALED_SUBJECT_BYTES_MAX = 256
FIELDS_MAX = 64
NONCE_BYTES = (16, 32)
IDENTITY_TIMEOUT_S = 5.0  # one OPRF evaluation by the identity service, under a standing agreement
TEXT_CHARS_MAX = 64  # purpose, case id, consent id, agreement id
_TEXT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,63}")
SALT_DOMAIN = b"govchain:v1:answer-salt:"
LOG_NONCE_DOMAIN = b"govchain:v1:log-nonce:"

# DENY reasons: a fixed set, no digits (the authz contract's rule for reasons)
DENY_ITEM_INACTIVE = "the catalog item is not active"
DENY_ITEM_ELSEWHERE = "the catalog item is not answered by this provider"
DENY_MODE = "the item does not allow this answer mode"
DENY_FIELD = "a field outside the catalog item was asked"
DENY_ROLE = "the item does not admit requesters"
DENY_SEALED = "the sealed subject does not open with the provider key"
DENY_TAG = "the tag does not match the ID number"
DENY_TAG_UNVOUCHED = "the identity service gives another tag for the ID number"
DENY_AUTHZ = "the authz contract refused the permit"
DENY_REASONS = (DENY_ITEM_INACTIVE, DENY_ITEM_ELSEWHERE, DENY_MODE, DENY_FIELD, DENY_ROLE, DENY_SEALED, DENY_TAG,
                DENY_TAG_UNVOUCHED, DENY_AUTHZ)


# ---- counts for the metrics endpoint ---------------------------------------------

DECISIONS = ("permit", "deny", "refused")


class VerifyStats:
    """Queries by decision and reason, and their latency by decision, for
    node/services/metrics.py (docs/operations.md, "Metrics"). Plain counts
    observed on the node's event loop, read there at scrape time, as
    node/chain/stats.py; no metrics library here. Reasons are bounded: none
    for a permit, one of DENY_REASONS for a deny (logged as a DENY entry), the
    gRPC status code's name for a refusal (not logged)."""

    def __init__(self) -> None:
        self.queries: dict[tuple[str, str], int] = {("permit", ""): 0, **{("deny", r): 0 for r in DENY_REASONS}}
        self.seconds = {decision: Histogram(COMMIT_LATENCY_BUCKETS_S) for decision in DECISIONS}

    def observe(self, decision: str, reason: str, seconds: float) -> None:
        self.queries[(decision, reason)] = self.queries.get((decision, reason), 0) + 1
        self.seconds[decision].observe(seconds)


# ---- sealing (shared with the requester's CLI) ----------------------------------

def seal_to(reply_key: bytes, data: bytes) -> bytes:
    return SealedBox(PublicKey(reply_key)).encrypt(data)


def open_reply(private: PrivateKey, sealed: bytes) -> bytes:
    return SealedBox(private).decrypt(sealed)


# ---- the request ----------------------------------------------------------------

class Refusal(Exception):
    """A request refused with a status; `deny` set: logged as a DENY entry
    first. `logged`: the DENY reason once it is logged (counted as a deny)."""

    def __init__(self, code: grpc.StatusCode, message: str, deny: str | None = None,
                 logged: str | None = None) -> None:
        super().__init__(message)
        self.code, self.deny, self.logged = code, deny, logged


def _bad(message: str) -> Refusal:
    return Refusal(grpc.StatusCode.INVALID_ARGUMENT, message)


@dataclass
class Checked:
    """A request that passed the shape checks."""

    raw: bytes
    digest: bytes
    signature: bytes
    req: verify_pb2.VerifyRequest
    predicate: dict | None
    fields: list[str]  # the fields asked, or those the predicate reads


def parse(signed: verify_pb2.SignedVerifyRequest) -> Checked:
    """Shape and bounds; raises Refusal(INVALID_ARGUMENT) naming the field."""
    raw = signed.request
    if not raw or len(raw) > REQUEST_BYTES_MAX:
        raise _bad(f"request must be 1-{REQUEST_BYTES_MAX} bytes of a serialized VerifyRequest")
    if len(signed.signature) != 64:
        raise _bad("signature must be 64 bytes (Ed25519)")
    req = verify_pb2.VerifyRequest()
    try:
        req.ParseFromString(raw)
    except DecodeError:
        raise _bad("request does not parse as a VerifyRequest") from None
    if req.SerializeToString(deterministic=True) != raw:
        raise _bad("request is not in deterministic protobuf serialization (unknown fields, or fields out of "
                   "order); serialize it with deterministic=True")
    if not ITEM_ID_RE.fullmatch(req.item):
        raise _bad("item must be a catalog item id, e.g. \"household-registration\"")
    for name in ("tag", "requester_key", "provider_key", "reply_key"):
        if len(getattr(req, name)) != 32:
            raise _bad(f"{name} must be 32 bytes")
    if not 0 < len(req.sealed_subject) <= SEALED_SUBJECT_BYTES_MAX:
        raise _bad(f"sealed_subject must be 1-{SEALED_SUBJECT_BYTES_MAX} bytes (a SealedBox of a SealedSubject)")
    if not NONCE_BYTES[0] <= len(req.nonce) <= NONCE_BYTES[1]:
        raise _bad(f"nonce must be {NONCE_BYTES[0]}-{NONCE_BYTES[1]} random bytes")
    if not req.time_ms:
        raise _bad("time_ms must be the requester's clock in milliseconds since the Unix epoch")
    for name in ("requester", "provider"):
        if not DEPARTMENT_RE.fullmatch(getattr(req, name)):
            raise _bad(f"{name} must be a department id, e.g. \"civil-affairs\"")
    for name in ("purpose", "case_id"):
        if not _TEXT_RE.fullmatch(getattr(req, name)):
            raise _bad(f"{name} must be 1-{TEXT_CHARS_MAX} characters: letters, digits, space, _ . : / -")
    if bool(req.consent_id) == bool(req.agreement_id):
        raise _bad("give exactly one basis: consent_id or agreement_id")
    if not _TEXT_RE.fullmatch(req.consent_id or req.agreement_id):
        raise _bad(f"{'consent_id' if req.consent_id else 'agreement_id'} must be 1-{TEXT_CHARS_MAX} characters: "
                   f"letters, digits, _ . : / -")
    if bool(req.fields) == bool(req.predicate):
        raise _bad("ask exactly one of: fields (answer mode fields) or predicate (answer mode predicate)")
    predicate = None
    if req.fields:
        fields = list(req.fields)
        if len(fields) > FIELDS_MAX or len(set(fields)) != len(fields):
            raise _bad(f"fields must be 1-{FIELDS_MAX} distinct field names")
        for field in fields:
            if not FIELD_RE.fullmatch(field):
                raise _bad("fields: each must be a field name of 1-64 letters, digits, _ . -")
    else:
        if len(req.predicate.encode()) > PREDICATE_BYTES_MAX:
            raise _bad(f"predicate must be at most {PREDICATE_BYTES_MAX} bytes of JSON")
        try:
            predicate = json.loads(req.predicate)
            fields = predicate_fields(predicate)
        except (ValueError, RecursionError) as exc:  # PredicateError is a ValueError
            raise _bad(f"predicate: {exc if isinstance(exc, PredicateError) else 'not valid JSON'}") from None
    return Checked(raw, attest.request_digest(raw), signed.signature, req, predicate, fields)


# ---- the nonce cache ------------------------------------------------------------

class NonceCache:
    """(requester key, nonce) -> request digest, for requests inside the time
    window; on disk (SQLite, synchronous=FULL) so that a restart inside the
    window still refuses a replayed nonce. Rows older than twice the window
    are dropped: a request that old is refused as stale anyway."""

    def __init__(self, path: Path, window_ms: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS nonces (key BLOB, nonce BLOB, digest BLOB, time_ms INTEGER, "
                         "PRIMARY KEY (key, nonce))")
        self._window_ms = window_ms
        self._since_prune = 0

    def claim(self, key: bytes, nonce: bytes, digest: bytes, time_ms: int) -> bytes | None:
        """None when the nonce is this request's (new, or the same request
        again); else the digest of the other request that used it."""
        row = self._db.execute("SELECT digest FROM nonces WHERE key = ? AND nonce = ?", (key, nonce)).fetchone()
        if row is not None:
            return None if row[0] == digest else row[0]
        self._db.execute("INSERT INTO nonces VALUES (?, ?, ?, ?)", (key, nonce, digest, time_ms))
        self._since_prune += 1
        if self._since_prune >= 1000:
            self._since_prune = 0
            self._db.execute("DELETE FROM nonces WHERE time_ms < ?", (int(time.time() * 1000) - 2 * self._window_ms,))
        return None

    def close(self) -> None:
        self._db.close()


# ---- the identity service's word on a tag -----------------------------------------

class TagCheck:
    """Whether a tag is the identity service's for an ID number, asked by the
    provider itself as a window ([verify] identity; docs/design.md,
    "Verification queries"). The requester's OPRF output proves nothing: it
    can hash one of its own making. The provider blinds the ID number like
    any window, so the identity service still sees only a random element."""

    def __init__(self, address: str, tls: Material, timeout_s: float = IDENTITY_TIMEOUT_S) -> None:
        self._address = address
        self._stub = identity_pb2_grpc.IdentityStub(aio_channel(address, tls))
        self._timeout = timeout_s

    async def tag_of(self, id_number: str) -> bytes:
        state, blinded = blind(id_number)
        try:
            reply = await self._stub.Evaluate(identity_pb2.EvaluateRequest(blinded=blinded), timeout=self._timeout)
            return finalize(state, reply.evaluated)
        except grpc.aio.AioRpcError as exc:
            problem = f"{exc.code().name}: {exc.details()}"
        except ValueError as exc:  # not a group element
            problem = str(exc)
        raise Refusal(grpc.StatusCode.UNAVAILABLE, f"the identity service at {self._address} did not evaluate the "
                      f"tag ({problem}); nothing was logged; send the same request again")


# ---- the service ----------------------------------------------------------------

def minimal_answer(record: dict | None, checked: Checked) -> dict:
    """{"found": false}, {"found": true, "holds": bool}, or {"found": true, "fields": {...}}."""
    if record is None:
        return {"found": False}
    if checked.predicate is not None:
        return {"found": True, "holds": holds(record, checked.predicate)}
    return {"found": True, "fields": {k: v.hex() if isinstance(v, bytes) else v for k, v in record.items()}}


class VerificationService(verify_pb2_grpc.VerificationServicer):
    def __init__(self, *, department: str, key: SigningKey, sources: Sources, catalog, authz,
                 nonces: NonceCache, window_s: int, commit_wait_s: int, clock=time.time,
                 stats: VerifyStats | None = None, tag_check: TagCheck | None = None) -> None:
        self._department = department
        self._key = key
        self._public = bytes(key.verify_key)
        self._salt_key = hashlib.sha256(b"govchain:v1:answer-salt-key:" + bytes(key)).digest()
        self._sources = sources
        self._catalog = catalog  # ChainNode of the catalog chain
        self._authz = authz  # ChainNode of the authz chain
        self._nonces = nonces
        self._window_ms = window_s * 1000
        self._commit_wait_s = commit_wait_s
        self._clock = clock
        self.stats = stats or VerifyStats()
        self._tag_check = tag_check

    async def Verify(self, request, context):
        """Counted by decision, timed from arrival to the sealed reply or the
        refusal (the log commit wait included)."""
        started = time.monotonic()

        def observe(decision: str, reason: str) -> None:
            # Before the answer leaves: a requester that scrapes right after
            # its answer must see it counted.
            self.stats.observe(decision, reason, time.monotonic() - started)

        try:
            reply = await self._verify(request)
        except Refusal as refusal:
            observe(*(("deny", refusal.logged) if refusal.logged else ("refused", refusal.code.name.lower())))
            await context.abort(refusal.code, str(refusal))
        except asyncio.CancelledError:  # the requester went away
            observe("refused", "cancelled")
            raise
        except Exception:  # a bug: gRPC answers UNKNOWN
            observe("refused", "unknown")
            raise
        observe("permit", "")
        return reply

    # ---- steps ----

    def _authenticate(self, c: Checked) -> None:
        req = c.req
        if req.provider != self._department:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          f"this node answers for {self._department}, the request names provider {req.provider}")
        if req.provider_key != self._public:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          f"the subject is sealed to key {req.provider_key.hex()[:16]}, this node's provider key is "
                          f"{self._public.hex()[:16]} (look it up in the catalog: {self._department}'s key with "
                          f"role provider)")
        skew_ms = int(self._clock() * 1000) - req.time_ms
        if abs(skew_ms) > self._window_ms:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          f"stale request: time_ms is {abs(skew_ms) / 1000:.1f} s {'behind' if skew_ms > 0 else 'ahead of'} "
                          f"this node's clock; the window is {self._window_ms // 1000} s")
        try:
            VerifyKey(req.requester_key).verify(attest.request_signing_bytes(c.digest), c.signature)
        except BadSignatureError:
            raise Refusal(grpc.StatusCode.UNAUTHENTICATED,
                          "signature does not verify with requester_key over the request digest") from None
        signer = lookup_signer(self._catalog_read, req.requester_key)
        rule = "the requester key must be registered in the catalog with role requester for its department"
        if signer is None:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                          f"{rule}; key {req.requester_key.hex()[:16]} is not registered")
        problem = check_role(signer, "requester")
        if problem is None and signer.department != req.requester:
            problem = f"key {req.requester_key.hex()[:16]} is {signer.department}'s, not {req.requester}'s"
        if problem is not None:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, f"{rule}; {problem}")
        other = self._nonces.claim(req.requester_key, req.nonce, c.digest, req.time_ms)
        if other is not None:
            raise Refusal(grpc.StatusCode.ALREADY_EXISTS,
                          f"replayed nonce: this requester key used it for request {other.hex()[:16]}; "
                          f"every request needs a fresh nonce")

    def _catalog_read(self, contract: str, key: bytes) -> bytes | None:
        return self._catalog.state.get(contract, key)

    def _check_item(self, c: Checked) -> None:
        raw = self._catalog_read(CATALOG_CONTRACT, b"item/" + c.req.item.encode())
        item = json.loads(raw) if raw is not None else None
        if item is None or item["status"] != "active":
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                          f"catalog item {c.req.item} is {'not registered' if item is None else item['status']}",
                          DENY_ITEM_INACTIVE)
        if item["department"] != self._department or c.req.item not in self._sources.mappings:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                          f"catalog item {c.req.item} is {item['department']}'s"
                          f"{'' if item['department'] != self._department else ', but this node has no source for it'}",
                          DENY_ITEM_ELSEWHERE)
        mode = "predicate" if c.predicate is not None else "fields"
        if mode not in item["answer_modes"]:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, f"catalog item {c.req.item} answers in mode "
                          f"{', '.join(item['answer_modes'])}, not {mode}", DENY_MODE)
        outside = [f for f in c.fields if f not in item["fields"]]
        if outside:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                          f"field {outside[0]!r} is not a field of catalog item {c.req.item}; its fields: "
                          f"{', '.join(item['fields'])}", DENY_FIELD)
        if "requester" not in item["requester_roles"]:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, f"catalog item {c.req.item} admits roles "
                          f"{', '.join(item['requester_roles'])}, not requester", DENY_ROLE)

    def _open_subject(self, c: Checked) -> str:
        subject = verify_pb2.SealedSubject()
        try:
            subject.ParseFromString(open_with_signing_key(self._key, c.req.sealed_subject))
            id_number = normalize_id_number(subject.id_number)
        except (CryptoError, DecodeError, IdNumberError):
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "sealed_subject does not open with this provider's "
                          "key into a SealedSubject with a valid ID number", DENY_SEALED) from None
        if derive_tag(oprf_input(id_number), subject.oprf_output) != c.req.tag:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "the tag does not match the sealed ID number",
                          DENY_TAG)
        return id_number

    async def _check_tag(self, c: Checked, id_number: str) -> None:
        """Under a standing agreement, with [verify] identity: the tag is the
        identity service's for the ID number. (Under a consent the authz
        contract already binds the tag to the citizen who granted it.)"""
        if not c.req.agreement_id or self._tag_check is None:
            return
        if await self._tag_check.tag_of(id_number) != c.req.tag:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "the identity service gives another tag for the sealed "
                          "ID number: under a standing agreement the tag must be the citizen's own", DENY_TAG_UNVOUCHED)

    def _salt(self, digest: bytes) -> bytes:
        return hmac.new(self._salt_key, SALT_DOMAIN + digest, hashlib.sha256).digest()

    def _entry(self, c: Checked, decision: str, reason: str, answer) -> tuple[dict, bytes, bytes, bytes]:
        """(log_access payload, commitment, attestation, salt)."""
        salt = self._salt(c.digest)
        commitment = attest.answer_commitment(salt, answer)
        attestation = self._key.sign(attest.attestation_digest(c.digest, commitment, decision)).signature
        req = c.req
        entry = {"request_digest": c.digest.hex(), "requester": req.requester, "requester_key": req.requester_key.hex(),
                 "requester_signature": c.signature.hex(), "provider": req.provider, "item": req.item,
                 "tag": req.tag.hex(), "fields": list(req.fields) if req.fields else None,
                 "predicate": c.predicate is not None, "purpose": req.purpose, "case_id": req.case_id,
                 "basis": {"consent": req.consent_id} if req.consent_id else {"agreement": req.agreement_id},
                 "decision": decision, "reason": reason, "answer_commitment": commitment.hex(),
                 "attestation": attestation.hex()}
        return entry, commitment, attestation, salt

    def _logged(self, digest: bytes) -> dict | None:
        """The authz chain's entry for this request digest, from the durable state."""
        try:
            raw = run_query(self._authz.registry, self._authz.state, chain_id=AUTHZ_CHAIN, contract=AUTHZ_CONTRACT,
                            method="access", args=json.dumps({"request_digest": digest.hex()}).encode())
        except QueryError as exc:
            raise Refusal(grpc.StatusCode.UNAVAILABLE, f"the authz chain cannot be read here: {exc}") from None
        found = json.loads(raw)
        return found.get("entry") if isinstance(found, dict) else None

    async def _log(self, c: Checked, entry: dict):
        """Submit the entry's deterministic transaction and wait for its
        receipt (log before release). Already submitted or committed (a
        re-delivery): the same transaction, so the same receipt."""
        nonce = int.from_bytes(hashlib.sha256(LOG_NONCE_DOMAIN + c.digest).digest()[:8], "big") >> 1
        tx = sign_transaction(self._key, chain_id=AUTHZ_CHAIN, nonce=nonce, contract=AUTHZ_CONTRACT,
                              method="log_access", payload=json.dumps(entry, sort_keys=True,
                                                                      separators=(",", ":")).encode())
        if self._authz.ledger.receipt(tx.id) is None:
            admission = await self._authz.admit(tx)
            if admission.outcome is Outcome.PERMISSION_DENIED:
                raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                              f"this node's [verify] key_file cannot log accesses: {admission.error}")
            if admission.outcome not in (Outcome.ADMITTED, Outcome.ALREADY_EXISTS):
                raise Refusal(grpc.StatusCode.UNAVAILABLE, f"the authz chain did not take the log entry: "
                              f"{admission.error}; send the same request again")
        fail_point("verify-submitted")
        try:
            receipt = await asyncio.wait_for(self._authz.wait_committed(tx.id), self._commit_wait_s)
        except asyncio.TimeoutError:
            raise Refusal(grpc.StatusCode.DEADLINE_EXCEEDED,
                          f"the log entry {tx.id.hex()} did not commit within {self._commit_wait_s} s; nothing was "
                          f"released; send the same request again") from None
        fail_point("verify-logged")
        return tx.id, receipt

    async def _deny(self, c: Checked, refusal: Refusal) -> Refusal:
        entry = self._entry(c, "DENY", refusal.deny, None)[0]
        tx_id, receipt = await self._log(c, entry)
        if receipt.status != "OK":
            return Refusal(refusal.code, f"{refusal}; the DENY entry was not logged: {receipt.message}")
        return Refusal(refusal.code, f"{refusal}; logged as DENY in {tx_id.hex()} at authz height {receipt.height}",
                       logged=refusal.deny)

    async def _verify(self, signed) -> verify_pb2.VerifyReply:
        c = parse(signed)
        self._authenticate(c)
        logged = self._logged(c.digest)
        if logged is not None and logged.get("decision") == "DENY":
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                          f"this request was refused and logged as DENY: {logged.get('reason')}",
                          logged=logged.get("reason") if logged.get("reason") in DENY_REASONS else None)
        try:
            self._check_item(c)
            id_number = self._open_subject(c)
            if logged is None:  # a re-delivery passed the check when it was logged
                await self._check_tag(c, id_number)
        except Refusal as refusal:
            if refusal.deny is None:  # the identity service did not answer: nothing to log
                raise
            raise await self._deny(c, refusal) from None
        try:
            record = await asyncio.get_running_loop().run_in_executor(
                None, self._sources.lookup, c.req.item, id_number, c.fields)
            answer = minimal_answer(record, c)
        except (AdapterError, PredicateError) as exc:
            raise Refusal(grpc.StatusCode.UNAVAILABLE, f"the data source cannot answer: {exc}") from None
        entry, commitment, attestation, salt = self._entry(c, "PERMIT", "", answer)
        if logged is not None and logged.get("answer_commitment") != commitment.hex():
            raise Refusal(grpc.StatusCode.ABORTED, "this request was logged with another answer: the data changed "
                          "since; nothing is released; send a new request")
        tx_id, receipt = await self._log(c, entry)
        if receipt.status != "OK":
            log.info("authz refused the permit for request %s: %s", c.digest.hex()[:16], receipt.message)
            denied = await self._deny(c, Refusal(grpc.StatusCode.PERMISSION_DENIED, receipt.message, DENY_AUTHZ))
            raise denied
        sealed = seal_to(c.req.reply_key, json.dumps({"answer": answer, "salt": salt.hex()}, sort_keys=True,
                                                     separators=(",", ":")).encode())
        return verify_pb2.VerifyReply(sealed_answer=sealed, answer_commitment=commitment, request_digest=c.digest,
                                      attestation=attestation, provider_key=self._public, log_tx_id=tx_id,
                                      log_height=receipt.height, redelivered=logged is not None)


class VerifyConfigError(KeyFileError):
    """The node's [verify] or [[sources]] cannot serve queries (the daemon refuses to start)."""


def register(host, server: grpc.aio.Server) -> str | None:
    """The verification-query service, on a node with [[sources]]
    (node.services.CLIENT_PORT_SERVICES). It needs [verify] key_file, and the
    catalog and authz chains among the node's [[chains]]."""
    config = host.config
    if not config.sources:
        return None
    if config.verify is None:
        raise VerifyConfigError("[[sources]] is set, so this node answers verification queries: add [verify] "
                                "key_file = \"app.key\" (the department's key with role provider)")
    missing = [c for c in (CATALOG_CHAIN, AUTHZ_CHAIN) if c not in host.chains]
    if missing:
        raise VerifyConfigError(f"[[sources]] is set, so this node answers verification queries, which needs the "
                                f"{' and '.join(missing)} chain{'s' if len(missing) > 1 else ''} in [[chains]]")
    try:
        key = load_signing_key(config.verify.key_file)
        sources = open_sources(config.sources)
    except (KeyFileError, AdapterError, OSError, ValueError) as exc:
        raise VerifyConfigError(f"[verify]/[[sources]]: {exc}") from exc
    tag_check = None
    if config.verify.identity is not None:
        try:
            tag_check = TagCheck(str(config.verify.identity), Material.load(
                config.tls.ca, config.verify.identity_cert, config.verify.identity_key))
        except (TlsError, OSError) as exc:
            raise VerifyConfigError(f"[verify] identity_cert/identity_key: {exc}") from exc
    else:
        log.warning("[verify] has no identity: under a standing agreement this node cannot tell a citizen's tag "
                    "from one the requester made up (docs/design.md, \"Verification queries\")")

    nonces = NonceCache(config.data_dir / "verify" / "nonces.sqlite", config.verify.window_s * 1000)
    host.verify_stats = VerifyStats()  # the metrics collector reads it
    verify_pb2_grpc.add_VerificationServicer_to_server(VerificationService(
        department=config.department, key=key, sources=sources, catalog=host.chains[CATALOG_CHAIN],
        authz=host.chains[AUTHZ_CHAIN], nonces=nonces, window_s=config.verify.window_s,
        commit_wait_s=config.verify.commit_wait_s, stats=host.verify_stats, tag_check=tag_check), server)
    return SERVICE_NAME
