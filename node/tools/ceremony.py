"""`govchain genesis`: the founding ceremony of a network (docs/design.md, "Genesis").

Nobody writes genesis JSON by hand, and a node runs only a genesis that every
founding department signed:

1. department: each department writes its public material (ID.department.json):
   id, name, roles, its keys with their roles (the first governance key is
   its founder key), and for a validator its node key, peer address and the
   SHA-256 fingerprint of its TLS certificate. Never a private key.
2. assemble: a coordinator combines the department files into one genesis
   per chain (validators sorted by id, founders, contracts, the catalog's
   initial identity registry), validated, unsigned.
3. sign: each department checks the genesis files and signs each hash with
   its governance key (ID.signatures.json).
4. seal: the coordinator checks the signatures and writes them into the
   genesis files; verify checks a file as a node will (load_genesis).

Only public files travel: department files to the coordinator, genesis files
to the departments, signature files back. The functions below are what the
commands run; node/tools/localnet.py and deploy/compose/init.py call them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey, VerifyKey

from node.contracts import platform_contracts, platform_reads
from node.core.config import CHAIN_ID_RE, DEPARTMENT_RE, parse_address
from node.core.genesis import (ConsensusParams, Genesis, GenesisError, check_signatures, genesis_from_obj,
                               make_genesis, read_genesis, read_json_file, sign_genesis, signature_digest, signature_problems,
                               write_genesis, write_json_file)

DEPARTMENT_FORMAT = "govchain-department/1"
SIGNATURES_FORMAT = "govchain-genesis-signatures/1"
# Platform roles (docs/design.md, "Roles"): what a key may do on the platform's chains.
ROLES = ("governance", "provider", "requester", "identity", "issuer", "window")
NAME_CHARS_MAX = 128
_PARAM_NAMES = tuple(f.name for f in fields(ConsensusParams))


# --------------------------------------------------------------------------- department files

@dataclass(frozen=True)
class Department:
    id: str
    name: str
    roles: tuple[str, ...]  # sorted
    keys: tuple[tuple[str, tuple[str, ...]], ...]  # (public key hex, sorted roles), as given
    node_key: str | None = None  # validators only
    address: str | None = None
    tls_cert_sha256: str | None = None

    @property
    def validator(self) -> bool:
        return self.node_key is not None

    @property
    def governance_key(self) -> str:
        """The founder key: the first key with the governance role."""
        return next(key for key, roles in self.keys if "governance" in roles)

    def to_json_obj(self) -> dict[str, Any]:
        validator = None if not self.validator else {
            "node_key": self.node_key, "address": self.address, "tls_cert_sha256": self.tls_cert_sha256}
        return {"format": DEPARTMENT_FORMAT, "id": self.id, "name": self.name, "roles": list(self.roles),
                "validator": validator, "keys": [{"key": k, "roles": list(r)} for k, r in self.keys]}


def _roles(source: str, where: str, raw: object, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(r, str) for r in raw):
        raise GenesisError(f"{source}: {where} must be a non-empty list of roles (got {raw!r})")
    unknown = [r for r in raw if r not in allowed]
    if unknown:
        raise GenesisError(f"{source}: {where}: {', '.join(map(repr, unknown))} not in {', '.join(allowed)}")
    if len(set(raw)) != len(raw):
        raise GenesisError(f"{source}: {where} lists a role twice")
    return tuple(sorted(raw))


def _hex_key(source: str, where: str, raw: object) -> str:
    try:
        if not isinstance(raw, str) or len(raw) != 64:
            raise ValueError
        VerifyKey(bytes.fromhex(raw))
    except (ValueError, TypeError):
        raise GenesisError(f"{source}: {where} must be an Ed25519 public key in 64 hex characters "
                           f"(got {raw!r})") from None
    return raw.lower()


def department_from_obj(obj: object, source: str = "department") -> Department:
    """Validate a department file's content. Raises GenesisError naming the field."""
    if not isinstance(obj, dict) or obj.get("format") != DEPARTMENT_FORMAT:
        raise GenesisError(f"{source}: not a department file (\"format\": \"{DEPARTMENT_FORMAT}\"); "
                           f"write one with `govchain genesis department`")
    allowed = ("format", "id", "name", "roles", "validator", "keys")
    for field in obj:
        if field not in allowed:
            raise GenesisError(f"{source}: unknown field {field!r}; allowed: {', '.join(allowed)}")
    dept_id, name = obj.get("id"), obj.get("name")
    if not isinstance(dept_id, str) or not DEPARTMENT_RE.fullmatch(dept_id):
        raise GenesisError(f"{source}: id must be lowercase letters, digits and '-' (1-63) (got {dept_id!r})")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_CHARS_MAX:
        raise GenesisError(f"{source}: name must be a non-empty string of at most {NAME_CHARS_MAX} characters")
    roles = _roles(source, "roles", obj.get("roles"), ROLES)
    if "governance" not in roles:
        raise GenesisError(f"{source}: roles must include governance: a department founds the network with "
                           f"its governance key")
    raw_keys = obj.get("keys")
    if not isinstance(raw_keys, list) or not raw_keys:
        raise GenesisError(f"{source}: keys must be a non-empty list of {{\"key\", \"roles\"}}")
    keys: list[tuple[str, tuple[str, ...]]] = []
    for i, entry in enumerate(raw_keys):
        if not isinstance(entry, dict) or set(entry) != {"key", "roles"}:
            raise GenesisError(f"{source}: keys[{i}] must be an object with exactly key and roles")
        key = _hex_key(source, f"keys[{i}].key", entry["key"])
        if any(key == k for k, _ in keys):
            raise GenesisError(f"{source}: keys[{i}].key is listed twice")
        key_roles = _roles(source, f"keys[{i}].roles", entry["roles"], roles)  # a subset of the department's
        keys.append((key, key_roles))
    if not any("governance" in r for _, r in keys):
        raise GenesisError(f"{source}: no key has the governance role; the department needs one to found "
                           f"the network (--key officer.key:governance)")
    validator = obj.get("validator")
    if validator is None:
        return Department(dept_id, name, roles, tuple(keys))
    if not isinstance(validator, dict) or set(validator) != {"node_key", "address", "tls_cert_sha256"}:
        raise GenesisError(f"{source}: validator must be null or an object with node_key, address and "
                           f"tls_cert_sha256")
    node_key = _hex_key(source, "validator.node_key", validator["node_key"])
    if any(node_key == k for k, _ in keys):
        raise GenesisError(f"{source}: validator.node_key is also a role key; a node key signs consensus "
                           f"messages only: give the officers their own keys")
    try:
        address = str(parse_address(validator["address"], allow_port_zero=False))
    except ValueError as exc:
        raise GenesisError(f"{source}: validator.address must be \"host:port\": {exc}") from None
    fingerprint = validator["tls_cert_sha256"]
    if fingerprint is not None and (not isinstance(fingerprint, str) or len(fingerprint) != 64
                                    or any(c not in "0123456789abcdef" for c in fingerprint)):
        raise GenesisError(f"{source}: validator.tls_cert_sha256 must be null or 64 lowercase hex characters")
    return Department(dept_id, name, roles, tuple(keys), node_key, address, fingerprint)


def read_department(path: str | Path) -> Department:
    return department_from_obj(read_json_file(path, "department file"), str(path))


def _public_key(spec: str, what: str) -> str:
    """The public key of a key file, or `spec` itself when it is 64 hex characters (a key held elsewhere)."""
    from node.core.keys import load_signing_key

    if len(spec) == 64 and all(c in "0123456789abcdefABCDEF" for c in spec) and not Path(spec).exists():
        return spec.lower()
    try:
        return bytes(load_signing_key(spec).verify_key).hex()
    except Exception as exc:
        raise GenesisError(f"{what}: {exc}") from None


def make_department(dept_id: str, name: str, roles: list[str], keys: list[str], *, node_key: str | None = None,
                    peer_address: str | None = None, tls_cert: str | None = None) -> Department:
    """A department from the command's arguments: `keys` are "FILE:role1,role2" (FILE a key file, or the
    public key in hex); node_key (a key file) and peer_address make it a validator; tls_cert is its
    certificate, which must be bound to node_key."""
    if (node_key is None) != (peer_address is None):
        raise GenesisError("a validator needs both --node-key and --peer-address (a non-validating "
                           "department has neither)")
    entries = []
    for spec in keys:
        path, sep, key_roles = spec.rpartition(":")
        if not sep or not path:
            raise GenesisError(f"--key {spec!r} must be FILE:ROLE[,ROLE...], e.g. officer.key:governance")
        entries.append({"key": _public_key(path, f"--key {path}"), "roles": key_roles.split(",")})
    validator = None
    if node_key is not None:
        node_public = _public_key(node_key, f"--node-key {node_key}")
        fingerprint = None
        if tls_cert is not None:
            from cryptography import x509
            from cryptography.hazmat.primitives.serialization import Encoding

            from node.net.tls import bound_key

            pem = Path(tls_cert).read_bytes()
            if (bound_key(pem) or b"").hex() != node_public:
                raise GenesisError(f"--tls-cert {tls_cert} is not bound to --node-key {node_key}; issue it with "
                                   f"`govchain tls cert --node-key {node_key} ...`")
            der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
            fingerprint = hashlib.sha256(der).hexdigest()
        validator = {"node_key": node_public, "address": peer_address, "tls_cert_sha256": fingerprint}
    obj = {"format": DEPARTMENT_FORMAT, "id": dept_id, "name": name, "roles": roles, "validator": validator,
           "keys": entries}
    return department_from_obj(obj, f"department {dept_id}")


# --------------------------------------------------------------------------- assemble

def catalog_section(departments: list[Department], approvals: int) -> dict[str, Any]:
    """app_state.catalog: the identity registry every chain starts from (docs/design.md, "Genesis")."""
    return {
        "departments": [{"id": d.id, "name": d.name, "validator": d.validator, "roles": list(d.roles),
                         "keys": [{"key": k, "roles": list(r)} for k, r in d.keys]} for d in departments],
        "governance": {"approvals": approvals},
    }


def assemble(departments: list[Department], chains: list[str], *, params: dict[str, int] | None = None,
             approvals: int | None = None, created: str | None = None) -> tuple[dict[str, Genesis], list[str]]:
    """One unsigned genesis per chain, and warnings. Raises GenesisError on anything inconsistent."""
    departments = sorted(departments, key=lambda d: d.id)
    seen: dict[str, str] = {}  # id, key or address -> department that has it

    def unique(value: str, what: str, owner: str) -> None:
        if value in seen:
            raise GenesisError(f"{what} of {owner} is also {seen[value]}'s; each department brings its own")
        seen[value] = owner

    for d in departments:
        unique(f"id:{d.id}", f"department id {d.id!r}", "a department file")
        for key, _ in d.keys:
            unique(key, f"key {key[:16]}...", d.id)
        if d.validator:
            unique(d.node_key, f"node key {d.node_key[:16]}...", d.id)
            unique(f"address:{d.address}", f"peer address {d.address}", d.id)
    validators = [(d.id, d.node_key, d.address) for d in departments if d.validator]
    if not validators:
        raise GenesisError("no validator department: at least one department runs a node (--validator)")
    warnings = []
    n = len(validators)
    f = (n - 1) // 3
    if n != 3 * f + 1:
        warnings.append(f"{n} validators tolerate {f} faulty one(s), as {3 * f + 1} would; "
                        f"{3 * f + 4} would tolerate {f + 1}")
    count = len(departments)
    approvals = count // 2 + 1 if approvals is None else approvals
    if not 1 <= approvals <= count:
        raise GenesisError(f"--approvals must be between 1 and the number of departments ({count}) "
                           f"(got {approvals})")
    if len(set(chains)) != len(chains) or not chains:
        raise GenesisError(f"--chains must name each chain once (got {', '.join(chains)})")
    unknown = sorted(set(params or {}) - set(_PARAM_NAMES))
    if unknown:
        raise GenesisError(f"unknown consensus parameter(s) {', '.join(unknown)}; known: {', '.join(_PARAM_NAMES)}")
    founders = {d.id: d.governance_key for d in departments}
    geneses = {}
    for chain in chains:
        if not CHAIN_ID_RE.fullmatch(chain):
            raise GenesisError(f"chain {chain!r}: a chain id matches [a-z0-9-]{{1,32}}")
        contracts = platform_contracts(chain)
        app_state = ({"catalog": catalog_section(departments, approvals)}
                     if any(name == "catalog" for name, _ in contracts) else None)
        geneses[chain] = make_genesis(chain, validators, contracts=contracts, reads=platform_reads(chain, chains),
                                      created=created, founders=founders, app_state=app_state, **(params or {}))
    return geneses, warnings


def write_assembled(geneses: dict[str, Genesis], out_dir: Path) -> list[str]:
    """Write each genesis as OUT_DIR/<chain>.json. An existing file of the same genesis is kept (with
    its signatures); one of another genesis is refused: that would be a new chain."""
    out_dir.mkdir(parents=True, exist_ok=True)
    notes = []
    for chain, genesis in geneses.items():
        path = out_dir / f"{chain}.json"
        if path.exists():
            existing = read_genesis(path)
            if existing.hash != genesis.hash:
                raise GenesisError(f"{path} exists and differs from the one these department files give; a new "
                                   f"genesis is a new chain: delete {path} (and the nodes' data) to start over")
            notes.append(f"{path}: unchanged")
            continue
        write_genesis(path, genesis)
        notes.append(f"{path}: written")
    return notes


# --------------------------------------------------------------------------- sign, seal, verify

def genesis_files(genesis_dir: Path) -> dict[str, Genesis]:
    """Every DIR/*.json, parsed (unsigned is fine): chain -> genesis."""
    paths = sorted(Path(genesis_dir).glob("*.json"))
    if not paths:
        raise GenesisError(f"{genesis_dir}: no genesis files (*.json); the coordinator writes them with "
                           f"`govchain genesis assemble --out-dir {genesis_dir}`")
    geneses = {}
    for path in paths:
        genesis = read_genesis(path)
        if path.stem != genesis.chain_id:
            raise GenesisError(f"{path}: holds chain {genesis.chain_id!r}; a genesis file is named <chain>.json")
        geneses[genesis.chain_id] = genesis
    return geneses


def summary(genesis: Genesis) -> dict[str, Any]:
    problems = signature_problems(genesis)
    return {
        "chain_id": genesis.chain_id, "genesis_hash": genesis.hash_hex,
        "validators": [{"department": v.department, "public_key": v.public_key, "address": v.address}
                       for v in genesis.validators],
        "founders": [{"department": f.department, "key": f.key, "signature": problems.get(f.department, "valid")}
                     for f in genesis.founders],
        "contracts": [f"{c.name} {c.version}" for c in genesis.contracts],
        "consensus": {name: getattr(genesis.consensus, name) for name in _PARAM_NAMES},
        "app_state": sorted(genesis.app_state or {}),
    }


def summary_text(genesis: Genesis) -> str:
    s = summary(genesis)
    lines = [f"chain {s['chain_id']}  genesis hash {s['genesis_hash']}",
             f"  validators ({len(s['validators'])}, replica order):"]
    lines += [f"    {i}  {v['department']:<20} {v['address']:<28} {v['public_key']}"
              for i, v in enumerate(s["validators"])]
    lines.append(f"  founders ({len(s['founders'])}):")
    lines += [f"    {f['department']:<20} {f['key']}  signature {f['signature']}" for f in s["founders"]]
    lines.append(f"  contracts: {', '.join(s['contracts']) or 'none (takes no transactions)'}")
    lines.append(f"  initial state: {', '.join(s['app_state']) or 'none'}")
    lines.append("  consensus: " + ", ".join(f"{k}={v}" for k, v in s["consensus"].items()))
    return "\n".join(lines)


def _check_own_material(genesis: Genesis, own: Department) -> None:
    """The department's own file against what the coordinator put in the genesis."""
    where = f"chain {genesis.chain_id}"
    if dict(genesis.founders).get(own.id) != own.governance_key:
        raise GenesisError(f"{where}: founder {own.id} does not have the governance key of its department file")
    in_genesis = next((v for v in genesis.validators if v.department == own.id), None)
    if own.validator != (in_genesis is not None) or (in_genesis is not None and (
            in_genesis.public_key, str(parse_address(in_genesis.address))) != (own.node_key, own.address)):
        raise GenesisError(f"{where}: the validator entry of {own.id} differs from its department file "
                           f"(node key, address, or validating at all)")
    catalog = (genesis.app_state or {}).get("catalog")
    if catalog is not None:
        mine = next((d for d in catalog.get("departments", []) if d.get("id") == own.id), None)
        if mine is None or mine.get("keys") != own.to_json_obj()["keys"] or mine.get("roles") != list(own.roles):
            raise GenesisError(f"{where}: app_state.catalog's entry for {own.id} differs from its department file")


def sign(genesis_dir: Path, department: str, key: SigningKey,
         own: Department | None = None) -> tuple[dict[str, Any], dict[str, Genesis]]:
    """The department's signatures over every genesis in the directory (after checking it is a founder with
    this key, and with `own`, that its material is in them unchanged)."""
    geneses = genesis_files(genesis_dir)
    public = bytes(key.verify_key).hex()
    if own is not None and own.id != department:
        raise GenesisError(f"the department file is {own.id}'s, not {department}'s")
    entries = []
    for chain, genesis in geneses.items():
        founders = dict(genesis.founders)
        if department not in founders:
            raise GenesisError(f"chain {chain}: {department} is not a founder (founders: {', '.join(founders)})")
        if founders[department] != public:
            raise GenesisError(f"chain {chain}: {department}'s founder key is {founders[department]}, this key is "
                               f"{public}; sign with the department's governance key")
        if own is not None:
            _check_own_material(genesis, own)
        signature = key.sign(signature_digest(genesis.hash)).signature.hex()
        entries.append({"chain_id": chain, "genesis_hash": genesis.hash_hex, "signature": signature})
    return {"format": SIGNATURES_FORMAT, "department": department, "key": public, "signatures": entries}, geneses


def read_signatures(path: str | Path) -> dict[str, Any]:
    obj = read_json_file(path, "signatures file")
    if (not isinstance(obj, dict) or obj.get("format") != SIGNATURES_FORMAT or not isinstance(obj.get("department"), str)
            or not isinstance(obj.get("signatures"), list)
            or not all(isinstance(e, dict) and set(e) == {"chain_id", "genesis_hash", "signature"}
                       for e in obj["signatures"])):
        raise GenesisError(f"{path}: not a signatures file (\"format\": \"{SIGNATURES_FORMAT}\"); "
                           f"write one with `govchain genesis sign`")
    return obj


def seal(genesis_dir: Path, documents: list[tuple[str, dict[str, Any]]]) -> dict[str, Genesis]:
    """Check every signature of `documents` ((source, signatures file content)) against the genesis files and
    write them in. Nothing is written when one is wrong. Returns the sealed geneses."""
    geneses = genesis_files(genesis_dir)
    signed: dict[str, dict[str, str]] = {chain: {} for chain in geneses}  # chain -> department -> signature
    for source, doc in documents:
        department = doc["department"]
        by_chain = {e["chain_id"]: e for e in doc["signatures"]}
        for chain, genesis in geneses.items():
            entry = by_chain.pop(chain, None)
            if entry is None:
                raise GenesisError(f"{source}: {department} did not sign chain {chain}; it signs every genesis "
                                   f"file of {genesis_dir}")
            if department not in dict(genesis.founders):
                raise GenesisError(f"{source}: {department} is not a founder of chain {chain}")
            if entry["genesis_hash"] != genesis.hash_hex:
                raise GenesisError(f"{source}: {department} signed another genesis of chain {chain} (hash "
                                   f"{entry['genesis_hash']}, this one is {genesis.hash_hex}); it signs the "
                                   f"current files again")
            candidate = genesis_from_signatures(genesis, {department: entry["signature"]}, source)
            if signature_problems(candidate).get(department):
                raise GenesisError(f"{source}: {department}'s signature of chain {chain} does not verify against "
                                   f"its governance key")
            if department in signed[chain]:
                raise GenesisError(f"{source}: a second signatures file of {department}")
            signed[chain][department] = entry["signature"]
        if by_chain:
            raise GenesisError(f"{source}: signs chain(s) {', '.join(sorted(by_chain))} that {genesis_dir} has "
                               f"no genesis for")
    sealed = {}
    for chain, genesis in geneses.items():
        sealed[chain] = genesis_from_signatures(genesis, signed[chain], chain)
        write_genesis(Path(genesis_dir) / f"{chain}.json", sealed[chain])
    return sealed


def genesis_from_signatures(genesis: Genesis, new: dict[str, str], source: str) -> Genesis:
    """`genesis` with `new` (department -> signature hex) added to its signatures, parsed again."""
    obj = genesis.to_json_obj()
    have = {s["department"]: s["signature"] for s in obj["signatures"]}
    obj["signatures"] = [{"department": d, "signature": s} for d, s in {**have, **new}.items()]
    return genesis_from_obj(obj, source=source)


# --------------------------------------------------------------------------- commands

def _emit(obj: Any, as_json: bool, human: str) -> None:
    print(json.dumps(obj, sort_keys=True) if as_json else human)


def cmd_department(args) -> int:
    if not args.validator and (args.node_key or args.peer_address or args.tls_cert):
        raise GenesisError("--node-key, --peer-address and --tls-cert are for a validator: add --validator")
    if args.validator and not (args.node_key and args.peer_address):
        raise GenesisError("--validator needs --node-key and --peer-address")
    department = make_department(args.id, args.name, args.roles.split(","), args.key,
                                 node_key=args.node_key, peer_address=args.peer_address, tls_cert=args.tls_cert)
    write_json_file(args.out, department.to_json_obj())
    _emit({"file": args.out, **department.to_json_obj()}, args.json,
          f"wrote {args.out} ({'validator' if department.validator else 'non-validating'} department "
          f"{department.id}, founder key {department.governance_key}): public material only; give it to the "
          f"coordinator")
    return 0


def _params(args) -> dict[str, int]:
    params: dict[str, int] = {}
    if args.consensus:
        raw = read_json_file(args.consensus, "consensus parameters file")
        if not isinstance(raw, dict):
            raise GenesisError(f"{args.consensus}: must be a JSON object of consensus parameters")
        params.update(raw)
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not value.isdigit():
            raise GenesisError(f"--param {item!r} must be NAME=INTEGER, e.g. batch_wait_ms=5")
        params[name] = int(value)
    return params


def cmd_assemble(args) -> int:
    departments = [read_department(path) for path in args.department]
    geneses, warnings = assemble(departments, args.chains.split(","), params=_params(args),
                                 approvals=args.approvals, created=args.created)
    notes = write_assembled(geneses, Path(args.out_dir))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _emit({"chains": {c: g.hash_hex for c, g in geneses.items()}, "warnings": warnings}, args.json,
          "\n".join([*notes, *(f"{c:<10} genesis hash {g.hash_hex}" for c, g in geneses.items()),
                     f"next: each founding department runs `govchain genesis sign --genesis-dir {args.out_dir} "
                     f"--department ID --key officer.key --out ID.signatures.json`"]))
    return 0


def cmd_sign(args) -> int:
    from node.core.keys import load_signing_key

    own = read_department(args.department_file) if args.department_file else None
    doc, geneses = sign(Path(args.genesis_dir), args.department, load_signing_key(args.key), own)
    write_json_file(args.out, doc)
    _emit({"file": args.out, "chains": [summary(g) for g in geneses.values()], **doc}, args.json,
          "\n\n".join(summary_text(g) for g in geneses.values())
          + f"\n\n{args.department} signed {len(geneses)} genesis file(s): wrote {args.out}; send it to the "
            f"coordinator")
    return 0


def cmd_seal(args) -> int:
    sealed = seal(Path(args.genesis_dir), [(path, read_signatures(path)) for path in args.signatures])
    missing = {c: [d for d, p in signature_problems(g).items() if p] for c, g in sealed.items()}
    complete = not any(missing.values())
    _emit({"chains": {c: g.hash_hex for c, g in sealed.items()}, "missing": missing, "complete": complete},
          args.json,
          "\n".join(f"{c:<10} {g.hash_hex}  signed by {len(g.signatures)}/{len(g.founders)} founders"
                    + (f"; missing {', '.join(missing[c])}" if missing[c] else "") for c, g in sealed.items())
          + ("\nsealed: every founder signed; distribute the genesis files to every node" if complete else
             "\nnot complete: nodes refuse these files until every founder's signature is sealed in"))
    return 0 if complete else 1


def cmd_verify(args) -> int:
    genesis = read_genesis(args.genesis)
    try:
        check_signatures(genesis, source=args.genesis)
        problem = None
    except GenesisError as exc:
        problem = str(exc)
    _emit({**summary(genesis), "ok": problem is None, "problem": problem}, args.json,
          summary_text(genesis) + ("\nOK: every founder signed this genesis" if problem is None
                                   else f"\nBAD: {problem}"))
    return 0 if problem is None else 3


def add_commands(sub) -> None:
    """`govchain genesis ...` (registered by node/tools/cli.py)."""
    genesis = sub.add_parser("genesis", help="the founding ceremony: department files, assemble, sign, seal, "
                                             "verify").add_subparsers(dest="action", required=True)
    d = genesis.add_parser("department", help="write a department's public material (no private key)")
    d.add_argument("--id", required=True, help="department id, e.g. public-security")
    d.add_argument("--name", required=True, help="for people, e.g. 'Public Security Bureau'")
    d.add_argument("--roles", required=True, help=f"comma-separated, from: {', '.join(ROLES)}; must include "
                                                  f"governance")
    d.add_argument("--key", action="append", required=True, metavar="FILE:ROLES",
                   help="a key and its roles (repeat), e.g. officer.key:governance window.key:window; FILE may "
                        "be a public key in hex; the first governance key is the founder key")
    d.add_argument("--validator", action="store_true", help="the department runs a validator node")
    d.add_argument("--node-key", help="the validator's node key file (its public key goes into the genesis)")
    d.add_argument("--peer-address", help="HOST:PORT other validators dial")
    d.add_argument("--tls-cert", help="its TLS certificate (bound to --node-key); its SHA-256 is recorded")
    d.add_argument("--out", required=True, help="e.g. public-security.department.json")
    d.set_defaults(func=cmd_department)
    a = genesis.add_parser("assemble", help="combine department files into one unsigned genesis per chain")
    a.add_argument("--department", nargs="+", action="extend", required=True, metavar="FILE")
    a.add_argument("--chains", default="catalog,item,authn,authz,cert,demo", help="comma-separated chain ids")
    a.add_argument("--consensus", help="a JSON file of consensus parameters (others: defaults)")
    a.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="one parameter (repeat)")
    a.add_argument("--approvals", type=int, help="governance approvals needed (k of n departments; default "
                                                 "a majority, n//2+1)")
    a.add_argument("--created", help="informational timestamp, e.g. 2025-01-01T00:00:00Z")
    a.add_argument("--out-dir", required=True, help="where <chain>.json go")
    a.set_defaults(func=cmd_assemble)
    s = genesis.add_parser("sign", help="check every genesis of a directory and sign it with the governance key")
    s.add_argument("--genesis-dir", required=True)
    s.add_argument("--department", required=True)
    s.add_argument("--key", required=True, help="the department's governance key file")
    s.add_argument("--department-file", help="its own department file: check its material is in each genesis")
    s.add_argument("--out", required=True, help="e.g. public-security.signatures.json")
    s.set_defaults(func=cmd_sign)
    z = genesis.add_parser("seal", help="check the departments' signatures and write them into the genesis files")
    z.add_argument("--genesis-dir", required=True)
    z.add_argument("--signatures", nargs="+", action="extend", required=True, metavar="FILE")
    z.set_defaults(func=cmd_seal)
    v = genesis.add_parser("verify", help="check a genesis as a node does: every founder signed it")
    v.add_argument("--genesis", required=True)
    v.set_defaults(func=cmd_verify)
    for p in (d, a, s, z, v):
        p.add_argument("--json", action="store_true", help="print one JSON object")
