"""govchain.v1.Cases: the case driver on the competent department's node
(docs/design.md, "Service items and cases"; proto/govchain/v1/cases.proto is
the contract for clients).

For an open case it asks every input of the rule the case pinned as a
verification query (node/services/requester.py, the code `govchain
verify-query` runs), keeps each answer's opening (answer and salt) here,
records the evidence (digests, commitments, attestations: never an answer)
and the decision on the item chain, then pushes the sealed notice when the
node has a pusher and records its digest.

Every transaction it signs has a nonce derived from the case id and the
method, so a call repeated after a crash rebuilds the same transaction and
finds it committed instead of recording twice.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from nacl.signing import SigningKey

from node.chain.admission import Outcome
from node.contracts._apps import ID_RE
from node.core import codec, rules
from node.core.canonical import canonical_json
from node.core.keys import KeyFileError, load_signing_key
from node.core.tx import sign_transaction
from node.identity.oprf import IdNumberError, derive_tag, normalize_id_number, oprf_input
from node.ledger.query import QueryError, run_query
from node.net.client import channel, stub
from node.pb import cases_pb2, cases_pb2_grpc, verify_pb2_grpc
from node.services import requester
from node.services.signed_reads import (Nonces, Refusal, admit_reader, check_signed, sign_read,
                                        signature_shape_problem)

log = logging.getLogger(__name__)

SERVICE_NAME = cases_pb2.DESCRIPTOR.services_by_name["Cases"].full_name
ITEM_CHAIN = ITEM_CONTRACT = "item"
AUTHN_CHAIN = AUTHN_CONTRACT = "authn"
NEEDED_CHAINS = (ITEM_CHAIN, "catalog", "authz", AUTHN_CHAIN)
NONCE_DOMAIN = b"govchain:v1:case-nonce:"
OPENINGS_DOMAIN = b"govchain:v1:case-openings-request:"


def _subject(case_id: str) -> bytes:
    return hashlib.sha256(case_id.encode()).digest()


def signed_get_case(signing_key, case_id: str, *, time_ms: int | None = None,
                    nonce: bytes | None = None) -> cases_pb2.GetCaseRequest:
    """A GetCaseRequest signed by `signing_key` (a nacl SigningKey), now and with a fresh nonce by default."""
    time_ms = time.time_ns() // 1_000_000 if time_ms is None else time_ms
    nonce = os.urandom(16) if nonce is None else nonce
    return cases_pb2.GetCaseRequest(case_id=case_id, **sign_read(signing_key, OPENINGS_DOMAIN, _subject(case_id),
                                                                 time_ms, nonce))


class Openings:
    """The openings (answer, salt) of each case's evidence commitments, on
    this node only: answers never go on chain (docs/design.md, "Service
    items and cases", "Re-run")."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS openings (case_id TEXT, input TEXT, request_digest TEXT, "
                         "answer TEXT, salt TEXT, PRIMARY KEY (case_id, input))")

    def put(self, case_id: str, name: str, verified: requester.Verified) -> None:
        self._db.execute("INSERT OR REPLACE INTO openings VALUES (?, ?, ?, ?, ?)",
                         (case_id, name, verified.digest.hex(), canonical_json(verified.answer).decode(),
                          verified.salt.hex()))

    def of(self, case_id: str) -> dict[str, dict]:
        rows = self._db.execute("SELECT input, request_digest, answer, salt FROM openings WHERE case_id = ?",
                                (case_id,)).fetchall()
        return {name: {"request_digest": digest, "answer": json.loads(answer), "salt": salt}
                for name, digest, answer, salt in rows}


class CasesService(cases_pb2_grpc.CasesServicer):
    def __init__(self, *, department: str, key: SigningKey, providers: dict[str, str], tls, own_address: str,
                 chains: dict, openings: Openings, timeout_s: int, pusher=None,
                 clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self._department = department
        self._key = key
        self._providers = providers
        self._tls = tls
        self._own_address = own_address
        self._chains = chains
        self._openings = openings
        self._timeout = timeout_s
        self._pusher = pusher
        self._clock = clock
        self._nonces = Nonces(since_ms=clock())

    async def OpenCase(self, request, context):
        try:
            return await self._open(request)
        except Refusal as refusal:
            await context.abort(refusal.code, str(refusal))

    async def GetCase(self, request, context):
        try:
            return self._get(request)
        except Refusal as refusal:
            await context.abort(refusal.code, str(refusal))

    def _get(self, request) -> cases_pb2.CaseReply:
        """The case and its openings for the subject's bound key or an auditor (cases.proto, GetCaseRequest)."""
        problem = ("case_id must be 1-64 of letters, digits, '.', '_', ':', '-' (starting with a letter or digit)"
                   if not ID_RE.fullmatch(request.case_id) else signature_shape_problem(request))
        if problem:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, problem)
        now = self._clock()
        check_signed(request, OPENINGS_DOMAIN, _subject(request.case_id), "SHA-256(case_id)", now, self._nonces)
        case, height = self._query("case", {"case_id": request.case_id})
        if case is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"no case {request.case_id!r} on the item chain (height {height})")
        admit_reader(self._chains, request, case["tag"], now, f"case {case['case_id']}'s openings", self._nonces)
        return self._reply(case, height, openings=True)

    # ---- steps ----

    def _query(self, method: str, args: dict, chain: str = ITEM_CHAIN):
        node = self._chains[chain]
        try:
            raw = run_query(node.registry, node.state, chain_id=chain, contract=chain, method=method,
                            args=json.dumps(args).encode())
        except QueryError as exc:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        return json.loads(raw), node.state.height

    def _reply(self, case: dict, height: int, *, openings: bool = False) -> cases_pb2.CaseReply:
        """The case; its openings only for GetCase's signed reader (anyone holding the public open_case
        transaction, the ID number and an OPRF output can call OpenCase again)."""
        return cases_pb2.CaseReply(case_json=canonical_json(case).decode(), height=height,
                                   openings_json=canonical_json(self._openings.of(case["case_id"]) if openings
                                                                else {}).decode())

    async def _commit(self, tx, *, refuse_failed: bool = True):
        """Admit `tx` to its chain (unless it is there) and wait for its receipt."""
        chain = self._chains[tx.chain_id]
        if chain.ledger.receipt(tx.id) is None:
            admission = await chain.admit(tx)
            if admission.outcome not in (Outcome.ADMITTED, Outcome.ALREADY_EXISTS):
                code = (grpc.StatusCode.FAILED_PRECONDITION if admission.outcome is Outcome.PERMISSION_DENIED
                        else grpc.StatusCode.UNAVAILABLE)
                raise Refusal(code, f"the {tx.chain_id} chain did not take {tx.method}: {admission.error}")
        try:
            receipt = await asyncio.wait_for(chain.wait_committed(tx.id), self._timeout)
        except asyncio.TimeoutError:
            raise Refusal(grpc.StatusCode.DEADLINE_EXCEEDED, f"{tx.method} {tx.id.hex()} did not commit within "
                                                             f"{self._timeout} s; call again") from None
        if refuse_failed and receipt.status != "OK":
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION, f"the item chain refused {tx.method}: "
                                                               f"{receipt.message}")
        return receipt

    def _sign(self, case_id: str, method: str, payload: dict):
        nonce = int.from_bytes(hashlib.sha256(NONCE_DOMAIN + f"{case_id}/{method}".encode()).digest()[:8],
                               "big") >> 1
        return sign_transaction(self._key, chain_id=ITEM_CHAIN, nonce=nonce, contract=ITEM_CONTRACT,
                                method=method, payload=canonical_json(payload))

    def _parse(self, request) -> tuple[object, dict, str]:
        """(the open_case transaction, its payload, the normalized ID number)."""
        try:
            tx = codec.from_proto(request.open_case)
            payload = json.loads(tx.payload)
            case_id, tag = payload["case_id"], bytes.fromhex(payload["tag"])
        except (ValueError, TypeError, KeyError, AttributeError):
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "open_case must be a signed item-chain transaction "
                                                            "of method open_case with case_id and tag") from None
        if (tx.chain_id, tx.contract, tx.method) != (ITEM_CHAIN, ITEM_CONTRACT, "open_case"):
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"open_case is {tx.chain_id}/{tx.contract}.{tx.method}, "
                                                            "not item/item.open_case")
        try:
            id_number = normalize_id_number(request.id_number)
        except IdNumberError as exc:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"id_number: {exc}") from None
        if len(request.oprf_output) != 32 or derive_tag(oprf_input(id_number), request.oprf_output) != tag:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "the case's tag does not match the ID number and OPRF "
                                                            "output (`govchain tag --json` prints both)")
        return tx, {**payload, "case_id": case_id}, id_number

    async def _open(self, request) -> cases_pb2.CaseReply:
        tx, payload, id_number = self._parse(request)
        receipt = await self._commit(tx, refuse_failed=False)
        case, _ = self._query("case", {"case_id": payload["case_id"]})
        if receipt.status != "OK" and (case is None or case["opened"]["key"] != tx.sender.hex()):
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION, f"the item chain refused open_case: {receipt.message}")
        if case["department"] != self._department:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION, f"case {case['case_id']} is {case['department']}'s; "
                                                               f"this node drives {self._department}'s cases")
        if case["decision"] is None:
            await self._decide(case, request, id_number)
        case, height = self._query("case", {"case_id": case["case_id"]})
        if case["notice"] is None and self._pusher is not None:
            await self._notify(case)
            case, height = self._query("case", {"case_id": case["case_id"]})
        return self._reply(case, height)

    async def _decide(self, case: dict, request, id_number: str) -> None:
        document, _ = self._query("rule", {"rule_hash": case["rule_hash"]})
        names = [spec["name"] for spec in document["inputs"]]
        consents, agreements = dict(request.consent_ids), dict(request.agreement_ids)
        for name in names:
            if (name in consents) == (name in agreements):
                raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"input {name}: give exactly one basis, "
                                                                "consent_ids or agreement_ids")
        if case["evidence"] is None:
            answers = await asyncio.to_thread(self._ask_all, case, document, request, id_number)
            entries = [{"input": name, "request_digest": v.digest.hex(),
                        "answer_commitment": v.reply.answer_commitment.hex(), "attestation": v.reply.attestation.hex(),
                        "provider_key": v.reply.provider_key.hex(), "log_tx_id": v.reply.log_tx_id.hex(),
                        "log_height": v.reply.log_height} for name, v in answers.items() if v is not None]
            if entries:
                await self._commit(self._sign(case["case_id"], "record_evidence",
                                              {"case_id": case["case_id"], "evidence": entries}))
            opened = {name: None if v is None else v.answer for name, v in answers.items()}
        else:  # re-delivered after the evidence was recorded: decide from the kept openings
            kept = self._openings.of(case["case_id"])
            opened = {name: kept[name]["answer"] if name in kept else None for name in names}
        outcome, reason = rules.decide(document, opened)
        await self._commit(self._sign(case["case_id"], "decide",
                                      {"case_id": case["case_id"], "outcome": outcome, "reason": reason}))

    def _ask_all(self, case: dict, document: dict, request, id_number: str) -> dict:
        """input name -> Verified, or None when the query was refused or did not verify (in a thread)."""
        node = stub(self._own_address, self._tls)
        answers = {}
        for spec in document["inputs"]:
            name, provider = spec["name"], spec["provider"]
            address = self._providers.get(provider)
            if address is None:
                log.warning("case %s: no [cases] providers address for %s", case["case_id"], provider)
                answers[name] = None
                continue
            try:
                key = requester.provider_key(node, provider, self._timeout)
                verified = requester.ask(
                    verify_pb2_grpc.VerificationStub(channel(address, self._tls)), node, provider_key=key,
                    timeout=self._timeout, key=self._key, department=self._department, provider=provider,
                    item=spec["catalog_item"], fields=[spec["field"]] if "field" in spec else None,
                    predicate=canonical_json(spec["predicate"]).decode() if "predicate" in spec else None,
                    tag=bytes.fromhex(case["tag"]), id_number=id_number, oprf_output=request.oprf_output,
                    consent=request.consent_ids.get(name), agreement=request.agreement_ids.get(name),
                    purpose=request.purpose, case_id=case["case_id"])
            except (grpc.RpcError, requester.NotVerified, ValueError) as exc:
                detail = exc.details() if isinstance(exc, grpc.RpcError) else str(exc)
                log.info("case %s: input %s from %s not verified: %s", case["case_id"], name, provider, detail)
                answers[name] = None
                continue
            self._openings.put(case["case_id"], name, verified)
            answers[name] = verified
        return answers

    async def _notify(self, case: dict) -> None:
        event, _ = self._query("event", {"event_id": case["opened"]["authn_event"]}, chain=AUTHN_CHAIN)
        decision = case["decision"]
        item, _ = self._query("item", {"item_id": case["item_id"]})
        notice = {"case_id": case["case_id"], "item_id": case["item_id"], "outcome": case["status"],
                  "reason": decision["reason"], "template": item["notice_template"], "height": decision["height"]}
        digest = await self._pusher.push_notice(tag=case["tag"], recipient_key=bytes.fromhex(event["app_key"]),
                                                notice=notice)
        await self._commit(self._sign(case["case_id"], "record_notice",
                                      {"case_id": case["case_id"], "notice_digest": digest.hex()}))


class CasesConfigError(KeyFileError):
    """The node's [cases] cannot drive cases (the daemon refuses to start)."""


def register(host, server: grpc.aio.Server) -> str | None:
    """The case driver, on a node with [cases] (node.services.CLIENT_PORT_SERVICES)."""
    config = host.config
    if config.cases is None:
        return None
    missing = [c for c in NEEDED_CHAINS if c not in host.chains]
    if missing:
        raise CasesConfigError(f"[cases] drives cases, which needs the {', '.join(missing)} chain(s) in [[chains]]")
    try:
        key = load_signing_key(config.cases.key_file)
    except KeyFileError as exc:
        raise CasesConfigError(f"[cases] key_file: {exc}") from exc
    cases_pb2_grpc.add_CasesServicer_to_server(CasesService(
        department=config.department, key=key, providers=dict(config.cases.providers), tls=host.tls,
        own_address=str(config.client_listen), chains=host.chains,
        openings=Openings(config.data_dir / "cases" / "openings.sqlite"), timeout_s=config.cases.timeout_s,
        pusher=getattr(host, "pusher", None)), server)
    return SERVICE_NAME
