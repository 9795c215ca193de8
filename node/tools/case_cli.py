"""`govchain case open | show | rerun`: a service item's cases (docs/design.md,
"Service items and cases"; proto/govchain/v1/cases.proto).

- open: a window (--window-key, citing the citizen's authn event) or the
  citizen (--key, their app key the authn chain binds to the tag) signs the
  item chain's open_case and hands it, with the subject's ID number and OPRF output
  and a consent or agreement per input, to the competent department's node,
  which drives the case to a decision; prints the case.
- show: the case as recorded on the item chain (any node).
- rerun: re-runs the decision from chain data alone, plus the openings of
  the evidence commitments the competent department's node keeps (it gives
  them to the citizen's bound app key or an auditor's key, --key): checks
  the rule text against the hash the case pinned, each opening against its
  commitment, attestation and authz log entry, evaluates the rule again and
  compares with the recorded decision. Exit 0 the same decision, 3 not.
"""
from __future__ import annotations

import json
import os
import sys

RERUN_DIFFERS = 3


def _query(client, chain: str, method: str, args: dict, timeout: float):
    from node.pb import client_pb2

    reply = client.Query(client_pb2.QueryRequest(chain_id=chain, contract=chain, method=method,
                                                 args=json.dumps(args).encode()), timeout=timeout)
    return json.loads(reply.result), reply.height


def _pairs(values, flag: str) -> dict[str, str]:
    out = {}
    for value in values or ():
        name, sep, ident = value.partition("=")
        if not sep or not name or not ident:
            raise ValueError(f"{flag} takes INPUT=ID, e.g. {flag} owner_is_subject=consent-17 (got {value!r})")
        out[name] = ident
    return out


def _print_case(case: dict, height: int, as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        print(json.dumps({"case": case, "height": height, **(extra or {})}, sort_keys=True, ensure_ascii=False))
        return
    decision = case.get("decision") or {}
    print(f"case {case['case_id']} ({case['item_id']}, {case['department']}): {case['status']}")
    print(f"  rule {case['rule_hash']}")
    for entry in (case.get("evidence") or {}).get("entries", []):
        print(f"  evidence {entry['input']}: request {entry['request_digest'][:16]} from {entry['provider']}, "
              f"logged at authz height {entry['log_height']}")
    if decision:
        print(f"  decision {decision['outcome']} at height {decision['height']}: {decision['reason']}")
    if case.get("notice"):
        print(f"  notice {case['notice']['notice_digest'][:16]} at height {case['notice']['height']}")


def cmd_case_open(args) -> int:
    from node.core import codec
    from node.core.keys import load_signing_key
    from node.core.tx import sign_transaction
    from node.pb import cases_pb2, cases_pb2_grpc
    from node.net.client import channel
    from node.tools.cli import _client_tls

    id_number = sys.stdin.readline().strip() if args.id_number == "-" else args.id_number
    consents, agreements = _pairs(args.consent, "--consent"), _pairs(args.agreement, "--agreement")
    if (args.window_key is None) != (args.authn_event is None):
        raise ValueError("a window opens a case with --window-key and --authn-event; the citizen with --key "
                         "(their bound app key) and no --authn-event")
    key = load_signing_key(args.window_key or args.key)
    payload = {"case_id": args.case, "item_id": args.item, "tag": args.tag}
    if args.window_key is not None:
        payload["authn_event"] = args.authn_event
    tx = sign_transaction(key, chain_id="item", nonce=int.from_bytes(os.urandom(7), "big"), contract="item",
                          method="open_case", payload=json.dumps(payload, sort_keys=True).encode())
    stub = cases_pb2_grpc.CasesStub(channel(args.node, _client_tls(args), args.server_name))
    reply = stub.OpenCase(cases_pb2.OpenCaseRequest(
        open_case=codec.to_proto(tx), id_number=id_number, oprf_output=bytes.fromhex(args.oprf_output),
        consent_ids=consents, agreement_ids=agreements, purpose=args.purpose), timeout=args.timeout)
    _print_case(json.loads(reply.case_json), reply.height, args.json)
    return 0


def cmd_case_show(args) -> int:
    from node.tools.cli import _stub

    case, height = _query(_stub(args), "item", "case", {"case_id": args.case_id}, args.timeout)
    if case is None:
        raise ValueError(f"no case {args.case_id!r} on the item chain (height {height})")
    _print_case(case, height, args.json)
    return 0


class Differs(Exception):
    """The re-run does not reproduce the recorded decision, or a check fails."""


def rerun(client, openings: dict, case: dict, timeout: float) -> tuple[str, str]:
    """(outcome, reason) re-derived from chain data and the openings; raises
    Differs when the rule or an opening does not check out against the chain."""
    from node.core import attest, rules

    document, _ = _query(client, "item", "rule", {"rule_hash": case["rule_hash"]}, timeout)
    if document is None or rules.rule_hash(document) != case["rule_hash"]:
        raise Differs(f"the item chain has no rule document with hash {case['rule_hash']}")
    answers: dict = {spec["name"]: None for spec in document["inputs"]}
    for entry in (case.get("evidence") or {}).get("entries", []):
        name = entry["input"]
        opening = openings.get(name)
        if opening is None or opening["request_digest"] != entry["request_digest"]:
            raise Differs(f"input {name}: the competent department's node has no opening of request "
                          f"{entry['request_digest'][:16]}")
        digest, commitment = bytes.fromhex(entry["request_digest"]), bytes.fromhex(entry["answer_commitment"])
        if attest.answer_commitment(bytes.fromhex(opening["salt"]), opening["answer"]) != commitment:
            raise Differs(f"input {name}: the opening does not match the answer commitment on chain")
        if not attest.attestation_holds(bytes.fromhex(entry["provider_key"]), digest, commitment, "PERMIT",
                                        bytes.fromhex(entry["attestation"])):
            raise Differs(f"input {name}: the attestation does not verify with the provider key") from None
        logged, _ = _query(client, "authz", "access", {"request_digest": entry["request_digest"]}, timeout)
        logged = (logged or {}).get("entry") or {}
        if (logged.get("decision"), logged.get("answer_commitment"), logged.get("attestation")) != \
                ("PERMIT", entry["answer_commitment"], entry["attestation"]):
            raise Differs(f"input {name}: the authz log entry of request {entry['request_digest'][:16]} is not "
                          "a PERMIT with this commitment and attestation")
        answers[name] = opening["answer"]
    return rules.decide(document, answers)


def cmd_case_rerun(args) -> int:
    from node.core.keys import load_signing_key
    from node.net.client import channel
    from node.pb import cases_pb2_grpc
    from node.services.cases import signed_get_case
    from node.tools.cli import _client_tls, _stub

    client = _stub(args)
    case, height = _query(client, "item", "case", {"case_id": args.case_id}, args.timeout)
    if case is None:
        raise ValueError(f"no case {args.case_id!r} on the item chain (height {height})")
    if case.get("decision") is None:
        raise ValueError(f"case {args.case_id!r} has no decision yet (item height {height})")
    competent = cases_pb2_grpc.CasesStub(channel(args.address or args.node, _client_tls(args), args.server_name))
    openings = json.loads(competent.GetCase(signed_get_case(load_signing_key(args.key), args.case_id),
                                            timeout=args.timeout).openings_json)
    recorded = case["decision"]
    try:
        outcome, reason = rerun(client, openings, case, args.timeout)
        if (outcome, reason) != (recorded["outcome"], recorded["reason"]):
            raise Differs(f"the re-run gives {outcome} ({reason}); the chain records {recorded['outcome']} "
                          f"({recorded['reason']})")
    except Differs as exc:
        out = {"same": False, "problem": str(exc), "recorded": recorded["outcome"]}
        print(json.dumps(out, sort_keys=True) if args.json else f"DIFFERS: {exc}")
        return RERUN_DIFFERS
    out = {"same": True, "outcome": outcome, "reason": reason, "rule_hash": case["rule_hash"],
           "recorded_at_height": recorded["height"], "evidence": recorded["evidence"]}
    print(json.dumps(out, sort_keys=True) if args.json else
          f"SAME: {outcome} ({reason}), rule {case['rule_hash'][:16]}, {len(recorded['evidence'])} evidence "
          f"entr{'y' if len(recorded['evidence']) == 1 else 'ies'} checked, recorded at height {recorded['height']}")
    return 0


def register(sub, client_opts) -> None:
    case = sub.add_parser("case", help="service-item cases: open one, show it, re-run its decision",
                          description=__doc__.split("\n\n")[1]).add_subparsers(dest="action", required=True)
    op = case.add_parser("open", help="open a case at the competent department's node (--node), which decides it")
    client_opts(op)
    opener = op.add_mutually_exclusive_group(required=True)
    opener.add_argument("--window-key", help="the competent department's window key (role window); "
                                             "needs --authn-event")
    opener.add_argument("--key", help="the citizen's app key file (the key the authn chain binds to --tag)")
    op.add_argument("--item", required=True, help="the service item id")
    op.add_argument("--case", required=True, help="a new case id")
    op.add_argument("--tag", required=True, help="the citizen's subject tag (hex)")
    op.add_argument("--oprf-output", required=True, help="the OPRF output of the tag (hex; `govchain tag --json`)")
    op.add_argument("--id-number", required=True, help="the ID number, or - to read it from stdin")
    op.add_argument("--authn-event", help="with --window-key: the citizen's authn event id (authn chain)")
    op.add_argument("--consent", action="append", metavar="INPUT=ID", help="the consent for one input's query")
    op.add_argument("--agreement", action="append", metavar="INPUT=ID", help="the agreement for one input's query")
    op.add_argument("--purpose", required=True, help="the purpose the queries name")
    op.set_defaults(func=cmd_case_open)
    show = case.add_parser("show", help="a case as recorded on the item chain")
    client_opts(show)
    show.add_argument("case_id")
    show.set_defaults(func=cmd_case_show)
    again = case.add_parser("rerun", help="re-run a case's decision from chain data and the evidence openings; "
                                          "exit 0 when it is the recorded one, 3 when not")
    client_opts(again)
    again.add_argument("case_id")
    again.add_argument("--address", help="the competent department's node, for the openings (default --node)")
    again.add_argument("--key", required=True, help="the citizen's app key (bound to the case's tag), or an "
                                                    "auditor's key: the openings are the citizen's data")
    again.set_defaults(func=cmd_case_rerun)

