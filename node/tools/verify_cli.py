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
import sys

from node.services.requester import (  # noqa: F401  (re-exported for scripts and tests)
    NotVerified, ask, build_request, check_log, check_reply, provider_key,
)

VERIFY_FAILED = 3


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
    fields = [f for f in args.fields.split(",") if f] if args.fields else None
    args.node = args.address  # for the error hint of cli.main
    verifier = verify_pb2_grpc.VerificationStub(channel(args.address, _client_tls(args), args.server_name))
    try:
        verified = ask(verifier, catalog, provider_key=provider, timeout=args.timeout, key=key,
                       department=args.department, provider=args.provider, item=args.item, fields=fields,
                       predicate=args.predicate, tag=tag, id_number=id_number, oprf_output=oprf_output,
                       consent=args.consent, agreement=args.agreement, purpose=args.purpose, case_id=args.case)
        if args.genesis:
            check_proof(catalog, verified.reply, args.genesis, args.timeout)
    except NotVerified as exc:
        out = {"verified": False, "problem": str(exc), "request_digest": exc.digest.hex()}
        print(json.dumps(out, sort_keys=True) if args.json else f"NOT VERIFIED: {exc}")
        return VERIFY_FAILED
    answer, reply, digest = verified.answer, verified.reply, verified.digest
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
