"""`govchain audit`: inclusion proofs of transactions (docs/design.md, "Audit proofs").

    govchain audit verify FILE --genesis GENESIS.json [--json]
        offline: exit 0 if the proof holds, 3 if it does not, 2 if FILE or
        the genesis cannot be read
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


def register(sub) -> None:
    """Adds `audit verify` and `audit prove` to the CLI's subcommands."""
    audit = sub.add_parser("audit", help="inclusion proofs of transactions (access log entries)").add_subparsers(
        dest="action", required=True)
    verify = audit.add_parser("verify", help="check an inclusion proof offline against the chain's genesis")
    verify.add_argument("file", help="the proof (JSON)")
    verify.add_argument("--genesis", required=True, help="the chain's genesis file")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(func=cmd_audit_verify)
    prove = audit.add_parser("prove", help="write the inclusion proof of a transaction from a stopped node's data")
    prove.add_argument("--genesis", required=True, help="the chain's genesis file")
    prove.add_argument("--data-dir", required=True, help="the node's data_dir")
    prove.add_argument("--tx", required=True, help="transaction id (hex)")
    prove.add_argument("--out", help="write here (never overwrites) instead of to stdout")
    prove.set_defaults(func=cmd_audit_prove)
