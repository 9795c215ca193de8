"""`govchain verify-query`: the requester's side of a verification query
(docs/design.md, "Verification queries"; proto/govchain/v1/verify.proto).

Builds and signs the request, sends it to the provider's node, opens the
answer and checks it before printing anything: the provider key registered
in the catalog with role provider for the provider department, the
attestation signed by it, the answer against its commitment, the log entry
committed on the authz chain with this digest, commitment and attestation
(the `access` query and the log transaction's receipt), and, with
--genesis, the Merkle inclusion proof of the log transaction checked
against the authz chain's genesis validators.

Exit codes: 0 verified answer; 1 an RPC error or refusal; 3 the reply does
not verify (nothing of it is printed as an answer); 2 bad input.
"""
from __future__ import annotations

import json
import os
import sys
import time

VERIFY_FAILED = 3


class NotVerified(Exception):
    """The provider's reply does not check out."""


def _catalog_json(client, key: bytes, timeout: float):
    from node.pb import client_pb2

    reply = client.QueryState(client_pb2.QueryStateRequest(chain_id="catalog", contract="catalog", key=key),
                              timeout=timeout)
    return json.loads(reply.value) if reply.found else None


def provider_key(client, provider: str, timeout: float) -> bytes:
    """The provider department's one active catalog key with role provider."""
    keys = _catalog_json(client, f"deptkeys/{provider}".encode(), timeout) or []
    found = [k for k in keys if "provider" in (_catalog_json(client, f"key/{k}".encode(), timeout) or {})
             .get("roles", ())]
    if len(found) != 1:
        raise ValueError(f"department {provider} has {len(found)} active keys with role provider in the catalog; "
                         f"pass --provider-key HEX")
    return bytes.fromhex(found[0])


def build_request(*, key, department: str, provider: str, provider_key: bytes, item: str, fields, predicate,
                  tag: bytes, id_number: str, oprf_output: bytes, consent: str | None, agreement: str | None,
                  purpose: str, case_id: str, reply_public: bytes, time_ms: int | None = None):
    """(SignedVerifyRequest, its digest)."""
    from node.core import attest
    from node.pb import verify_pb2
    from node.services.verify import seal_to_signing_key

    subject = verify_pb2.SealedSubject(id_number=id_number, oprf_output=oprf_output).SerializeToString()
    req = verify_pb2.VerifyRequest(
        item=item, fields=fields or [], predicate=predicate or "", tag=tag,
        sealed_subject=seal_to_signing_key(provider_key, subject), consent_id=consent or "",
        agreement_id=agreement or "", purpose=purpose, case_id=case_id, nonce=os.urandom(24),
        time_ms=time_ms or int(time.time() * 1000), requester=department, requester_key=bytes(key.verify_key),
        provider=provider, provider_key=provider_key, reply_key=reply_public)
    raw = req.SerializeToString(deterministic=True)
    digest = attest.request_digest(raw)
    signature = key.sign(attest.request_signing_bytes(digest)).signature
    return verify_pb2.SignedVerifyRequest(request=raw, signature=signature), digest


def check_reply(reply, *, digest: bytes, provider_key: bytes, reply_private) -> dict:
    """The answer, after checking the attestation and the commitment. Raises NotVerified."""
    from nacl.exceptions import BadSignatureError, CryptoError
    from nacl.signing import VerifyKey

    from node.core import attest
    from node.services.verify import open_reply

    if reply.request_digest != digest:
        raise NotVerified("the reply is for another request digest")
    if reply.provider_key != provider_key:
        raise NotVerified("the reply is signed by another key than the provider's catalog key")
    try:
        VerifyKey(provider_key).verify(attest.attestation_digest(digest, reply.answer_commitment, "PERMIT"),
                                       reply.attestation)
    except (BadSignatureError, ValueError):
        raise NotVerified("the attestation does not verify with the provider's catalog key") from None
    try:
        opened = json.loads(open_reply(reply_private, reply.sealed_answer))
        answer, salt = opened["answer"], bytes.fromhex(opened["salt"])
        commitment = attest.answer_commitment(salt, answer)
    except (CryptoError, ValueError, KeyError, TypeError):
        raise NotVerified("the sealed answer does not open into {answer, salt} with the reply key") from None
    if commitment != reply.answer_commitment:
        raise NotVerified("the answer does not match its commitment")
    return answer


def check_log(client, reply, *, digest: bytes, timeout: float) -> dict:
    """The committed log entry this reply cites. Raises NotVerified."""
    from node.pb import client_pb2

    deadline = time.monotonic() + timeout
    while True:  # the node read may be a block behind the provider's: wait for it, up to the timeout
        read = client.Query(client_pb2.QueryRequest(
            chain_id="authz", contract="authz", method="access",
            args=json.dumps({"request_digest": digest.hex()}).encode()), timeout=timeout)
        found = json.loads(read.result)
        entry = found.get("entry") if isinstance(found, dict) else None
        if entry is not None:
            break
        if read.height >= reply.log_height or time.monotonic() > deadline:
            raise NotVerified(f"the authz chain has no log entry for this request (read at height {read.height})")
        time.sleep(0.1)
    expected = {"decision": "PERMIT", "answer_commitment": reply.answer_commitment.hex(),
                "attestation": reply.attestation.hex()}
    for name, value in expected.items():
        if entry.get(name) != value:
            raise NotVerified(f"the authz log entry's {name} is not the reply's")
    tx = client.GetTransaction(client_pb2.GetTransactionRequest(chain_id="authz", tx_id=reply.log_tx_id),
                               timeout=timeout)
    if tx.receipt.status != client_pb2.Receipt.OK or tx.receipt.height != reply.log_height:
        raise NotVerified(f"log transaction {reply.log_tx_id.hex()} is not committed OK at height {reply.log_height}")
    if json.loads(tx.tx.payload).get("request_digest") != digest.hex():
        raise NotVerified("the log transaction logs another request")
    return entry


class _RemoteLedger:
    """What node.ledger.proofs.build_inclusion_proof reads, over gRPC."""

    def __init__(self, client, genesis, height: int, index: int, timeout: float) -> None:
        from node.core import codec
        from node.pb import client_pb2

        self.chain_id, self.genesis_hash, self.height = genesis.chain_id, genesis.hash, height
        reply = client.GetBlock(client_pb2.GetBlockRequest(chain_id=genesis.chain_id, height=height), timeout=timeout)
        self._block, self._header, self._location = codec.from_proto(reply.block), codec.from_proto(reply.header), \
            (height, index)

    def tx_location(self, tx_id):
        return self._location

    def block(self, height):
        return self._block

    def header(self, height):
        return self._header


def check_proof(client, reply, genesis_path: str, timeout: float) -> None:
    from node.core.genesis import load_genesis
    from node.ledger.proofs import build_inclusion_proof, verify_inclusion_proof
    from node.pb import client_pb2

    genesis = load_genesis(genesis_path)
    tx = client.GetTransaction(client_pb2.GetTransactionRequest(chain_id="authz", tx_id=reply.log_tx_id),
                               timeout=timeout)
    ledger = _RemoteLedger(client, genesis, tx.receipt.height, tx.receipt.index, timeout)
    verdict = verify_inclusion_proof(build_inclusion_proof(ledger, reply.log_tx_id), genesis)
    if not verdict.ok:
        raise NotVerified(f"the inclusion proof of the log entry fails: {verdict.problem}")


def cmd_verify_query(args) -> int:
    from nacl.public import PrivateKey

    from node.core.keys import load_signing_key
    from node.net.client import channel
    from node.pb import verify_pb2_grpc
    from node.tools.cli import _client_tls, _stub

    if bool(args.fields) == bool(args.predicate):
        raise ValueError("give exactly one of --fields a,b and --predicate JSON")
    if bool(args.consent) == bool(args.agreement):
        raise ValueError("give exactly one of --consent ID and --agreement ID")
    if args.predicate:
        json.loads(args.predicate)  # a JSONDecodeError (ValueError) names the position
    id_number = sys.stdin.readline().strip() if args.id_number == "-" else args.id_number
    try:
        tag, oprf_output = bytes.fromhex(args.tag), bytes.fromhex(args.oprf_output)
    except ValueError:
        raise ValueError("--tag and --oprf-output must be hex (`govchain tag --json` prints both)") from None
    key = load_signing_key(args.key)
    catalog = _stub(args)  # --node: a node of the requester's own department to read the chains from
    provider = bytes.fromhex(args.provider_key) if args.provider_key else provider_key(catalog, args.provider,
                                                                                       args.timeout)
    reply_private = PrivateKey.generate()
    fields = [f for f in args.fields.split(",") if f] if args.fields else None
    signed, digest = build_request(
        key=key, department=args.department, provider=args.provider, provider_key=provider, item=args.item,
        fields=fields, predicate=args.predicate, tag=tag, id_number=id_number, oprf_output=oprf_output,
        consent=args.consent, agreement=args.agreement, purpose=args.purpose, case_id=args.case,
        reply_public=bytes(reply_private.public_key))
    args.node = args.address  # for the error hint of cli.main
    reply = verify_pb2_grpc.VerificationStub(channel(args.address, _client_tls(args), args.server_name)).Verify(
        signed, timeout=args.timeout)
    try:
        answer = check_reply(reply, digest=digest, provider_key=provider, reply_private=reply_private)
        check_log(catalog, reply, digest=digest, timeout=args.timeout)
        if args.genesis:
            check_proof(catalog, reply, args.genesis, args.timeout)
    except NotVerified as exc:
        out = {"verified": False, "problem": str(exc), "request_digest": digest.hex()}
        print(json.dumps(out, sort_keys=True) if args.json else f"NOT VERIFIED: {exc}")
        return VERIFY_FAILED
    out = {"verified": True, "answer": answer, "request_digest": digest.hex(),
           "answer_commitment": reply.answer_commitment.hex(), "log_tx_id": reply.log_tx_id.hex(),
           "log_height": reply.log_height, "redelivered": reply.redelivered, "proof_checked": bool(args.genesis)}
    print(json.dumps(out, sort_keys=True, ensure_ascii=False) if args.json else
          f"VERIFIED: {json.dumps(answer, ensure_ascii=False)}\n  logged in {reply.log_tx_id.hex()} at authz height "
          f"{reply.log_height}{' (inclusion proof checked)' if args.genesis else ''}")
    return 0


def register(sub, client_opts) -> None:
    q = sub.add_parser("verify-query", help="ask another department's node a verification query, check the "
                                            "answer, its attestation and its authz log entry",
                       description=__doc__.split("\n\n")[1])
    client_opts(q)
    q.add_argument("--address", required=True, metavar="HOST:PORT", help="the provider's node (client port)")
    q.add_argument("--key", required=True, help="this department's key with role requester")
    q.add_argument("--department", required=True, help="this (the requesting) department")
    q.add_argument("--provider", required=True, help="the providing department")
    q.add_argument("--provider-key", help="its provider key, hex (default: its one provider key in the catalog)")
    q.add_argument("--item", required=True, help="the catalog item")
    q.add_argument("--fields", help="comma-separated fields to ask (answer mode fields)")
    q.add_argument("--predicate", help='a yes/no question as JSON, e.g. {"field":"status","op":"eq","value":"x"}')
    q.add_argument("--tag", required=True, help="the citizen's subject tag (hex)")
    q.add_argument("--oprf-output", required=True, help="the OPRF output the tag was derived from (hex; `govchain tag --json`)")
    q.add_argument("--id-number", required=True, help="the ID number, or - to read it from stdin")
    q.add_argument("--consent", help="the consent id on the authz chain")
    q.add_argument("--agreement", help="the standing agreement id on the catalog chain")
    q.add_argument("--purpose", required=True)
    q.add_argument("--case", required=True, help="the case id")
    q.add_argument("--genesis", help="the authz chain's genesis: also check the log entry's inclusion proof")
    q.set_defaults(func=cmd_verify_query)
