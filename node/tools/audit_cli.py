"""`govchain audit`: inclusion proofs of transactions (docs/design.md, "Audit proofs")
and the citizen audit (docs/design.md, "Citizen audit").

    govchain audit list --address HOST:PORT --key citizen.key --tag TAG [--json] [--out FILE]
        every access log entry of the tag (the Audit service; signed by the
        citizen's bound app key or an auditor's key), with proofs into FILE
    govchain audit verify FILE --genesis GENESIS.json [--json]
        offline: an inclusion proof, or a whole audit file (each entry's
        proof, and that the proven transaction says what the entry says);
        exit 0 if all hold, 3 if one does not (named), 2 if FILE or the
        genesis cannot be read
    govchain audit prove --genesis GENESIS.json --data-dir DIR --tx ID [--out FILE]
        the proof from a stopped node's data dir (read from a copy, as `chain verify` does)
"""
from __future__ import annotations

import json
import os
import sys
import tempfile


def cmd_audit_verify(args) -> int:
    from node.core.genesis import load_genesis
    from node.ledger.proofs import verify_inclusion_proof

    genesis = load_genesis(args.genesis)
    try:
        with open(args.file, encoding="utf-8") as f:
            proof = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{args.file} is not JSON ({exc}); pass the file `govchain audit prove` wrote") from None
    if isinstance(proof, dict) and proof.get("format") == AUDIT_FORMAT:
        return _verify_audit_file(proof, genesis, args.json)
    verdict = verify_inclusion_proof(proof, genesis)
    out = verdict.to_json_obj()
    if verdict.ok:
        t = out["transaction"]
        human = (f"OK: transaction {t['id']} is in block {verdict.height} of chain {verdict.chain_id} "
                 f"(block hash {out['block_hash']}), certified by the genesis validators\n"
                 f"  sender {t['sender']}, nonce {t['nonce']}, {t['contract']}.{t['method']}\n"
                 f"  payload {t.get('payload', t.get('payload_hex'))}")
    else:
        human = f"BAD: {verdict.problem}"
    print(json.dumps(out, sort_keys=True) if args.json else human)
    return 0 if verdict.ok else 3


def cmd_audit_prove(args) -> int:
    from node.core.genesis import load_genesis
    from node.ledger.ledger import open_snapshot
    from node.ledger.proofs import build_inclusion_proof

    genesis = load_genesis(args.genesis)
    try:
        tx_id = bytes.fromhex(args.tx)
    except ValueError:
        raise ValueError(f"--tx must be a transaction id in hex (got {args.tx!r:.80})") from None
    with tempfile.TemporaryDirectory(prefix="govchain-audit-") as workdir, \
            open_snapshot(os.path.join(args.data_dir, genesis.chain_id), genesis.chain_id, genesis.hash,
                          workdir) as ledger:
        proof = build_inclusion_proof(ledger, tx_id)
    text = json.dumps(proof, indent=1, sort_keys=True) + "\n"
    if args.out:
        with open(args.out, "x", encoding="utf-8") as f:  # never overwrites
            f.write(text)
        print(f"wrote {args.out}: transaction {args.tx} in block {proof['header']['height']}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


AUDIT_FORMAT = "govchain-audit/1"


def basis_text(basis: dict | None) -> str:
    """An access log entry's basis in words: "consent ID", "agreement ID", or "none cited" (a refused
    request may cite none)."""
    if not basis:
        return "none cited"
    kind, ref = next(iter(basis.items()))
    return f"{kind} {ref}"


def entry_problem(entry: dict, proof: dict, genesis) -> str:
    """Why an audit file's entry is not proven by its proof ("" when it is):
    the proof holds, and its transaction is the authz.log_access whose
    payload the entry repeats, in the block and at the place and time the
    entry names. consent_use and catalog_height are the contract's, not in
    the payload: the proof does not cover them."""
    from node.ledger.proofs import verify_inclusion_proof

    verdict = verify_inclusion_proof(proof, genesis)
    if not verdict.ok:
        return verdict.problem
    tx = verdict.transaction
    if (tx.contract, tx.method) != ("authz", "log_access"):
        return f"the proven transaction is {tx.contract}.{tx.method}, not an access log entry (authz.log_access)"
    payload = json.loads(tx.payload)
    said = {**payload, "fields": sorted(payload["fields"]) if payload.get("fields") else payload.get("fields"),
            "reason": payload.get("reason") or None, "provider_key": tx.sender.hex(), "tx_id": tx.id.hex(),
            "height": verdict.height, "index": verdict.index, "time_ms": proof["header"]["timestamp_ms"]}
    differ = sorted(k for k, v in said.items() if entry.get(k) != v)
    return f"the entry's {', '.join(differ)} differ from the proven transaction's (altered entry)" if differ else ""


def _verify_audit_file(doc: dict, genesis, as_json: bool) -> int:
    entries = doc.get("entries")
    if not isinstance(entries, list):
        raise ValueError("the audit file has no list of entries; pass the file `govchain audit list --out` wrote")
    results = []
    for i, item in enumerate(entries):
        entry, proof = (item.get("entry"), item.get("proof")) if isinstance(item, dict) else (None, None)
        if not isinstance(entry, dict) or not isinstance(proof, dict):
            problem = "not an {\"entry\", \"proof\"} object"
        elif entry.get("tag") != doc.get("tag"):
            problem = f"the entry is for another tag than the file's ({str(entry.get('tag'))[:16]})"
        else:
            problem = entry_problem(entry, proof, genesis)
        digest = entry.get("request_digest") if isinstance(entry, dict) else None
        results.append({"entry": i, "request_digest": digest, "ok": not problem, "problem": problem})
    bad = [r for r in results if not r["ok"]]
    if as_json:
        print(json.dumps({"ok": not bad, "entries": results}, sort_keys=True))
    else:
        for r in bad:
            print(f"BAD: entry #{r['entry']} (request {str(r['request_digest'])[:16]}): {r['problem']}")
        print(f"{'OK' if not bad else 'BAD'}: {len(results) - len(bad)} of {len(results)} entries of tag "
              f"{str(doc.get('tag'))[:16]} proven in committed blocks of chain {genesis.chain_id}")
    return 0 if not bad else 3


def cmd_audit_list(args) -> int:
    import time

    from node.core.keys import load_signing_key
    from node.net.client import channel
    from node.pb import audit_pb2_grpc
    from node.services.audit import list_all
    from node.tools.cli import _client_tls

    key = load_signing_key(args.key)
    args.node = args.address  # for the error hint of cli.main
    stub = audit_pb2_grpc.AuditStub(channel(args.address, _client_tls(args), args.server_name))
    pages, reply = list_all(stub, key, args.tag, timeout=args.timeout)
    entries = [{"entry": json.loads(e.entry_json), "proof": json.loads(e.proof_json)} for e in pages]
    doc = {"format": AUDIT_FORMAT, "chain_id": reply.chain_id, "tag": args.tag, "height": reply.height,
           "entries": entries}
    if args.out:
        with open(args.out, "x", encoding="utf-8") as f:  # never overwrites
            f.write(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    if args.json:
        print(json.dumps({**doc, "entries": [e["entry"] for e in entries]}, sort_keys=True, ensure_ascii=False))
        return 0
    print(f"{len(entries)} access(es) to tag {args.tag[:16]} (authz height {reply.height})")
    print("time (UTC)           requester            provider             item                 fields"
          "               purpose              decision, basis")
    for e in (item["entry"] for item in entries):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e["time_ms"] // 1000))
        what = "predicate" if e["predicate"] else ",".join(e["fields"] or [])
        print(f"{when:20} {e['requester']:20} {e['provider']:20} {e['item']:20} {what:20} {e['purpose']:20} "
              f"{e['decision']}{' (' + e['reason'] + ')' if e['reason'] else ''}, {basis_text(e['basis'])}")
    if args.out:
        print(f"wrote {args.out}: check it offline with `govchain audit verify {args.out} --genesis authz.json`",
              file=sys.stderr)
    return 0


def register(sub, client_opts) -> None:
    """Adds `audit list`, `audit verify` and `audit prove` to the CLI's subcommands."""
    audit = sub.add_parser("audit", help="the citizen audit; inclusion proofs of transactions (access log entries)"
                           ).add_subparsers(dest="action", required=True)
    listing = audit.add_parser("list", help="every access to a citizen's data, with proofs (the Audit service)")
    client_opts(listing)
    listing.add_argument("--address", required=True, metavar="HOST:PORT", help="a node serving the authz chain")
    listing.add_argument("--key", required=True, help="the citizen's app key (bound to --tag), or an auditor's key")
    listing.add_argument("--tag", required=True, help="the citizen's subject tag (hex)")
    listing.add_argument("--out", help="write the entries with their proofs here (never overwrites)")
    listing.set_defaults(func=cmd_audit_list)
    verify = audit.add_parser("verify", help="check an inclusion proof offline against the chain's genesis")
    verify.add_argument("file", help="the proof (JSON), or an audit file (`audit list --out`)")
    verify.add_argument("--genesis", required=True, help="the chain's genesis file")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(func=cmd_audit_verify)
    prove = audit.add_parser("prove", help="write the inclusion proof of a transaction from a stopped node's data")
    prove.add_argument("--genesis", required=True, help="the chain's genesis file")
    prove.add_argument("--data-dir", required=True, help="the node's data_dir")
    prove.add_argument("--tx", required=True, help="transaction id (hex)")
    prove.add_argument("--out", help="write here (never overwrites) instead of to stdout")
    prove.set_defaults(func=cmd_audit_prove)
