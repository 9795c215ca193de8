"""An authz chain on a real LevelDB ledger and Executor, reading a catalog and
an authn chain whose versioned state the test writes directly (what their
contracts would have stored: docs/design.md, "Consent and the access log
(authz)"). Shared by the authz contract tests and the audit service tests."""
from __future__ import annotations

import hashlib
import json

import nacl.signing

from consensus import messages as m
from consensus.signing import with_signature
from node.contracts import registry_for
from node.core import codec
from node.core.crypto import Ed25519Signer
from node.core.attest import answer_commitment, attestation_digest, request_signing_bytes
from node.core.genesis import make_genesis
from node.core.tx import sign_transaction
from node.ledger.execution import Executor
from node.ledger.ledger import open_ledger
from node.ledger.query import StateSnapshot, run_query

CHAIN = "authz"
T0 = 1_800_000_000_000
DEPTS = ("civil-affairs", "housing-registry", "power-company", "public-security")


def key(name: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(name.encode()).digest())


def hexkey(k: nacl.signing.SigningKey) -> str:
    return bytes(k.verify_key).hex()


NODE_KEYS = [key(f"node-{d}") for d in DEPTS]
HOUSING = key("housing-app")  # provider of "property-owner"
HOUSING_OFFICER = key("housing-officer")  # governance only
POWER = key("power-app")  # requester
CIVIL = key("civil-app")  # requester (another department)
WINDOW = key("civil-window")  # civil-affairs window
CITIZEN = key("citizen-app")
CITIZEN_2 = key("citizen-2-app")
TAG = "ab" * 32
TAG_2 = "cd" * 32


class Versions:
    """Another chain's versioned state: (contract, key) -> [(height, value)];
    `height` grows with every write, like a chain's blocks."""

    def __init__(self) -> None:
        self.writes: dict[tuple[str, bytes], list[tuple[int, bytes | None]]] = {}
        self.height = 0

    def put(self, contract: str, k: bytes, value: dict | None) -> None:
        self.height += 1
        self.writes.setdefault((contract, k), []).append(
            (self.height, None if value is None else json.dumps(value, sort_keys=True).encode()))

    def state_get_at(self, contract: str, k: bytes, height: int) -> bytes | None:
        found = [v for h, v in self.writes.get((contract, k), []) if h <= height]
        return found[-1] if found else None

    def state_get(self, contract: str, k: bytes) -> bytes | None:
        return self.state_get_at(contract, k, self.height)


def item(item_id="property-owner", department="housing-registry", **changes) -> dict:
    return {"item_id": item_id, "department": department, "fields": ["address", "area", "owner_since"],
            "answer_modes": ["fields", "predicate"], "consent_required": True,
            "requester_roles": ["requester", "window"], "status": "active", "since": 1, "retired_at": None,
            "registered_by": hexkey(HOUSING), **changes}


def catalog_state() -> Versions:
    catalog = Versions()
    for d in DEPTS:
        catalog.put("catalog", b"dept/" + d.encode(), {"id": d, "name": d, "validator": True,
                                                       "roles": ["governance", "provider", "requester", "window"],
                                                       "since": 0})
    for k, dept, roles in ((HOUSING, "housing-registry", ["provider", "requester"]),
                           (HOUSING_OFFICER, "housing-registry", ["governance"]),
                           (POWER, "power-company", ["provider", "requester"]),
                           (CIVIL, "civil-affairs", ["requester"]), (WINDOW, "civil-affairs", ["window"])):
        set_key(catalog, k, dept, roles)
    catalog.put("catalog", b"item/property-owner", item())
    catalog.put("catalog", b"item/tax-clear", item("tax-clear", consent_required=False))
    catalog.put("catalog", b"agreement/" + b"aa" * 32, {
        "id": "aa" * 32, "provider": "housing-registry", "requester": "power-company", "items": ["tax-clear"],
        "status": "active"})
    return catalog


def set_key(catalog: Versions, k, dept: str, roles: list[str], status: str = "active") -> None:
    catalog.put("catalog", b"key/" + hexkey(k).encode(), {
        "department": dept, "roles": sorted(roles), "status": status, "since": 0,
        "revoked_at": None if status == "active" else catalog.height + 1})


def bind(authn: Versions, k, tag: str = TAG, *, expires_at_ms: int = T0 + 30 * 60_000, revoked: bool = False,
         event_id: str = "ev-1", window: str = "civil-affairs/window-3") -> None:
    """What authn.record (and revoke) leave: the event and the app key's binding."""
    authn.put("authn", b"event/" + event_id.encode(), {
        "event_id": event_id, "tag": tag, "method": "face-window", "assurance": 4, "app_key": hexkey(k),
        "expires_at_ms": expires_at_ms, "window": window, "recorded_at_ms": T0 - 1000, "height": 1,
        "department": "public-security", "recorder": "ee" * 32, "catalog_height": 1,
        "revoked": {"reason": "error", "height": 2} if revoked else None})
    authn.put("authn", b"binding/" + hexkey(k).encode(), {
        "tag": tag, "assurance": 4, "expires_at_ms": expires_at_ms, "event_id": event_id, "revoked": revoked})


class AuthzChain:
    """The authz chain: blocks of the given transactions, at the given time."""

    def __init__(self, path) -> None:
        self.genesis = make_genesis(CHAIN, [(d, NODE_KEYS[i].verify_key, f"127.0.0.1:{7001 + i}")
                                            for i, d in enumerate(DEPTS)],
                                    contracts=[("authz", 1)], reads=["authn", "catalog"],
                                    founders={d: key(f"founder-{d}") for d in DEPTS})
        self.registry = registry_for(CHAIN, self.genesis.contracts)
        self.ledger = open_ledger(str(path), CHAIN, self.genesis.hash)
        self.catalog, self.authn = catalog_state(), Versions()
        self.executor = Executor(CHAIN, self.registry, self.ledger, reads=("authn", "catalog"),
                                 read_sources={"catalog": self.catalog, "authn": self.authn})
        self.time_ms = T0
        self._nonce = 0

    def tx(self, signer, method: str, payload: dict) -> m.Request:
        self._nonce += 1
        return codec.request_from_tx(sign_transaction(signer, chain_id=CHAIN, nonce=self._nonce, contract="authz",
                                                      method=method, payload=json.dumps(payload).encode()))

    def block(self, *requests: m.Request):
        seq = self.ledger.height + 1
        metadata = codec.encode_read_heights({"authn": self.authn.height, "catalog": self.catalog.height})
        proposal = m.Proposal(chain_id=CHAIN, seq=seq, proposer=0, timestamp_ms=self.time_ms, requests=requests,
                              metadata=metadata)
        link = m.next_link(self.ledger.tip_link, proposal.digest)
        commits = tuple(with_signature(m.Commit(chain_id=CHAIN, view=0, seq=seq, digest=proposal.digest, link=link,
                                                replica=i), Ed25519Signer(NODE_KEYS[i])) for i in range(3))
        b = m.CommittedBlock(proposal=proposal, certificate=m.CommitCertificate(
            chain_id=CHAIN, view=0, seq=seq, digest=proposal.digest, link=link, commits=commits))
        result = self.executor.execute_block(b, self.ledger.tip_header)
        self.ledger.commit_block(b, result.header, result.receipts, result.state_writes)
        return result

    def send(self, signer, method: str, payload: dict):
        return self.block(self.tx(signer, method, payload)).receipts[0]

    def query(self, method: str, **args):
        state = StateSnapshot(self.ledger)
        try:
            return json.loads(run_query(self.registry, state, chain_id=CHAIN, contract="authz", method=method,
                                        args=json.dumps(args).encode()))
        finally:
            state.close()


def consent(**changes) -> dict:
    return {"consent_id": "c-1", "tag": TAG, "grantee": "power-company", "provider": "housing-registry",
            "item": "property-owner", "scope": {"fields": ["address", "area"]}, "purpose": "power-transfer",
            "case_id": "case-7", "not_before_ms": T0 - 1, "expires_at_ms": T0 + 3_600_000, "max_uses": 1,
            **changes}


def access(request_digest: bytes | None = None, *, requester_key=POWER, provider_key=HOUSING,
           decision: str = "PERMIT", answer=True, **changes) -> dict:
    """A log_access payload, signed as the requester and the provider would."""
    digest = request_digest or hashlib.sha256(json.dumps(changes, sort_keys=True).encode()
                                              + decision.encode()).digest()
    commitment = answer_commitment(b"\x07" * 32, answer)
    entry = {"request_digest": digest.hex(), "requester": "power-company", "requester_key": hexkey(requester_key),
             "requester_signature": requester_key.sign(request_signing_bytes(digest)).signature.hex(), "provider": "housing-registry",
             "item": "property-owner", "tag": TAG, "fields": ["address"], "predicate": False,
             "purpose": "power-transfer", "case_id": "case-7", "basis": {"consent": "c-1"}, "decision": decision,
             "answer_commitment": commitment.hex(),
             "attestation": provider_key.sign(attestation_digest(digest, commitment, decision)).signature.hex()}
    if decision == "DENY":
        entry["reason"] = "no-consent"
    entry.update(changes)
    return entry
