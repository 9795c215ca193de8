"""A test-only stand-in for the authz contract (authz v1), with just the
interface the verification service uses (docs/design.md, "Verification
queries"): `log_access` (role provider; a request digest is logged once:
"already logged at height H") and the `access` query. Consent rules: a
PERMIT citing a consent id that starts with "refuse" fails, like a revoked
consent; `uses/<consent id>` counts the PERMITs that spent a use. Used by
tests/e2e/test_verify.py until the real contract (branch x7-authz) lands;
production nodes never have it."""
from __future__ import annotations

import json

from node.contracts.base import MethodContract, canonical_json, method, query
from node.ledger.execution import ContractError

NAME = "authz"
VERSION = 1


class AuthzStandIn(MethodContract):
    name, version = NAME, VERSION

    @method(role="provider")
    def log_access(self, ctx, args: dict) -> bytes:
        digest = args["request_digest"]
        key = b"access/" + digest.encode()
        found = ctx.get(key)
        if found is not None:
            raise ContractError(f"request {digest[:16]} already logged at height {json.loads(found)['height']}")
        basis = args["basis"]
        if args["decision"] == "PERMIT" and basis.get("consent", "").startswith("refuse"):
            raise ContractError(f"consent {basis['consent']} was revoked")
        ctx.put(key, canonical_json({"entry": args, "height": ctx.height}))
        if args["decision"] == "PERMIT" and "consent" in basis:
            uses = b"uses/" + basis["consent"].encode()
            ctx.put(uses, str(int(ctx.get(uses) or b"0") + 1).encode())
        return b""

    @query
    def access(self, ctx, args: dict):
        found = ctx.get(b"access/" + args["request_digest"].encode())
        return json.loads(found) if found is not None else None


CONTRACT = AuthzStandIn
