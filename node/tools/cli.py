"""`govchain`: run a node, manage keys, and talk to a node from the shell.

Read commands print a human summary, or one JSON object with --json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import grpc

from node.core import codec
from node.core.keys import KeyFileError
from node.tools import audit_cli

DEFAULT_NODE = os.environ.get("GOVCHAIN_NODE", "127.0.0.1:7101")


def _print(obj: dict, as_json: bool, human: str) -> None:
    print(json.dumps(obj, sort_keys=True) if as_json else human)


def _receipt_dict(r) -> dict:
    return {"tx_id": r.tx_id.hex(), "height": r.height, "index": r.index, "status": r.status,
            "message": r.message, "output": r.output.decode(errors="replace")}


# ---- node and keys ----------------------------------------------------------

def cmd_node_run(args) -> int:
    from node.core.config import load_config
    from node.daemon import run

    try:
        config = load_config(args.config)  # a ConfigError is reported by main()
    except OSError as exc:
        print(f"error: cannot read config {args.config}: {exc.strerror}; pass --config PATH", file=sys.stderr)
        return 2
    return run(config)


def cmd_keys_generate(args) -> int:
    from node.core.keys import generate_key_file, public_key_hex

    key = generate_key_file(args.out)
    _print({"file": args.out, "public_key": public_key_hex(key)}, args.json,
           f"wrote {args.out} (mode 0600)\npublic key: {public_key_hex(key)}")
    return 0


def cmd_keys_show(args) -> int:
    from node.core.keys import load_signing_key, public_key_hex

    key = load_signing_key(args.file)
    _print({"file": args.file, "public_key": public_key_hex(key)}, args.json, public_key_hex(key))
    return 0


# ---- talking to a node ------------------------------------------------------

def cmd_tls_ca(args) -> int:
    from node.net.tls import generate_ca

    crt, key = generate_ca(args.dir)
    _print({"cert": str(crt), "key": str(key)}, args.json,
           f"wrote {crt} and {key} (mode 0600): keep {key} offline; give {crt} to every node and client")
    return 0


def cmd_tls_cert(args) -> int:
    from node.core.keys import load_signing_key
    from node.net.tls import issue_cert

    node_key = load_signing_key(args.node_key) if args.node_key else None
    crt, key = issue_cert(args.ca_dir, args.out, args.name, args.host, node_key)
    kind = "validator certificate bound to " + args.node_key if node_key else "client certificate"
    _print({"cert": str(crt), "key": str(key), "validator": node_key is not None}, args.json,
           f"wrote {crt} and {key} (mode 0600): {kind}")
    return 0


def _rpc_error(exc: grpc.RpcError, address: str) -> int:
    code = exc.code()
    hint = (f" (is a node running at {address}? try --node HOST:PORT; a plaintext node needs --insecure, "
            f"a TLS node the network's --ca)" if code == grpc.StatusCode.UNAVAILABLE else "")
    print(f"error: {code.name}: {exc.details()}{hint}", file=sys.stderr)
    return 1


def _client_tls(args):
    """TLS unless --insecure: the CA from --ca, GOVCHAIN_CA or the local
    cluster (scripts/cluster up), a client certificate if one is given."""
    from node.tools.localnet import DEFAULT_DIR, client_tls
    from node.net.tls import Material

    if args.insecure:
        return None
    if args.ca:
        return Material.load(args.ca, args.cert, args.cert_key)
    if args.cert:
        raise ValueError("--cert needs --ca: the network CA that issued the node's certificate")
    cluster = client_tls(DEFAULT_DIR)
    if cluster is None:
        raise ValueError(f"no CA certificate: pass --ca FILE (or set GOVCHAIN_CA) for a TLS node, or --insecure "
                         f"for a plaintext one (found no local cluster in {DEFAULT_DIR})")
    return cluster


def _stub(args):
    from node.net.client import stub

    return stub(args.node, _client_tls(args), args.server_name)


def cmd_status(args) -> int:
    from node.pb import client_pb2

    r = _stub(args).Status(client_pb2.StatusRequest(), timeout=args.timeout)
    chains = {c.chain_id: {"height": c.height, "view": c.view, "primary": c.primary,
                           "view_changing": c.view_changing, "peers": list(c.peers_connected),
                           "mempool": c.mempool, "head": c.head_hash.hex(), "replica": c.replica,
                           "dropped": dict(sorted(c.dropped.items()))}
              for c in r.chains}
    lines = [f"department {r.department} at {args.node}",
             f"{'chain':<10} {'height':>7} {'view':>5} {'primary':>7} {'peers':>5} {'mempool':>8}  head"]
    lines += [f"{cid:<10} {c['height']:>7} {c['view']:>5} {c['primary']:>7} {len(c['peers']):>5} "
              f"{c['mempool']:>8}  {c['head'][:16]}" for cid, c in chains.items()]
    if r.dropped:
        lines.append("dropped peer input: " + ", ".join(f"{k} {v}" for k, v in sorted(r.dropped.items())))
    _print({"department": r.department, "chains": chains, "dropped": dict(sorted(r.dropped.items()))},
           args.json, "\n".join(lines))
    return 0


def cmd_tx_submit(args) -> int:
    from node.core.keys import load_signing_key
    from node.pb import client_pb2
    from node.core.tx import sign_transaction

    key = load_signing_key(args.key)
    nonce = args.nonce if args.nonce is not None else time.time_ns()
    tx = sign_transaction(key, chain_id=args.chain, nonce=nonce, contract=args.contract,
                          method=args.method, payload=args.payload.encode())
    r = _stub(args).Submit(client_pb2.SubmitRequest(tx=codec.tx_to_proto(tx), wait_commit=args.wait),
                           timeout=args.timeout)
    out = {"tx_id": r.tx_id.hex(), "committed": r.committed}
    human = f"submitted {r.tx_id.hex()}"
    if r.committed:
        receipt = codec.receipt_from_proto(r.receipt)
        out["receipt"] = _receipt_dict(receipt)
        human += f"\ncommitted at height {receipt.height} index {receipt.index}: {receipt.status} {receipt.message}"
    elif args.wait:
        human += "\nnot committed before the timeout; check later with `govchain tx get`"
    _print(out, args.json, human)
    return 0


def cmd_tx_get(args) -> int:
    from node.pb import client_pb2

    r = _stub(args).GetTransaction(client_pb2.GetTransactionRequest(chain_id=args.chain, tx_id=bytes.fromhex(args.id)),
                                   timeout=args.timeout)
    tx, receipt = codec.tx_from_proto(r.tx), codec.receipt_from_proto(r.receipt)
    out = {"tx": {"chain_id": tx.chain_id, "sender": tx.sender.hex(), "nonce": tx.nonce, "contract": tx.contract,
                  "method": tx.method, "payload": tx.payload.decode(errors="replace")},
           "receipt": _receipt_dict(receipt)}
    _print(out, args.json, f"{tx.contract}.{tx.method} from {tx.sender.hex()[:16]} nonce {tx.nonce}\n"
                           f"height {receipt.height} index {receipt.index}: {receipt.status} {receipt.message}")
    return 0


def cmd_block_get(args) -> int:
    from node.pb import client_pb2

    request = client_pb2.GetBlockRequest(chain_id=args.chain)
    if args.hash:
        request.hash = bytes.fromhex(args.hash)
    else:
        request.height = args.height
    r = _stub(args).GetBlock(request, timeout=args.timeout)
    h, block = codec.from_proto(r.header), codec.from_proto(r.block)
    out = {"chain_id": h.chain_id, "height": h.height, "hash": h.hash.hex(), "parent_hash": h.parent_hash.hex(),
           "proposer": h.proposer, "timestamp_ms": h.timestamp_ms, "tx_root": h.tx_root.hex(),
           "state_root": h.state_root.hex(), "txs": len(block.proposal.requests),
           "certificate": {"view": block.certificate.view, "signers": [c.replica for c in block.certificate.commits]},
           "checkpoint": r.HasField("checkpoint")}
    _print(out, args.json, "\n".join(f"{k:<13} {v}" for k, v in out.items()))
    return 0


def cmd_state_get(args) -> int:
    from node.pb import client_pb2

    r = _stub(args).QueryState(client_pb2.QueryStateRequest(chain_id=args.chain, contract=args.contract,
                                                            key=args.key.encode()), timeout=args.timeout)
    value = r.value.decode(errors="replace")
    _print({"found": r.found, "value": value if r.found else None, "height": r.height}, args.json,
           value if r.found else f"not found (at height {r.height})")
    return 0 if r.found else 1


def cmd_query(args) -> int:
    from node.pb import client_pb2

    r = _stub(args).Query(client_pb2.QueryRequest(chain_id=args.chain, contract=args.contract, method=args.method,
                                                  args=args.args.encode()), timeout=args.timeout)
    result = json.loads(r.result)
    _print({"chain_id": args.chain, "contract": args.contract, "method": args.method, "height": r.height,
            "result": result}, args.json,
           f"{json.dumps(result, indent=2, ensure_ascii=False)}\n(at height {r.height})")
    return 0


def cmd_chain_verify(args) -> int:
    from node.net.client import blocks_from_ledger, blocks_over_grpc
    from node.core.genesis import load_genesis
    from node.ledger.ledger import open_snapshot
    from node.ledger.verify import verify_chain

    genesis = load_genesis(args.genesis)
    if args.data_dir:
        # A copy, so verification never writes to, recovers or re-creates the store it checks.
        with tempfile.TemporaryDirectory(prefix="govchain-verify-") as workdir, \
                open_snapshot(os.path.join(args.data_dir, genesis.chain_id), genesis.chain_id, genesis.hash,
                              workdir) as ledger:
            result = verify_chain(genesis, blocks_from_ledger(ledger))
    else:
        result = verify_chain(genesis, blocks_over_grpc(_stub(args), args.node, genesis.chain_id, args.timeout))
    out = {"chain_id": genesis.chain_id, "ok": result.ok, "height": result.height,
           "checkpoints": result.checkpoints, "problem": result.problem}
    human = (f"OK: {genesis.chain_id} verified {result.height} blocks, {result.checkpoints} stable checkpoints"
             if result.ok else f"BAD: {genesis.chain_id} at height {result.height}: {result.problem}")
    _print(out, args.json, human)
    return 0 if result.ok else 3


def cmd_chain_repair(args) -> int:
    from node.net.client import stub
    from node.core.config import load_config
    from node.contracts import registry_for
    from node.core.genesis import load_genesis
    from node.tools.repair import RepairError, grpc_source, repair_chain
    from node.net.tls import Material
    from node.ledger.ledger import LedgerError, open_snapshot
    from node.ledger.storage import StorageError

    config = load_config(args.config)
    chain_cfg = next((c for c in config.chains if c.id == args.chain), None)
    if chain_cfg is None:
        print(f"error: {args.config} has no chain {args.chain!r}; chains: "
              f"{', '.join(c.id for c in config.chains)}", file=sys.stderr)
        return 2
    genesis = load_genesis(chain_cfg.genesis)
    # The other nodes' client ports, over TLS as this node's [tls] says (its certificate as client's).
    tls = None if config.tls.insecure else Material.load(config.tls.ca, config.tls.cert, config.tls.key)
    source = grpc_source([stub(address, tls) for address in args.sources], genesis.chain_id, args.timeout)

    def progress(height: int) -> None:
        if not args.json and height % 100 == 0:
            print(f"  {height} blocks re-fetched and executed", file=sys.stderr)

    read_sources = {}
    with tempfile.TemporaryDirectory(prefix="govchain-repair-") as workdir:
        try:
            # this node's own stores of the chains it reads (docs/design.md, Cross-chain reads)
            for chain in genesis.reads:
                read_cfg = next((c for c in config.chains if c.id == chain), None)
                if read_cfg is None:
                    raise RepairError(f"chain {genesis.chain_id} reads {chain}, which {args.config} does not serve")
                try:  # a copy, as chain verify reads: the repair never writes to (or creates) the read store
                    read_sources[chain] = open_snapshot(str(config.data_dir / chain), chain,
                                                        load_genesis(read_cfg.genesis).hash, workdir)
                except (LedgerError, StorageError) as exc:
                    raise RepairError(f"chain {genesis.chain_id} reads {chain}, whose store here cannot be opened "
                                      f"({exc}); repair {chain} first") from exc
            result = repair_chain(str(config.data_dir / genesis.chain_id), genesis,
                                  registry_for(genesis.chain_id, genesis.contracts), source, progress, read_sources)
        except RepairError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        finally:
            for ledger in read_sources.values():
                ledger.close()
    out = {"chain_id": genesis.chain_id, "height": result.height, "checkpoints": result.checkpoints,
           "damaged_store": result.moved_to, "promised_height": result.promised.height}
    _print(out, args.json, f"OK: {genesis.chain_id} rebuilt to height {result.height} with "
                           f"{result.checkpoints} stable checkpoints; the damaged store is in {result.moved_to}; "
                           f"start the node again")
    return 0


# ---- parser -------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="govchain", description="govchain: government data sharing on PBFT chains")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def client_opts(sp, json_flag=True):
        sp.add_argument("--node", default=DEFAULT_NODE, help=f"client address of a node (default {DEFAULT_NODE}, env GOVCHAIN_NODE)")
        sp.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the node")
        env = os.environ.get
        sp.add_argument("--ca", default=env("GOVCHAIN_CA"),
                        help="the network CA certificate (env GOVCHAIN_CA; default: the local cluster's, "
                             ".cluster/tls/ca.crt or $GOVCHAIN_CLUSTER_DIR/tls/ca.crt)")
        sp.add_argument("--cert", default=env("GOVCHAIN_CERT"),
                        help="client certificate, for nodes with require_client_cert (env GOVCHAIN_CERT)")
        sp.add_argument("--cert-key", default=env("GOVCHAIN_CERT_KEY"),
                        help="the client certificate's key (env GOVCHAIN_CERT_KEY)")
        sp.add_argument("--server-name", default=env("GOVCHAIN_SERVER_NAME"),
                        help="name the node's certificate must carry when --node is not one of its names "
                             "(env GOVCHAIN_SERVER_NAME)")
        sp.add_argument("--insecure", action="store_true", default=bool(env("GOVCHAIN_INSECURE")),
                        help="plaintext, for a node with [tls] insecure = true (env GOVCHAIN_INSECURE=1)")
        if json_flag:
            sp.add_argument("--json", action="store_true", help="print one JSON object")

    node = sub.add_parser("node", help="run a department node").add_subparsers(dest="action", required=True)
    run = node.add_parser("run", help="run the node daemon until SIGTERM/SIGINT")
    run.add_argument("--config", required=True, help="path to node.toml")
    run.set_defaults(func=cmd_node_run)

    keys = sub.add_parser("keys", help="Ed25519 node and client keys").add_subparsers(dest="action", required=True)
    gen = keys.add_parser("generate", help="write a new key file (mode 0600, never overwrites)")
    gen.add_argument("--out", required=True)
    gen.add_argument("--json", action="store_true")
    gen.set_defaults(func=cmd_keys_generate)
    show = keys.add_parser("show", help="print the public key of a key file")
    show.add_argument("file")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_keys_show)

    tls = sub.add_parser("tls", help="TLS material: a network CA, department certificates").add_subparsers(
        dest="action", required=True)
    ca = tls.add_parser("ca", help="write a new network CA: DIR/ca.crt and DIR/ca.key (0600, never overwrites)")
    ca.add_argument("--dir", required=True)
    ca.add_argument("--json", action="store_true")
    ca.set_defaults(func=cmd_tls_ca)
    cert = tls.add_parser("cert", help="issue OUT.crt and OUT.key (0600, never overwrites) from the CA")
    cert.add_argument("--ca-dir", required=True, help="the directory `tls ca` wrote")
    cert.add_argument("--name", required=True, help="the department (or application) id: the certificate's name")
    cert.add_argument("--host", action="append", default=[],
                      help="a host name or IP the node is reached at (repeat); the name is always included")
    cert.add_argument("--node-key", help="the department's node key: makes a validator certificate, bound "
                                         "to that key (without: a client certificate only)")
    cert.add_argument("--out", required=True, help="path prefix, e.g. housing-registry/tls")
    cert.add_argument("--json", action="store_true")
    cert.set_defaults(func=cmd_tls_cert)

    st = sub.add_parser("status", help="chains, heights, views and peers of a node")
    client_opts(st)
    st.set_defaults(func=cmd_status)

    tx = sub.add_parser("tx", help="submit or read transactions").add_subparsers(dest="action", required=True)
    submit = tx.add_parser("submit", help="sign and submit one transaction")
    client_opts(submit)
    submit.add_argument("--chain", required=True)
    submit.add_argument("--key", required=True, help="sender key file")
    submit.add_argument("--contract", default="kv")
    submit.add_argument("--method", required=True)
    submit.add_argument("--payload", default="", help='e.g. \'{"key": "a", "value": "1"}\'')
    submit.add_argument("--nonce", type=int, help="default: current time in ns")
    submit.add_argument("--wait", action="store_true", help="wait for commit and print the receipt")
    submit.set_defaults(func=cmd_tx_submit)
    get = tx.add_parser("get", help="a committed transaction and its receipt")
    client_opts(get)
    get.add_argument("--chain", required=True)
    get.add_argument("--id", required=True, help="transaction id (hex)")
    get.set_defaults(func=cmd_tx_get)

    block = sub.add_parser("block", help="read blocks").add_subparsers(dest="action", required=True)
    bget = block.add_parser("get", help="a block header, certificate and size")
    client_opts(bget)
    bget.add_argument("--chain", required=True)
    which = bget.add_mutually_exclusive_group(required=True)
    which.add_argument("--height", type=int)
    which.add_argument("--hash")
    bget.set_defaults(func=cmd_block_get)

    state = sub.add_parser("state", help="read contract state").add_subparsers(dest="action", required=True)
    sget = state.add_parser("get", help="one key of a contract's state")
    client_opts(sget)
    sget.add_argument("--chain", required=True)
    sget.add_argument("--contract", default="kv")
    sget.add_argument("--key", required=True)
    sget.set_defaults(func=cmd_state_get)

    q = sub.add_parser("query", help="run a contract's read method (query) on committed state",
                       description="Runs one query of one of the chain's contracts against the state at the "
                                   "node's durable height and prints its JSON answer, e.g. "
                                   "--contract kv --method get --args '{\"key\": \"a\"}'.")
    client_opts(q)
    q.add_argument("--chain", required=True)
    q.add_argument("--contract", required=True, help="a contract the chain's genesis names, e.g. kv")
    q.add_argument("--method", required=True, help="one of its queries, e.g. kv: get, list")
    q.add_argument("--args", default="{}", help='a JSON object (default {}), e.g. \'{"prefix": "account/"}\'')
    q.set_defaults(func=cmd_query)

    chain = sub.add_parser("chain", help="whole-chain checks").add_subparsers(dest="action", required=True)
    verify = chain.add_parser("verify", help="check every hash link, Merkle root and certificate against genesis")
    client_opts(verify)
    verify.add_argument("--genesis", required=True, help="the chain's genesis file")
    verify.add_argument("--data-dir", help="read a stopped node's data dir instead of asking --node")
    verify.set_defaults(func=cmd_chain_verify)
    repair = chain.add_parser(
        "repair", help="move a damaged chain store aside and re-fetch it from other nodes (node stopped)",
        description="Moves DATA_DIR/CHAIN aside and rebuilds it block by block from other departments' "
                    "nodes: every block checked against its commit certificate, executed here, every "
                    "stable checkpoint checked against the state this node computes.")
    repair.add_argument("--config", required=True, help="the stopped node's node.toml")
    repair.add_argument("--chain", required=True, help="the chain to rebuild")
    repair.add_argument("--from", dest="sources", action="append", required=True, metavar="HOST:PORT",
                        help="client address of another department's node (repeat for fallbacks)")
    repair.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for each block")
    repair.add_argument("--json", action="store_true", help="print one JSON object")
    repair.set_defaults(func=cmd_chain_repair)
    from node.tools import ceremony
    ceremony.add_commands(sub)

    from node.tools import app_cli  # tag, cert, keys generate-oprf
    app_cli.register(sub, keys, client_opts)
    audit_cli.register(sub, client_opts)
    from node.tools import verify_cli  # verify-query
    verify_cli.register(sub, client_opts)
    from node.tools import case_cli  # case open | show | rerun
    case_cli.register(sub, client_opts)
    from node.tools import notices_cli  # notices
    notices_cli.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except grpc.RpcError as exc:
        return _rpc_error(exc, getattr(args, "node", ""))
    except (ValueError, OSError, KeyFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
