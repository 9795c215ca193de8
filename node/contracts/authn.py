"""authn: authentication events the identity service writes (docs/design.md,
"Authentication events").

When a citizen proves who they are (at a window's face camera, in the
government app, by password and SMS code), the identity service records
that an authentication happened: the citizen's subject tag, the method by
name and the assurance level it reached, and the citizen's application key
(app_key), which the event binds to the tag until expires_at_ms. A later
consent signed by that app key is the citizen's (issue 11). Never a
biometric, a name or an ID number: the payload schema is strict, an unknown
field is refused.

Methods (role "identity"; payload a JSON object, every field required):
    record  {"event_id", "tag", "method", "assurance", "app_key", "expires_at_ms", "window"}
            event_id   1-64 of letters, digits, . _ : - (unique on the chain)
            tag        the subject tag, 64 lowercase hex (node/identity/oprf.py)
            method     one of METHODS; assurance 1..4, at most the method's ceiling
            app_key    an Ed25519 public key, 64 lowercase hex
            expires_at_ms  after the block time, at most BINDING_TTL_MAX_MS after it
            window     "<department>/<window>", where the citizen authenticated
            An app key bound to another tag by a binding still in force is
            refused; a new event for the same tag renews the binding.
    revoke  {"event_id", "reason"}   reason one of REVOKE_REASONS; only the
            department that recorded the event; its binding ends.
Queries:
    event    {"event_id"} -> the event or null
    by_tag   {"tag", "after"?, "limit"?} -> {"items": [events in event_id order], "more"}
    binding  {"app_key", "at_ms"?} -> null or {"tag", "assurance", "expires_at_ms",
             "event_id", "revoked", "valid"}; valid is null without at_ms, else
             whether the binding is in force at at_ms (not revoked, at_ms < expires_at_ms).
Every event cites the catalog height at which its signer was read.
"""
from __future__ import annotations

import re

from nacl.bindings import crypto_core_ed25519_is_valid_point

from node.contracts._apps import hex64, ident, load, milliseconds, one_of, signer, strict, tag_page, tag_prefix
from node.core.canonical import canonical_json
from node.contracts.base import MethodContract, method, query, require_int
from node.ledger.execution import ContractError, TxContext
from node.ledger.query import QueryContext

NAME = "authn"
VERSION = 1

# method -> the highest assurance level it can reach (1 = low .. 4 = in person with a document).
METHODS = {"face-window": 4, "face-app": 3, "password+sms": 2}
REVOKE_REASONS = ("citizen-request", "device-lost", "error", "suspected-fraud")
BINDING_TTL_MAX_MS = 30 * 60 * 1000
WINDOW_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?/[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RECORD_FIELDS = ("event_id", "tag", "method", "assurance", "app_key", "expires_at_ms", "window")


def _event_key(event_id: str) -> bytes:
    return b"event/" + event_id.encode()


def _binding_key(app_key: str) -> bytes:
    return b"binding/" + app_key.encode()


def _in_force(binding: dict, at_ms: int) -> bool:
    return not binding["revoked"] and at_ms < binding["expires_at_ms"]


class AuthnContract(MethodContract):
    name = NAME
    version = VERSION

    @method(role="identity")
    def record(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, RECORD_FIELDS)
        event_id = ident(args, "event_id")
        if ctx.get(_event_key(event_id)) is not None:
            raise ContractError(f"event {event_id!r} is already recorded")
        tag = hex64(args, "tag", "a subject tag (node/identity/oprf.py)")
        how = one_of(args, "method", sorted(METHODS))
        assurance = require_int(args, "assurance", low=1, high=4)
        if assurance > METHODS[how]:
            raise ContractError(f"method {how!r} reaches at most assurance {METHODS[how]} (got {assurance})")
        app_key = hex64(args, "app_key", "the citizen's application Ed25519 public key")
        if not crypto_core_ed25519_is_valid_point(bytes.fromhex(app_key)):
            raise ContractError("field 'app_key' is not an Ed25519 public key (not a valid curve point)")
        expires = milliseconds(args, "expires_at_ms")
        if not ctx.timestamp_ms < expires <= ctx.timestamp_ms + BINDING_TTL_MAX_MS:
            raise ContractError(f"field 'expires_at_ms' must be after the block time {ctx.timestamp_ms} and at most "
                                f"{BINDING_TTL_MAX_MS // 60000} minutes after it (BINDING_TTL_MAX_MS)")
        window = args["window"]
        if not isinstance(window, str) or not WINDOW_RE.fullmatch(window):
            raise ContractError("field 'window' must be \"<department id>/<window id>\", e.g. "
                                "\"civil-affairs/window-3\"")
        bound = load(ctx.get, _binding_key(app_key))
        if bound is not None and bound["tag"] != tag and _in_force(bound, ctx.timestamp_ms):
            raise ContractError(f"app_key is bound to another subject until {bound['expires_at_ms']} (event "
                                f"{bound['event_id']}); revoke that event first")
        who, catalog_height = signer(ctx)
        event = {"event_id": event_id, "tag": tag, "method": how, "assurance": assurance, "app_key": app_key,
                 "expires_at_ms": expires, "window": window, "recorded_at_ms": ctx.timestamp_ms,
                 "height": ctx.height, "department": who.department, "recorder": ctx.sender.hex(),
                 "catalog_height": catalog_height, "revoked": None}
        self._store(ctx, event)
        ctx.put(_binding_key(app_key), canonical_json(
            {"tag": tag, "assurance": assurance, "expires_at_ms": expires, "event_id": event_id, "revoked": False}))
        return canonical_json(event)

    @method(role="identity")
    def revoke(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, ("event_id", "reason"))
        event_id = ident(args, "event_id")
        reason = one_of(args, "reason", REVOKE_REASONS)
        event = load(ctx.get, _event_key(event_id))
        if event is None:
            raise ContractError(f"no event {event_id!r}")
        who, catalog_height = signer(ctx)
        if who.department != event["department"]:
            raise ContractError(f"event {event_id!r} was recorded by {event['department']}; only that department "
                                f"revokes it (the sender is {who.department}'s)")
        if event["revoked"] is not None:
            raise ContractError(f"event {event_id!r} is already revoked (at height {event['revoked']['height']})")
        event["revoked"] = {"reason": reason, "height": ctx.height, "at_ms": ctx.timestamp_ms,
                            "by": ctx.sender.hex(), "catalog_height": catalog_height}
        self._store(ctx, event)
        bound = load(ctx.get, _binding_key(event["app_key"]))
        if bound is not None and bound["event_id"] == event_id:
            bound["revoked"] = True
            ctx.put(_binding_key(event["app_key"]), canonical_json(bound))
        return canonical_json(event)

    @staticmethod
    def _store(ctx: TxContext, event: dict) -> None:
        value = canonical_json(event)
        ctx.put(_event_key(event["event_id"]), value)
        ctx.put(tag_prefix(event["tag"]) + event["event_id"].encode(), value)

    @query
    def event(self, ctx: QueryContext, args: dict) -> dict | None:
        strict(args, ("event_id",))
        return load(ctx.get, _event_key(ident(args, "event_id")))

    @query
    def by_tag(self, ctx: QueryContext, args: dict) -> dict:
        return tag_page(ctx, args, tag_prefix)

    @query
    def binding(self, ctx: QueryContext, args: dict) -> dict | None:
        strict(args, ("app_key",), ("at_ms",))
        bound = load(ctx.get, _binding_key(hex64(args, "app_key", "an Ed25519 public key")))
        if bound is None:
            return None
        at_ms = milliseconds(args, "at_ms") if args.get("at_ms") is not None else None
        return {**bound, "valid": None if at_ms is None else _in_force(bound, at_ms)}


CONTRACT = AuthnContract
