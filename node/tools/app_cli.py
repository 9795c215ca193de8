"""`govchain tag`, `govchain cert ...` and `govchain keys generate-oprf`: the
window's and the holder's tools for subject tags and certificates
(docs/design.md, "Subject tags (OPRF)", "Certificates (证照链)").

Registered in node/tools/cli.py by `register`. Exit codes: 0 done (for
`cert verify`: the disclosed field is valid), 1 an RPC error or (for `cert
verify`) a verdict other than valid, 2 bad input.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from node.identity import fields as cert_fields

ISSUE_HELP = ("issuing is a transaction: `govchain tx submit --chain cert --contract cert --method issue "
              "--key ISSUER_KEY --payload PAYLOAD` with the payload `cert make` prints")


def _print(obj: dict, as_json: bool, human: str) -> None:
    print(json.dumps(obj, sort_keys=True, ensure_ascii=False) if as_json else human)


def _read_json(path: str, what: str):
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as exc:
        raise ValueError(f"{what} {path}: cannot read: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} {path}: not JSON: {exc}") from None


def _write_private(path: str, obj: dict) -> None:
    """Certificate files and disclosures hold a citizen's data: mode 0600, never overwritten."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ValueError(f"{path} already exists; refusing to overwrite it") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(obj, file, ensure_ascii=False, indent=2, sort_keys=True)
        file.write("\n")


# ---- keys generate-oprf --------------------------------------------------------

def cmd_keys_generate_oprf(args) -> int:
    from node.identity.oprf import generate_key_file

    key = generate_key_file(args.out)
    _print({"file": args.out, "public_key": key.public_key.hex()}, args.json,
           f"wrote {args.out} (mode 0600): the subject-tag key; only the identity service's node reads it "
           f"([identity] oprf_key_file)\npublic key: {key.public_key.hex()}")
    return 0


# ---- tag -------------------------------------------------------------------------

def cmd_tag(args) -> int:
    from node.net.client import channel
    from node.net.tls import Material
    from node.pb import identity_pb2_grpc
    from node.services.identity import subject_tag

    if not (args.ca and args.cert and args.cert_key):
        raise ValueError("the identity service answers only windows with a client certificate: pass --ca, --cert "
                         "and --cert-key (env GOVCHAIN_CA, GOVCHAIN_CERT, GOVCHAIN_CERT_KEY)")
    args.node = args.identity  # for the error hint of cli.main
    id_number = sys.stdin.readline() if args.id_number == "-" else args.id_number
    stub = identity_pb2_grpc.IdentityStub(channel(args.identity, Material.load(args.ca, args.cert, args.cert_key),
                                                  args.server_name))
    # IdNumberError (a ValueError) for a mistyped number; a verification query carries the OPRF output, sealed
    tag, unblinded = subject_tag(stub, id_number, timeout=args.timeout)
    _print({"tag": tag.hex(), "oprf_output": unblinded.hex()}, args.json, tag.hex())
    return 0


# ---- cert ------------------------------------------------------------------------

def cmd_cert_make(args) -> int:
    values = _read_json(args.fields[1:], "--fields") if args.fields.startswith("@") else (
        _read_json("-", "--fields") if args.fields == "-" else json.loads(args.fields))
    cert = cert_fields.make_certificate(args.cert_id, args.chain, values)
    payload = {"cert_id": args.cert_id, "type": args.type, "holder_tag": args.holder_tag,
               "valid_from_ms": args.valid_from_ms, "valid_until_ms": args.valid_until_ms,
               "field_root": cert["field_root"]}
    _write_private(args.out, cert)
    payload_json = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    _print({"file": args.out, "field_root": cert["field_root"], "issue_payload": payload}, args.json,
           f"wrote {args.out} (mode 0600): give it to the holder; it stays off chain\n"
           f"field_root {cert['field_root']}\nissue it with:\n  govchain tx submit --chain {args.chain} "
           f"--contract cert --method issue --key ISSUER_KEY --wait --payload '{payload_json}'")
    return 0


def cmd_cert_disclose(args) -> int:
    cert = _read_json(args.cert, "--cert")
    disclosure = cert_fields.disclose(cert, args.field)
    _write_private(args.out, disclosure)
    _print({"file": args.out, "cert_id": disclosure["cert_id"], "field": args.field}, args.json,
           f"wrote {args.out}: field {args.field!r} of certificate {disclosure['cert_id']}, with its proof; "
           f"it reveals that field only")
    return 0


def verdict(record: dict | None, disclosure: dict, at_ms: int) -> tuple[str, str]:
    """("valid", why) or (another verdict, why) for a disclosure against its
    on-chain record at block time at_ms."""
    name, cert_id = disclosure["name"], disclosure["cert_id"]
    if record is None:
        return "not-found", f"certificate {cert_id} is not on the chain"
    if not cert_fields.verify_disclosure(record["field_root"], disclosure):
        return "mismatch", (f"field {name!r} does not match certificate {cert_id}'s field_root: the value, salt or "
                            f"proof was changed, or it belongs to another certificate")
    if record["status"] != "valid":
        extra = f" by {record['superseded_by']}" if record["superseded_by"] else ""
        return "invalid-status", (f"certificate {cert_id} is {record['status']}{extra} (since height "
                                  f"{record['status_height']}, by {record['department']})")
    until = record["valid_until_ms"]
    if at_ms < record["valid_from_ms"] or (until is not None and at_ms >= until):
        return "outside-validity", (f"certificate {cert_id} is valid from {record['valid_from_ms']} to "
                                    f"{until if until is not None else 'no expiry'}; the chain's time is {at_ms}")
    return "valid", (f"field {name!r} = {disclosure['value']!r} of certificate {cert_id} ({record['type']}, issued "
                     f"by {record['department']}) matches the on-chain root; status valid at the chain's time {at_ms}")


def cmd_cert_verify(args) -> int:
    from node.core import codec
    from node.pb import client_pb2
    from node.tools.cli import _stub

    disclosure = _read_json(args.disclosure, "--disclosure")
    try:
        cert_fields.check_disclosure(disclosure)
    except cert_fields.FieldError as exc:
        raise ValueError(f"--disclosure {args.disclosure}: {exc}") from None
    if disclosure["chain"] != args.chain:
        raise ValueError(f"the disclosure is of a certificate on chain {disclosure['chain']!r}, not {args.chain!r}; "
                         f"pass --chain {disclosure['chain']}")
    client = _stub(args)
    answer = client.Query(client_pb2.QueryRequest(chain_id=args.chain, contract="cert", method="certificate",
                                                  args=json.dumps({"cert_id": disclosure["cert_id"]}).encode()),
                          timeout=args.timeout)
    record = json.loads(answer.result)
    # The chain's time: the header of the block the answer was read at (the latest committed one).
    header = codec.from_proto(client.GetBlock(client_pb2.GetBlockRequest(chain_id=args.chain, height=answer.height),
                                              timeout=args.timeout).header) if answer.height else None
    at_ms = header.timestamp_ms if header is not None else 0
    result, why = verdict(record, disclosure, at_ms)
    _print({"verdict": result, "valid": result == "valid", "message": why, "cert_id": disclosure["cert_id"],
            "field": disclosure["name"], "height": answer.height, "block_time_ms": at_ms,
            "status": record["status"] if record else None}, args.json,
           f"{'VALID' if result == 'valid' else 'NOT VALID (' + result + ')'}: {why} (height {answer.height})")
    return 0 if result == "valid" else 1


# ---- parser ----------------------------------------------------------------------

def register(sub, keys, client_opts) -> None:
    """Add `tag` and `cert` to the top-level subparsers and `generate-oprf`
    to `keys`; client_opts adds cli.py's connection options."""
    env = os.environ.get
    oprf = keys.add_parser("generate-oprf", help="write a new subject-tag OPRF key (mode 0600, never overwrites), "
                                                 "for the identity service's [identity] oprf_key_file")
    oprf.add_argument("--out", required=True, help="file to create")
    oprf.add_argument("--json", action="store_true", help="print one JSON object")
    oprf.set_defaults(func=cmd_keys_generate_oprf)

    tag = sub.add_parser("tag", help="a citizen's subject tag from the identity service (the window's side of the "
                                     "OPRF: the service never sees the ID number)")
    tag.add_argument("--identity", required=True, metavar="HOST:PORT", help="client address of the identity "
                                                                              "service's node")
    tag.add_argument("--id-number", required=True, help="the resident ID number; '-' reads it from stdin, so it "
                                                        "stays out of shell history")
    tag.add_argument("--ca", default=env("GOVCHAIN_CA"), help="the network CA certificate (env GOVCHAIN_CA)")
    tag.add_argument("--cert", default=env("GOVCHAIN_CERT"),
                     help="this window's client certificate, named in the service's [identity] windows "
                          "(env GOVCHAIN_CERT)")
    tag.add_argument("--cert-key", default=env("GOVCHAIN_CERT_KEY"), help="its key (env GOVCHAIN_CERT_KEY)")
    tag.add_argument("--server-name", default=env("GOVCHAIN_SERVER_NAME"),
                     help="name the node's certificate must carry when --identity is not one of its names")
    tag.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the service")
    tag.add_argument("--json", action="store_true", help="print one JSON object")
    tag.set_defaults(func=cmd_tag)

    cert = sub.add_parser("cert", help="certificates: make a certificate file, disclose a field, verify it",
                          description=f"Certificates (证照): {ISSUE_HELP}; status changes likewise "
                                      f"(--method set_status).").add_subparsers(dest="action", required=True)
    make = cert.add_parser("make", help="the issuer's side: salt the fields, write the holder's certificate file, "
                                        "print field_root and the issue payload",
                           description=f"Writes the holder's certificate file and prints the payload; {ISSUE_HELP}.")
    make.add_argument("--fields", required=True,
                      help="the fields as a JSON object of strings: inline, @FILE, or '-' for stdin")
    make.add_argument("--cert-id", required=True, help="the certificate id, unique on the chain")
    make.add_argument("--type", required=True, help="the certificate type, e.g. marriage-certificate")
    make.add_argument("--holder-tag", required=True, help="the holder's subject tag (`govchain tag`)")
    make.add_argument("--valid-from-ms", type=int, required=True, help="start of validity, ms since the epoch")
    make.add_argument("--valid-until-ms", type=int, default=None, help="end of validity (default: no expiry)")
    make.add_argument("--chain", default="cert", help="the chain it is issued on (default cert)")
    make.add_argument("--out", required=True, help="certificate file to create (mode 0600)")
    make.add_argument("--json", action="store_true", help="print one JSON object")
    make.set_defaults(func=cmd_cert_make)

    disclose = cert.add_parser("disclose", help="the holder's side: one field and its Merkle proof")
    disclose.add_argument("--cert", required=True, help="the certificate file (`cert make`)")
    disclose.add_argument("--field", required=True, help="the field to disclose")
    disclose.add_argument("--out", required=True, help="disclosure file to create (mode 0600)")
    disclose.add_argument("--json", action="store_true", help="print one JSON object")
    disclose.set_defaults(func=cmd_cert_disclose)

    verify = cert.add_parser("verify", help="the window's side: check a disclosure against the chain; exit 0 only "
                                            "when the field matches and the certificate is valid now",
                             description="Fetches the certificate record (Query cert.certificate), checks the "
                                         "proof against its field_root, its status and its validity at the time of "
                                         "the block the answer was read at. Exit 0: valid; 1: not valid (the "
                                         "message says why) or an RPC error; 2: bad input. Record the check with "
                                         "`govchain tx submit --contract cert --method record_verification`.")
    client_opts(verify)
    verify.add_argument("--address", dest="node", metavar="HOST:PORT", help="same as --node")
    verify.add_argument("--chain", default="cert", help="the certificate chain (default cert)")
    verify.add_argument("--disclosure", required=True, help="the disclosure file (`cert disclose`)")
    verify.set_defaults(func=cmd_cert_verify)
