"""authz: citizens' consents and the access log of verification queries
(docs/design.md, "Consent and the access log (authz)").

Every validating node enforces a consent when an access is logged: a PERMIT
citing a consent that does not allow it fails the same way on every node,
and a PERMIT spends one use. So a provider and a requester that collude
cannot exceed what the citizen granted; a request digest is logged once, so
re-delivering an answer never spends a second use.

Methods (payloads are JSON objects; unknown and missing fields are refused):
    grant   role citizen (the sender's authn binding is for `tag`), or role
            window with "authn_event" (an authn event for `tag`, in force at
            the block time, recorded at the sender's department's window):
            {"consent_id", "tag", "grantee", "provider", "item",
             "scope": {"fields": [...]} | {"predicate": true}, "purpose",
             "case_id", "not_before_ms", "expires_at_ms", "max_uses", "authn_event"?}
            The item must be active on the catalog, the provider's, and
            answer what the scope asks.
    revoke  role citizen, bound to the consent's tag: {"consent_id"}
    log_access  role provider, the sender's department is `provider`:
            {"request_digest", "requester", "requester_key", "requester_signature",
             "provider", "item", "tag", "fields": [...] | null, "predicate": bool,
             "purpose", "case_id", "basis": {"consent": id} | {"agreement": id} | null,
             "decision": "PERMIT" | "DENY", "reason", "answer_commitment", "attestation"}
            requester_signature: the requester key's Ed25519 signature over
            node.core.attest.request_signing_bytes(request digest); attestation: the sender's over
            node.core.attest.attestation_digest. A PERMIT is checked against
            the catalog (item, requester key, agreement) and the consent (see
            `_permit_problem`); DENY is recorded as given (reason: 1..200
            characters, no digits) and never spends.
Queries:
    consent  {"consent_id"} -> the consent or null
    access   {"request_digest"} -> {"entry", "height", "index"} or null
    by_tag   {"tag", "after"?, "limit"?} -> {"items": [entries, oldest first], "more", "next"}
             from the per-tag index; "next" is the cursor of the page's last entry.

State (canonical JSON; every record cites the catalog height it was checked at):
    consent/<consent id>               the consent, with "uses" and "revoked"
    access/<request digest hex>        the access log entry
    tag/<tag>/<height:016x><index:08x> the entry again: the audit's index
"""
from __future__ import annotations

import json
import re

from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from node.contracts._apps import (
    PAGE_DEFAULT, PAGE_MAX, bound_to, hex64, ident, load, milliseconds, one_of, signer, strict, tag_prefix, window_signer,
)
from node.contracts.catalog import FIELD_RE, ITEM_ID_RE
from node.core.canonical import canonical_json
from node.contracts.base import MethodContract, method, query, require_int
from node.identity.signers import CATALOG_CHAIN, CATALOG_CONTRACT, lookup_signer
from node.core.attest import attestation_holds, request_signing_bytes
from node.core.config import DEPARTMENT_RE
from node.identity.citizens import AUTHN_CHAIN, AUTHN_CONTRACT, CITIZEN
from node.ledger.execution import ContractError, TxContext
from node.ledger.query import QueryContext

NAME = "authz"
VERSION = 1

FIELDS_MAX = 64
USES_MAX = 1000
CONSENT_SPAN_MAX_MS = 366 * 24 * 3600 * 1000  # a consent lasts at most a year after it is granted
REASON_CHARS_MAX = 200
DECISIONS = ("PERMIT", "DENY")
GRANT_FIELDS = ("consent_id", "tag", "grantee", "provider", "item", "scope", "purpose", "case_id",
                "not_before_ms", "expires_at_ms", "max_uses")
LOG_FIELDS = ("request_digest", "requester", "requester_key", "requester_signature", "provider", "item", "tag",
              "fields", "predicate", "purpose", "case_id", "basis", "decision", "answer_commitment", "attestation")
_SIG_RE = re.compile(r"[0-9a-f]{128}")
_CURSOR_RE = re.compile(r"[0-9a-f]{24}")
TEXT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,63}")  # purpose, case id, basis ids: no PII by their size
_REASON_RE = re.compile(r"[^\x00-\x1f\x7f0-9]{1,%d}" % REASON_CHARS_MAX)


def _consent_key(consent_id: str) -> bytes:
    return b"consent/" + consent_id.encode()


def _access_key(request_digest: str) -> bytes:
    return b"access/" + request_digest.encode()


def cursor(height: int, index: int) -> str:
    """An entry's place in its tag's index (by_tag "after")."""
    return f"{height:016x}{index:08x}"


# ---- decoding ---------------------------------------------------------------------------------

def _matching(args: dict, field: str, pattern: re.Pattern, what: str) -> str:
    value = args.get(field)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ContractError(f"field {field!r} must be {what}")
    return value


def _text(args: dict, field: str) -> str:
    return _matching(args, field, TEXT_RE, "1-64 characters: letters, digits, space, _ . : / - (starting with a "
                                           "letter or digit)")


def _department(args: dict, field: str) -> str:
    return _matching(args, field, DEPARTMENT_RE, "a department id: lowercase letters, digits and '-' (1-63)")


def _item(args: dict) -> str:
    return _matching(args, "item", ITEM_ID_RE, f"a catalog item id matching {ITEM_ID_RE.pattern}")


def _fields(value: object, field: str) -> list[str]:
    """A non-empty list of distinct field names, sorted."""
    if not isinstance(value, list) or not 1 <= len(value) <= FIELDS_MAX or not all(
            isinstance(f, str) and FIELD_RE.fullmatch(f) for f in value):
        raise ContractError(f"{field} must be a list of 1..{FIELDS_MAX} field names matching {FIELD_RE.pattern}")
    if len(set(value)) != len(value):
        raise ContractError(f"{field} names a field twice")
    return sorted(value)


def _scope(args: dict) -> dict:
    scope = args.get("scope")
    if scope == {"predicate": True}:
        return scope
    if isinstance(scope, dict) and set(scope) == {"fields"}:
        return {"fields": _fields(scope["fields"], "scope.fields")}
    raise ContractError('field \'scope\' must be {"fields": [names]} or {"predicate": true}')


def _basis(args: dict, decision: str) -> dict | None:
    basis = args.get("basis")
    if basis is None and decision == "DENY":  # a refused request may cite nothing
        return None
    if not isinstance(basis, dict) or len(basis) != 1 or not set(basis) <= {"consent", "agreement"}:
        raise ContractError('field \'basis\' must be {"consent": id} or {"agreement": id}'
                            + (" (or null for a DENY)" if decision == "DENY" else ""))
    _text(basis, next(iter(basis)))
    return basis


def _signed(key_hex: str, message: bytes, signature_hex: str) -> bool:
    """An Ed25519 signature checks out (libsodium: small-order and
    non-canonical keys and signatures are refused, the same on every node)."""
    try:
        VerifyKey(bytes.fromhex(key_hex)).verify(message, bytes.fromhex(signature_hex))
        return True
    except (CryptoError, ValueError):
        return False


def _sig(args: dict, field: str) -> str:
    return _matching(args, field, _SIG_RE, "an Ed25519 signature: 128 lowercase hex digits")


# ---- the catalog, read at the block's pinned height --------------------------------------------

def _catalog(ctx: TxContext, key: bytes) -> dict | None:
    return load(lambda k: ctx.read(CATALOG_CHAIN, CATALOG_CONTRACT, k), key)


def _active_item(ctx: TxContext, item_id: str, provider: str) -> dict:
    item = _catalog(ctx, b"item/" + item_id.encode())
    if item is None:
        raise ContractError(f"catalog item {item_id!r} is not registered")
    if item["status"] != "active":
        raise ContractError(f"catalog item {item_id!r} is {item['status']} (since catalog height {item['since']})")
    if item["department"] != provider:
        raise ContractError(f"catalog item {item_id!r} is {item['department']}'s, not {provider}'s")
    return item


def _mode_problem(item: dict, fields: list[str] | None) -> str | None:
    """Whether the item answers this way: a predicate, or these fields."""
    mode = "predicate" if fields is None else "fields"
    if mode not in item["answer_modes"]:
        return f"catalog item {item['item_id']!r} does not answer by {mode} (its answer modes: " \
               f"{', '.join(item['answer_modes'])})"
    if fields is not None and (outside := sorted(set(fields) - set(item["fields"]))):
        return f"catalog item {item['item_id']!r} has no field {', '.join(map(repr, outside))}"
    return None


class AuthzContract(MethodContract):
    name = NAME
    version = VERSION

    # ---- consents ---------------------------------------------------------------------------------

    @method(role=(CITIZEN, "window"))
    def grant(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, GRANT_FIELDS, ("authn_event",))
        consent_id = ident(args, "consent_id")
        tag = hex64(args, "tag", "a subject tag (node/identity/oprf.py)")
        grantee, provider = _department(args, "grantee"), _department(args, "provider")
        item_id, scope = _item(args), _scope(args)
        purpose, case_id = _text(args, "purpose"), _text(args, "case_id")
        not_before, expires = milliseconds(args, "not_before_ms"), milliseconds(args, "expires_at_ms")
        max_uses = require_int(args, "max_uses", low=1, high=USES_MAX)
        if not not_before < expires:
            raise ContractError("field 'expires_at_ms' must be after 'not_before_ms'")
        if not ctx.timestamp_ms < expires <= ctx.timestamp_ms + CONSENT_SPAN_MAX_MS:
            raise ContractError(f"field 'expires_at_ms' must be after the block time {ctx.timestamp_ms} and at most "
                                f"{CONSENT_SPAN_MAX_MS // 86_400_000} days after it (CONSENT_SPAN_MAX_MS)")
        if ctx.get(_consent_key(consent_id)) is not None:
            raise ContractError(f"consent {consent_id!r} already exists")
        granted_by = self._granter(ctx, args, tag)
        for department in {grantee, provider}:
            if _catalog(ctx, b"dept/" + department.encode()) is None:
                raise ContractError(f"department {department!r} is not registered on the catalog chain")
        item = _active_item(ctx, item_id, provider)
        if problem := _mode_problem(item, scope.get("fields")):
            raise ContractError(f"scope: {problem}")
        consent = {"consent_id": consent_id, "tag": tag, "grantee": grantee, "provider": provider, "item": item_id,
                   "scope": scope, "purpose": purpose, "case_id": case_id, "not_before_ms": not_before,
                   "expires_at_ms": expires, "max_uses": max_uses, "uses": 0, "granted_by": granted_by,
                   "height": ctx.height, "granted_at_ms": ctx.timestamp_ms,
                   "catalog_height": ctx.read_height(CATALOG_CHAIN), "revoked": None}
        ctx.put(_consent_key(consent_id), canonical_json(consent))
        return canonical_json(consent)

    @staticmethod
    def _granter(ctx: TxContext, args: dict, tag: str) -> dict:
        """Who grants: the citizen (their binding is for `tag`) or a window
        officer citing an authn event for `tag` recorded at their department."""
        authn_height = ctx.read_height(AUTHN_CHAIN)
        if "authn_event" not in args:
            bound_to(ctx, tag, "grant a consent")
            return {"by": CITIZEN, "key": ctx.sender.hex(), "authn_height": authn_height}
        event_id = ident(args, "authn_event")
        who = window_signer(ctx, "a consent is granted", "grants")
        event = load(lambda k: ctx.read(AUTHN_CHAIN, AUTHN_CONTRACT, k), b"event/" + event_id.encode())
        if event is None:
            raise ContractError(f"authn event {event_id!r} is not recorded on the authn chain "
                                f"(at height {authn_height})")
        if event["tag"] != tag:
            raise ContractError(f"authn event {event_id!r} authenticated another subject, not tag {tag[:16]}")
        if event["revoked"] is not None:
            raise ContractError(f"authn event {event_id!r} was revoked ({event['revoked']['reason']})")
        if not event["recorded_at_ms"] <= ctx.timestamp_ms < event["expires_at_ms"]:
            raise ContractError(f"authn event {event_id!r} is valid until {event['expires_at_ms']} ms; the block "
                                f"time is {ctx.timestamp_ms} ms")
        if event["window"].split("/")[0] != who.department:
            raise ContractError(f"authn event {event_id!r} was recorded at window {event['window']}, not at "
                                f"{who.department}'s")
        return {"by": "window", "key": ctx.sender.hex(), "department": who.department, "authn_event": event_id,
                "authn_height": authn_height}

    @method(role=CITIZEN)
    def revoke(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, ("consent_id",))
        consent_id = ident(args, "consent_id")
        consent = load(ctx.get, _consent_key(consent_id))
        if consent is None:
            raise ContractError(f"no consent {consent_id!r}")
        bound_to(ctx, consent["tag"], f"revoke consent {consent_id!r}")
        if consent["revoked"] is not None:
            raise ContractError(f"consent {consent_id!r} is already revoked (at height {consent['revoked']['height']})")
        consent["revoked"] = {"height": ctx.height, "at_ms": ctx.timestamp_ms, "by": ctx.sender.hex(),
                              "authn_height": ctx.read_height(AUTHN_CHAIN),
                              "catalog_height": ctx.read_height(CATALOG_CHAIN)}
        ctx.put(_consent_key(consent_id), canonical_json(consent))
        return canonical_json(consent)

    # ---- the access log -----------------------------------------------------------------------------

    @method(role="provider")
    def log_access(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, LOG_FIELDS, ("reason",))
        digest = hex64(args, "request_digest", "the request's SHA-256 digest")
        decision = one_of(args, "decision", DECISIONS)
        requester, provider = _department(args, "requester"), _department(args, "provider")
        requester_key = hex64(args, "requester_key", "the requester's Ed25519 public key")
        requester_signature = _sig(args, "requester_signature")
        item_id, tag = _item(args), hex64(args, "tag", "a subject tag (node/identity/oprf.py)")
        fields, predicate = args.get("fields"), args.get("predicate")
        if not isinstance(predicate, bool):
            raise ContractError("field 'predicate' must be true or false")
        if predicate != (fields is None):
            raise ContractError("a request asks a predicate (\"predicate\": true, \"fields\": null) or fields "
                                "(\"predicate\": false, \"fields\": [names]), not both or neither")
        fields = None if fields is None else _fields(fields, "field 'fields'")
        purpose, case_id = _text(args, "purpose"), _text(args, "case_id")
        basis = _basis(args, decision)
        commitment = hex64(args, "answer_commitment", "the salted SHA-256 commitment to the answer")
        attestation = _sig(args, "attestation")
        reason = args.get("reason")
        if decision == "DENY" and not (isinstance(reason, str) and _REASON_RE.fullmatch(reason)):
            raise ContractError(f"a DENY needs field 'reason': 1..{REASON_CHARS_MAX} characters, no digits "
                                f"(no ID number or other data can ride in it)")
        if decision == "PERMIT" and reason not in (None, ""):
            raise ContractError("field 'reason' is for a DENY; a PERMIT carries none (null or \"\")")
        reason = reason or None
        who, catalog_height = signer(ctx)
        if who.department != provider:
            raise ContractError(f"the sender is {who.department}'s key; only {provider} logs its own accesses")
        if (logged := load(ctx.get, _access_key(digest))) is not None:
            raise ContractError(f"request {digest} already logged at height {logged['height']}")
        if not _signed(requester_key, request_signing_bytes(bytes.fromhex(digest)), requester_signature):
            raise ContractError("requester_signature is not requester_key's signature over the request digest")
        if not attestation_holds(ctx.sender, bytes.fromhex(digest), bytes.fromhex(commitment), decision,
                                 bytes.fromhex(attestation)):
            raise ContractError("attestation is not the sender's signature over the attestation digest "
                                "(node/core/attest.py)")
        use = None
        if decision == "PERMIT":
            if problem := self._permit_problem(ctx, args, fields, basis):
                raise ContractError(f"PERMIT refused: {problem}")
            if "consent" in basis:
                use = self._spend(ctx, basis["consent"])
        entry = {"request_digest": digest, "requester": requester, "requester_key": requester_key,
                 "requester_signature": requester_signature, "provider": provider, "provider_key": ctx.sender.hex(),
                 "item": item_id, "tag": tag, "fields": fields, "predicate": predicate, "purpose": purpose,
                 "case_id": case_id, "basis": basis, "decision": decision, "reason": reason, "consent_use": use,
                 "answer_commitment": commitment, "attestation": attestation, "height": ctx.height,
                 "index": ctx.index, "tx_id": ctx.tx_id.hex(), "time_ms": ctx.timestamp_ms,
                 "catalog_height": catalog_height}
        value = canonical_json(entry)
        ctx.put(_access_key(digest), value)
        ctx.put(tag_prefix(tag) + cursor(ctx.height, ctx.index).encode(), value)
        return value

    @staticmethod
    def _permit_problem(ctx: TxContext, args: dict, fields: list[str] | None, basis: dict) -> str | None:
        """Why this PERMIT is not allowed, or None: the catalog (requester key,
        item, answer mode) and then the consent or the agreement it cites."""
        requester, provider, item_id = args["requester"], args["provider"], args["item"]
        key = lookup_signer(lambda contract, k: ctx.read(CATALOG_CHAIN, contract, k),
                            bytes.fromhex(args["requester_key"]))
        if key is None or key.department != requester:
            return f"requester_key is not a registered key of {requester}"
        if key.status != "active":
            return f"requester_key of {requester} was revoked at catalog height {key.revoked_at}"
        try:
            item = _active_item(ctx, item_id, provider)
        except ContractError as exc:
            return str(exc)
        if not set(key.roles) & set(item["requester_roles"]):
            return f"catalog item {item_id!r} answers roles [{', '.join(item['requester_roles'])}]; the " \
                   f"requester's key has [{', '.join(key.roles)}]"
        if problem := _mode_problem(item, fields):
            return problem
        if "agreement" in basis:
            return AuthzContract._agreement_problem(ctx, basis["agreement"], requester, provider, item)
        consent_id = basis["consent"]
        consent = load(ctx.get, _consent_key(consent_id))
        if consent is None:
            return f"no consent {consent_id!r}"
        c, now = consent, ctx.timestamp_ms
        if c["revoked"] is not None:
            return f"consent {consent_id!r} was revoked at height {c['revoked']['height']}"
        if now < c["not_before_ms"]:
            return f"consent {consent_id!r} is not valid before {c['not_before_ms']} ms (block time {now} ms)"
        if now >= c["expires_at_ms"]:
            return f"consent {consent_id!r} expired at {c['expires_at_ms']} ms (block time {now} ms)"
        for field, value in (("tag", args["tag"]), ("grantee", requester), ("provider", provider),
                             ("item", item_id), ("purpose", args["purpose"]), ("case_id", args["case_id"])):
            if c[field] != value:
                asked = value[:16] if field == "tag" else value
                return f"consent {consent_id!r} is for {field} {c[field][:16] if field == 'tag' else c[field]!r}, " \
                       f"not {asked!r}"
        if fields is None and "predicate" not in c["scope"]:
            return f"consent {consent_id!r} allows fields [{', '.join(c['scope']['fields'])}], not a predicate"
        if fields is not None:
            allowed = c["scope"].get("fields", [])
            if outside := sorted(set(fields) - set(allowed)):
                return f"consent {consent_id!r} does not allow field {', '.join(map(repr, outside))} " \
                       f"(its scope: {canonical_json(c['scope']).decode()})"
        if c["uses"] >= c["max_uses"]:
            return f"consent {consent_id!r} has no uses left ({c['uses']} of {c['max_uses']} spent)"
        return None

    @staticmethod
    def _agreement_problem(ctx: TxContext, agreement_id: str, requester: str, provider: str,
                           item: dict) -> str | None:
        if item["consent_required"]:
            return f"catalog item {item['item_id']!r} requires the citizen's consent; an agreement is not enough"
        agreement = _catalog(ctx, b"agreement/" + agreement_id.encode())
        if agreement is None:
            return f"no agreement {agreement_id!r} on the catalog chain"
        if agreement["status"] != "active":
            return f"agreement {agreement_id!r} is {agreement['status']}"
        if (agreement["provider"], agreement["requester"]) != (provider, requester):
            return f"agreement {agreement_id!r} lets {agreement['requester']} ask {agreement['provider']}, " \
                   f"not {requester} ask {provider}"
        if item["item_id"] not in agreement["items"]:
            return f"agreement {agreement_id!r} does not cover item {item['item_id']!r}"
        return None

    @staticmethod
    def _spend(ctx: TxContext, consent_id: str) -> int:
        consent = load(ctx.get, _consent_key(consent_id))
        consent["uses"] += 1
        ctx.put(_consent_key(consent_id), canonical_json(consent))
        return consent["uses"]

    # ---- queries ------------------------------------------------------------------------------------

    @query
    def consent(self, ctx: QueryContext, args: dict) -> dict | None:
        strict(args, ("consent_id",))
        return load(ctx.get, _consent_key(ident(args, "consent_id")))

    @query
    def access(self, ctx: QueryContext, args: dict) -> dict | None:
        strict(args, ("request_digest",))
        entry = load(ctx.get, _access_key(hex64(args, "request_digest", "a request digest")))
        return None if entry is None else {"entry": entry, "height": entry["height"], "index": entry["index"]}

    @query
    def by_tag(self, ctx: QueryContext, args: dict) -> dict:
        strict(args, ("tag",), ("after", "limit"))
        prefix = tag_prefix(hex64(args, "tag", "a subject tag"))
        limit = require_int(args, "limit", low=1, high=PAGE_MAX, default=PAGE_DEFAULT)
        after = args.get("after")
        if after is not None and not (isinstance(after, str) and _CURSOR_RE.fullmatch(after)):
            raise ContractError("field 'after' must be the 'next' cursor of the previous page (24 hex digits)")
        found = ctx.scan(prefix, after=None if after is None else prefix + after.encode(), limit=limit + 1)
        items = [json.loads(value) for _, value in found[:limit]]
        return {"items": items, "more": len(found) > limit,
                "next": cursor(items[-1]["height"], items[-1]["index"]) if items else None}


CONTRACT = AuthzContract
