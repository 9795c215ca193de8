"""Genesis files: the identity of one chain (JSON).

    {
      "chain_id": "catalog",
      "validators": [
        {"department": "housing-registry", "public_key": "<64 hex>", "address": "127.0.0.1:7001"},
        ...
      ],
      "consensus": {"batch_txs_max": 1000, ..., "fetch_blocks_max": 64},
      "contracts": [{"name": "kv", "version": 1}],  (may be empty: a chain that takes no transactions)
      "reads": ["catalog"],                         (optional: chains this chain's blocks may read)
      "created": "2025-01-01T00:00:00Z",           (optional, informational)
      "founders": [{"department": "housing-registry", "key": "<64 hex governance key>"}, ...],
      "app_state": {"catalog": {...}},             (optional: initial state, by contract name)
      "signatures": [{"department": "housing-registry", "signature": "<128 hex>"}, ...]
    }

Rules, and why:

- The validator order is the replica index order (replica i = validators[i]),
  so it is part of the chain's identity.
- Every consensus parameter must be written out. Filling a missing one from a
  code default would let two software versions with different defaults run
  the "same" genesis with different parameters; make_genesis writes the
  defaults out explicitly instead.
- The contracts (name and version) are the code the chain runs, so they are
  part of its identity: a node that lacks one does not start
  (node.contracts.registry_for). There is no default: a file without
  "contracts" (written before they were named) is refused with the line to
  add, which makes a new chain (docs/design.md, "Contracts").
- Unknown keys, duplicate JSON keys, floats and booleans where integers are
  expected are errors: a genesis is security-relevant and must mean one thing.
- ``Genesis.hash`` is sha256 over a canonical encoding of the parsed values
  (sorted keys, no whitespace, ASCII, public keys in lowercase hex, contracts
  sorted by name, "created" omitted when absent), so reformatting the file
  does not change it while any change of meaning does. "reads" is sorted
  and, when empty, omitted, so a chain that reads nothing keeps its hash.
- "reads" names the other chains whose state this chain's blocks may read,
  each at a height its block names (docs/design.md, "Cross-chain reads"):
  chain ids, unique, never the chain itself. A node serving the chain must
  serve every chain it reads (node.daemon refuses to start otherwise).
- Durations are milliseconds here; replica_config converts them to ticks for
  the consensus core (rounding up, at least one tick).
- Every protocol message must fit message_bytes_max, or the transport drops
  it and every retransmission alike. The parameters fix the worst case
  (batch bytes for PrePrepares, request batches and blocks; window and
  validator count for ViewChanges and NewViews): a genesis whose worst case
  exceeds the default 4 MiB limit is refused, so every node with default
  limits can take part, and the daemon checks its own [limits] again
  (check_message_bytes).
- The founders are every department that founded the network (validators
  and non-validating departments alike), each with its governance key. Each
  signs the genesis hash (signature_digest); "signatures" is the one field
  the hash leaves out. load_genesis refuses a genesis without founders, or
  one a founder did not sign, or with a signature that does not verify: the
  chain's identity is what its founders agreed on, not what a file says
  (docs/design.md, "Genesis"). genesis_from_obj only parses: the ceremony
  (node/tools/ceremony.py) reads unsigned files with it.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

from nacl.bindings import crypto_core_ed25519_is_valid_point
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from consensus.config import ReplicaConfig
from node.core import codec
from node.core.config import CHAIN_ID_RE, DEPARTMENT_RE, LimitsConfig, parse_address, show_value
from node.core.tx import CONTRACT_NAME_BYTES_MAX, name_problem

DEFAULT_MESSAGE_BYTES_MAX = LimitsConfig().message_bytes_max


class GenesisError(ValueError):
    """A genesis file or value is invalid; the message names the field."""


@dataclass(frozen=True, kw_only=True)
class Validator:
    department: str
    public_key: str  # 64 lowercase hex characters
    address: str  # "host:port" other validators dial

    @property
    def public_key_bytes(self) -> bytes:
        return bytes.fromhex(self.public_key)


@dataclass(frozen=True, kw_only=True)
class ConsensusParams:
    """Defaults used by make_genesis only; load_genesis requires every field.
    They equal ReplicaConfig's tick defaults at the default tick_ms of 10."""

    batch_txs_max: int = 1000
    batch_bytes_max: int = 1 << 20
    batch_wait_ms: int = 10
    checkpoint_interval_blocks: int = 16
    window_blocks: int = 64
    in_flight_blocks_max: int = 8
    request_timeout_ms: int = 2_000
    view_change_timeout_ms: int = 2_000
    view_change_timeout_max_ms: int = 16_000
    status_interval_ms: int = 200
    retransmit_interval_ms: int = 200
    pending_requests_max: int = 50_000
    pending_requests_bytes_max: int = 64 << 20
    timestamp_skew_max_ms: int = 60_000
    fetch_blocks_max: int = 64


_PARAM_NAMES = tuple(f.name for f in fields(ConsensusParams))
_PARAM_MAX = 1 << 40  # sanity bound: keeps values in int64 and rejects obvious garbage
_VALIDATOR_KEYS = ("department", "public_key", "address")
_CONTRACT_KEYS = ("name", "version")
_VERSION_MAX = (1 << 32) - 1
_TOP_KEYS = ("chain_id", "validators", "consensus", "contracts", "reads", "created", "founders", "app_state", "signatures")
SIGNATURE_DOMAIN = b"govchain:v1:genesis-signature:"
FIX_SIGNATURES = ("each founding department signs with `govchain genesis sign --genesis-dir DIR --department ID "
                  "--key officer.key --out ID.signatures.json` and the coordinator seals the files with "
                  "`govchain genesis seal --genesis-dir DIR --signatures *.signatures.json` "
                  "(docs/design.md, \"Genesis\")")
_MS_TO_TICKS = {
    "batch_wait_ms": "batch_wait_ticks",
    "request_timeout_ms": "request_timeout_ticks",
    "view_change_timeout_ms": "view_change_timeout_ticks",
    "view_change_timeout_max_ms": "view_change_timeout_max_ticks",
    "status_interval_ms": "status_interval_ticks",
    "retransmit_interval_ms": "retransmit_interval_ticks",
}


def ms_to_ticks(ms: int, tick_ms: int) -> int:
    """Milliseconds to ticks, rounding up, at least one tick."""
    if isinstance(tick_ms, bool) or not isinstance(tick_ms, int) or tick_ms < 1:
        raise ValueError(f"tick_ms must be a positive integer (got {tick_ms!r})")
    return max(1, -(-ms // tick_ms))


class Founder(NamedTuple):
    """A founding department and its governance key (64 lowercase hex)."""

    department: str
    key: str


class FounderSignature(NamedTuple):
    """A founder's Ed25519 signature (128 lowercase hex) over signature_digest(genesis hash)."""

    department: str
    signature: str


def signature_digest(genesis_hash: bytes) -> bytes:
    """What a founder signs: domain-separated, so the signature means "I found this genesis" and nothing else."""
    return hashlib.sha256(SIGNATURE_DOMAIN + genesis_hash).digest()


class ContractRef(NamedTuple):
    """A contract a chain runs: its name in transactions and its version."""

    name: str
    version: int


@dataclass(frozen=True, kw_only=True)
class Genesis:
    chain_id: str
    validators: tuple[Validator, ...]
    consensus: ConsensusParams
    contracts: tuple[ContractRef, ...]  # sorted by name
    created: str | None = None
    founders: tuple[Founder, ...] = ()
    app_state: dict[str, Any] | None = None  # contract name -> its initial state section (JSON object)
    signatures: tuple[FounderSignature, ...] = ()  # not part of the hash
    reads: tuple[str, ...] = ()  # other chains its blocks may read, sorted (docs/design.md, "Cross-chain reads")

    def to_json_obj(self, *, signatures: bool = True) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "chain_id": self.chain_id,
            "validators": [
                {"department": v.department, "public_key": v.public_key, "address": v.address}
                for v in self.validators
            ],
            "consensus": {name: getattr(self.consensus, name) for name in _PARAM_NAMES},
            "contracts": [{"name": c.name, "version": c.version} for c in self.contracts],
        }
        if self.reads:
            obj["reads"] = list(self.reads)
        if self.created is not None:
            obj["created"] = self.created
        obj["founders"] = [{"department": f.department, "key": f.key} for f in self.founders]
        if self.app_state is not None:
            obj["app_state"] = self.app_state
        if signatures:
            obj["signatures"] = [{"department": s.department, "signature": s.signature} for s in self.signatures]
        return obj

    def canonical_bytes(self) -> bytes:
        return json.dumps(self.to_json_obj(signatures=False), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=True).encode("ascii")

    @property
    def hash(self) -> bytes:
        """sha256 of canonical_bytes(): the chain's identity (32 bytes)."""
        return hashlib.sha256(self.canonical_bytes()).digest()

    @property
    def hash_hex(self) -> str:
        return self.hash.hex()

    def replica_index(self, department: str) -> int:
        for index, validator in enumerate(self.validators):
            if validator.department == department:
                return index
        raise GenesisError(
            f"department {department!r} is not a validator of chain {self.chain_id!r} "
            f"(validators: {', '.join(v.department for v in self.validators)})"
        )

    def validator(self, department: str) -> Validator:
        return self.validators[self.replica_index(department)]

    def replica_config(self, department: str, tick_ms: int) -> ReplicaConfig:
        """The consensus core's parameters for `department`, durations in ticks of tick_ms."""
        replica = self.replica_index(department)
        c = self.consensus
        ticks = {tick_name: ms_to_ticks(getattr(c, ms_name), tick_ms)
                 for ms_name, tick_name in _MS_TO_TICKS.items()}
        return ReplicaConfig(
            chain_id=self.chain_id,
            validators=len(self.validators),
            replica=replica,
            batch_txs_max=c.batch_txs_max,
            batch_bytes_max=c.batch_bytes_max,
            checkpoint_interval_blocks=c.checkpoint_interval_blocks,
            window_blocks=c.window_blocks,
            in_flight_blocks_max=c.in_flight_blocks_max,
            pending_requests_max=c.pending_requests_max,
            pending_requests_bytes_max=c.pending_requests_bytes_max,
            timestamp_skew_max_ms=c.timestamp_skew_max_ms,
            fetch_blocks_max=c.fetch_blocks_max,
            genesis_hash=self.hash,
            **ticks,
        )


# --------------------------------------------------------------------------- parsing

def _show(value: object) -> str:
    return show_value(value, table="a JSON object", array="a JSON array")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise GenesisError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _check_keys(source: str, obj: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in obj:
        if key not in allowed:
            raise GenesisError(f"{source}: unknown field {where}{key!r}; allowed: {', '.join(allowed)}")


def _check_entry(source: str, raw: object, keys: tuple[str, ...], where: str) -> None:
    """An array entry: an object with exactly `keys`."""
    if not isinstance(raw, dict):
        raise GenesisError(f"{source}: {where} must be an object (got {_show(raw)})")
    _check_keys(source, raw, keys, f"{where}.")
    for key in keys:
        if key not in raw:
            raise GenesisError(f"{source}: {where}.{key} is missing")


def genesis_from_obj(obj: object, *, source: str = "genesis") -> Genesis:
    """Validate a decoded JSON document. Raises GenesisError naming the field."""
    if not isinstance(obj, dict):
        raise GenesisError(f"{source}: must be a JSON object (got {_show(obj)})")
    _check_keys(source, obj, _TOP_KEYS, "")
    for key in ("chain_id", "validators", "consensus"):
        if key not in obj:
            raise GenesisError(f"{source}: {key} is missing")
    if "contracts" not in obj:
        raise GenesisError(f"{source}: contracts is missing: a genesis names the contracts its chain runs, e.g. "
                           f"\"contracts\": [{{\"name\": \"kv\", \"version\": 1}}] for the open key-value store "
                           f"every chain ran before; that makes a new chain (docs/design.md, \"Contracts\")")

    chain_id = obj["chain_id"]
    if not isinstance(chain_id, str) or not CHAIN_ID_RE.fullmatch(chain_id):
        raise GenesisError(f"{source}: chain_id must match [a-z0-9-]{{1,32}} (got {_show(chain_id)})")

    validators_raw = obj["validators"]
    if not isinstance(validators_raw, list) or not validators_raw:
        raise GenesisError(f"{source}: validators must be a non-empty array (got {_show(validators_raw)})")
    validators: list[Validator] = []
    seen_departments: set[str] = set()
    seen_keys: set[str] = set()
    seen_addresses: set[str] = set()
    for index, raw in enumerate(validators_raw):
        where = f"validators[{index}]"
        _check_entry(source, raw, _VALIDATOR_KEYS, where)
        department = _department(source, where, raw["department"], seen_departments)
        public_key = _public_key(source, f"{where}.public_key", raw["public_key"])
        if public_key in seen_keys:
            raise GenesisError(f"{source}: {where}.public_key is also used by another validator; "
                               f"each department needs its own key")
        address = raw["address"]
        try:
            parsed = parse_address(address, allow_port_zero=False)
        except ValueError as exc:
            raise GenesisError(f"{source}: {where}.address must be \"host:port\": {exc} "
                               f"(got {_show(address)})") from None
        if str(parsed) in seen_addresses:
            raise GenesisError(f"{source}: {where}.address {address!r} is used by another validator")
        seen_departments.add(department)
        seen_keys.add(public_key)
        seen_addresses.add(str(parsed))
        validators.append(Validator(department=department, public_key=public_key, address=address))

    consensus_raw = obj["consensus"]
    if not isinstance(consensus_raw, dict):
        raise GenesisError(f"{source}: consensus must be an object (got {_show(consensus_raw)})")
    _check_keys(source, consensus_raw, _PARAM_NAMES, "consensus.")
    params: dict[str, int] = {}
    for name in _PARAM_NAMES:
        if name not in consensus_raw:
            raise GenesisError(f"{source}: consensus.{name} is missing; every consensus parameter must be "
                               f"explicit so that all nodes agree on it")
        value = consensus_raw[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _PARAM_MAX:
            raise GenesisError(f"{source}: consensus.{name} must be an integer between 1 and {_PARAM_MAX} "
                               f"(got {_show(value)})")
        params[name] = value
    if params["window_blocks"] < 2 * params["checkpoint_interval_blocks"]:
        raise GenesisError(f"{source}: consensus.window_blocks ({params['window_blocks']}) must be at least "
                           f"2 x checkpoint_interval_blocks ({params['checkpoint_interval_blocks']})")
    if params["view_change_timeout_max_ms"] < params["view_change_timeout_ms"]:
        raise GenesisError(f"{source}: consensus.view_change_timeout_max_ms must be >= view_change_timeout_ms")

    contracts = _contracts(source, obj["contracts"])
    created = obj.get("created")
    if created is not None and not isinstance(created, str):
        raise GenesisError(f"{source}: created must be a string such as \"2025-01-01T00:00:00Z\" "
                           f"(got {_show(created)})")
    if "founders" not in obj:
        raise GenesisError(f"{source}: founders is missing: a genesis names its founding departments and their "
                           f"governance keys, and each of them signs it; write it with `govchain genesis assemble` "
                           f"(docs/design.md, \"Genesis\")")
    founders = _founders(source, obj["founders"], validators)
    app_state = _app_state(source, obj.get("app_state"), contracts)
    signatures = _signatures(source, obj.get("signatures", []), founders)
    genesis = Genesis(chain_id=chain_id, validators=tuple(validators), consensus=ConsensusParams(**params),
                      contracts=contracts, created=created, reads=_reads(source, chain_id, obj.get("reads", [])),
                      founders=founders, app_state=app_state, signatures=signatures)
    check_message_bytes(genesis, source=source)
    return genesis


def _department(source: str, where: str, value: object, seen: Iterable[str]) -> str:
    """A department id, not among `seen`."""
    if not isinstance(value, str) or not DEPARTMENT_RE.fullmatch(value):
        raise GenesisError(f"{source}: {where}.department must be lowercase letters, digits and '-' "
                           f"(1-63, not starting or ending with '-') (got {_show(value)})")
    if value in seen:
        raise GenesisError(f"{source}: {where}.department {value!r} is listed twice")
    return value


def _public_key(source: str, where: str, value: object) -> str:
    """An Ed25519 public key in 64 hex characters, normalised to lowercase."""
    try:
        if not isinstance(value, str) or len(value) != 64:
            raise ValueError
        key_bytes = bytes.fromhex(value)
    except ValueError:
        raise GenesisError(f"{source}: {where} must be 64 hex characters (32 bytes) (got {_show(value)})") from None
    if not crypto_core_ed25519_is_valid_point(key_bytes):
        raise GenesisError(f"{source}: {where} is not a valid Ed25519 public key")
    return key_bytes.hex()


def _founders(source: str, raw: object, validators: list[Validator]) -> tuple[Founder, ...]:
    if not isinstance(raw, list):
        raise GenesisError(f"{source}: founders must be an array of {{\"department\": ..., \"key\": ...}} "
                           f"(got {_show(raw)})")
    founders: dict[str, Founder] = {}
    keys: set[str] = set()
    for index, entry in enumerate(raw):
        where = f"founders[{index}]"
        _check_entry(source, entry, ("department", "key"), where)
        department = _department(source, where, entry["department"], founders)
        key = _public_key(source, f"{where}.key", entry["key"])
        if key in keys:
            raise GenesisError(f"{source}: {where}.key is also another founder's key; each department "
                               f"needs its own governance key")
        keys.add(key)
        founders[department] = Founder(department, key)
    absent = [v.department for v in validators if v.department not in founders]
    if founders and absent:
        raise GenesisError(f"{source}: validator(s) {', '.join(absent)} not among the founders; every validator's "
                           f"department founds the chain and signs its genesis")
    return tuple(founders.values())


def _app_state(source: str, raw: object, contracts: tuple[ContractRef, ...]) -> dict[str, Any] | None:
    """Initial state by contract name: only contracts the chain runs; each contract validates its own section."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise GenesisError(f"{source}: app_state must be an object keyed by contract name (got {_show(raw)})")
    names = [c.name for c in contracts]
    for name, section in raw.items():
        if name not in names:
            raise GenesisError(f"{source}: app_state.{name}: the chain runs no contract {name!r} "
                               f"(contracts: {', '.join(names) or 'none'})")
        if not isinstance(section, dict):
            raise GenesisError(f"{source}: app_state.{name} must be an object (got {_show(section)})")
        stack: list[object] = [section]  # JSON values only, no fractions: a section means one thing on every node
        while stack:
            value = stack.pop()
            if isinstance(value, dict):
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)
            elif not isinstance(value, (str, int, bool)) and value is not None:
                raise GenesisError(f"{source}: app_state.{name} holds {_show(value)}; only strings, integers, "
                                   f"booleans, null, arrays and objects are allowed")
    return raw


def _signatures(source: str, raw: object, founders: tuple[Founder, ...]) -> tuple[FounderSignature, ...]:
    """Their form only; check_signatures verifies them."""
    if not isinstance(raw, list):
        raise GenesisError(f"{source}: signatures must be an array of {{\"department\": ..., \"signature\": ...}} "
                           f"(got {_show(raw)})")
    founder_ids = [f.department for f in founders]
    signatures: dict[str, FounderSignature] = {}
    for index, entry in enumerate(raw):
        where = f"signatures[{index}]"
        _check_entry(source, entry, ("department", "signature"), where)
        department, signature = entry["department"], entry["signature"]
        if department not in founder_ids:
            raise GenesisError(f"{source}: {where}.department {_show(department)} is not a founder "
                               f"(founders: {', '.join(founder_ids) or 'none'})")
        if department in signatures:
            raise GenesisError(f"{source}: {where}: {department} signed twice")
        try:
            if not isinstance(signature, str) or len(signature) != 128:
                raise ValueError
            signature = bytes.fromhex(signature).hex()
        except ValueError:
            raise GenesisError(f"{source}: {where}.signature must be 128 hex characters (64 bytes) "
                               f"(got {_show(signature)})") from None
        signatures[department] = FounderSignature(department, signature)
    return tuple(signatures[d] for d in founder_ids if d in signatures)  # founder order: one form per meaning


def _reads(source: str, chain_id: str, raw: object) -> tuple[str, ...]:
    """The "reads" list: chain ids, unique, not the chain itself; sorted."""
    if not isinstance(raw, list) or not all(isinstance(c, str) and CHAIN_ID_RE.fullmatch(c) for c in raw):
        raise GenesisError(f"{source}: reads must be an array of chain ids matching [a-z0-9-]{{1,32}} "
                           f"(got {_show(raw)})")
    if len(set(raw)) != len(raw) or chain_id in raw:
        raise GenesisError(f"{source}: reads must name each chain once and never the chain itself "
                           f"(got {_show(raw)})")
    return tuple(sorted(raw))


def _contracts(source: str, raw: object) -> tuple[ContractRef, ...]:
    if not isinstance(raw, list):
        raise GenesisError(f"{source}: contracts must be an array of {{\"name\": ..., \"version\": ...}} "
                           f"(got {_show(raw)})")
    contracts: dict[str, ContractRef] = {}
    for index, entry in enumerate(raw):
        where = f"contracts[{index}]"
        _check_entry(source, entry, _CONTRACT_KEYS, where)
        name, version = entry["name"], entry["version"]
        if (problem := name_problem(f"{where}.name", name, CONTRACT_NAME_BYTES_MAX)) is not None:
            raise GenesisError(f"{source}: {problem}")
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= _VERSION_MAX:
            raise GenesisError(f"{source}: {where}.version must be an integer between 1 and {_VERSION_MAX} "
                               f"(got {_show(version)})")
        if name in contracts:
            raise GenesisError(f"{source}: {where}.name {name!r} is listed twice; a chain runs one version "
                               f"of each contract")
        contracts[name] = ContractRef(name, version)
    return tuple(contracts[name] for name in sorted(contracts))


def _fix(kind: str, c: ConsensusParams, validators: int) -> str:
    """Which parameters make this message large."""
    if kind == "ViewChange":
        return f"lower consensus.window_blocks ({c.window_blocks})"
    if kind == "NewView":
        return f"lower consensus.window_blocks ({c.window_blocks}) or use fewer validators ({validators})"
    return f"lower consensus.batch_bytes_max ({c.batch_bytes_max})"


def check_message_bytes(genesis: Genesis, message_bytes_max: int = DEFAULT_MESSAGE_BYTES_MAX, *,
                        source: str = "genesis", limit_name: str = "the default message_bytes_max") -> None:
    """Raise GenesisError unless the largest message these parameters allow
    (node.core.codec.worst_case_message_bytes) fits `message_bytes_max`. With a
    node's own limit (not the default), the fix may also be raising it."""
    c, n = genesis.consensus, len(genesis.validators)
    sizes = codec.worst_case_message_bytes(chain_id=genesis.chain_id, validators=n, batch_txs_max=c.batch_txs_max,
                                           batch_bytes_max=c.batch_bytes_max, window_blocks=c.window_blocks)
    kind, size = max(sizes.items(), key=lambda item: item[1])
    if size > message_bytes_max:
        raise_it = f", or raise it to at least {size}" if message_bytes_max < DEFAULT_MESSAGE_BYTES_MAX else ""
        raise GenesisError(f"{source}: with these consensus parameters a {kind} can reach {size} bytes, more than "
                           f"{limit_name} ({message_bytes_max}), and the transport would drop it: "
                           f"{_fix(kind, c, n)}"
                           + raise_it)


def signature_problems(genesis: Genesis) -> dict[str, str]:
    """Founder -> what is wrong with its signature ("missing" or "invalid"); empty when all founders signed."""
    digest = signature_digest(genesis.hash)
    given = {s.department: s.signature for s in genesis.signatures}
    problems = {}
    for founder in genesis.founders:
        if founder.department not in given:
            problems[founder.department] = "missing"
            continue
        try:
            VerifyKey(bytes.fromhex(founder.key)).verify(digest, bytes.fromhex(given[founder.department]))
        except BadSignatureError:
            problems[founder.department] = "invalid"
    return problems


def check_signatures(genesis: Genesis, *, source: str = "genesis") -> None:
    """Raise GenesisError unless the genesis has founders and each signed its hash."""
    if not genesis.founders:
        raise GenesisError(f"{source}: names no founders, so nobody vouches for it; a genesis is assembled from the "
                           f"founding departments' files with `govchain genesis assemble` and {FIX_SIGNATURES}")
    problems = signature_problems(genesis)
    missing = [d for d, p in problems.items() if p == "missing"]
    invalid = [d for d, p in problems.items() if p == "invalid"]
    parts = []
    if missing:
        parts.append(f"not signed by founder(s) {', '.join(missing)}")
    if invalid:
        parts.append(f"the signature(s) of {', '.join(invalid)} do not verify against their governance key for "
                     f"genesis hash {genesis.hash_hex} (the file was changed after signing, or signed another "
                     f"genesis)")
    if parts:
        raise GenesisError(f"{source}: {'; '.join(parts)}: {FIX_SIGNATURES}")


def sign_genesis(genesis: Genesis, keys: Mapping[str, SigningKey]) -> Genesis:
    """`genesis` with the signatures of the founders in `keys` (department -> governance signing key) added."""
    digest = signature_digest(genesis.hash)
    signed = {s.department: s for s in genesis.signatures}
    founders = {f.department: f.key for f in genesis.founders}
    for department, key in keys.items():
        if founders.get(department) != bytes(key.verify_key).hex():
            raise GenesisError(f"{department} is not a founder of chain {genesis.chain_id} with this key")
        signed[department] = FounderSignature(department, key.sign(digest).signature.hex())
    return replace(genesis, signatures=tuple(signed[d] for d in founders if d in signed))


def read_genesis(path: str | os.PathLike[str]) -> Genesis:
    """Parse a genesis file without checking its signatures (the ceremony's tools; nodes use load_genesis)."""
    return genesis_from_obj(read_json_file(path), source=str(path))


def read_json_file(path: str | os.PathLike[str], what: str = "genesis file") -> Any:
    """Strict JSON: duplicate keys, NaN and Infinity are GenesisErrors naming the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise GenesisError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise GenesisError(f"{path}: cannot read {what}: {exc.strerror}") from None
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys,
                          parse_constant=_reject_constant)
    except GenesisError as exc:
        raise GenesisError(f"{path}: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GenesisError(f"{path}: not valid JSON: {exc}") from None


def load_genesis(path: str | os.PathLike[str]) -> Genesis:
    """A genesis file its founders all signed (check_signatures), else GenesisError."""
    genesis = read_genesis(path)
    check_signatures(genesis, source=str(path))
    return genesis


def _reject_constant(name: str) -> Any:
    raise GenesisError(f"{name} is not allowed")


def write_genesis(path: str | os.PathLike[str], genesis: Genesis) -> None:
    """Write `genesis` as indented JSON, atomically (temp file, fsync, rename)."""
    write_json_file(path, genesis.to_json_obj())


def write_json_file(path: str | os.PathLike[str], obj: object) -> None:
    """Write public JSON (mode 0644) atomically: temp file, fsync, rename."""
    path = Path(path)
    text = json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o644)  # public data; mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _public_key_text(key: object) -> object:
    if isinstance(key, (bytes, bytearray)):
        return bytes(key).hex()
    if hasattr(key, "encode") and not isinstance(key, str):  # nacl VerifyKey
        return bytes(key).hex()  # type: ignore[call-overload]
    return key


def make_genesis(
    chain_id: str,
    validators: Iterable[Validator | Mapping[str, Any] | tuple[str, Any, str]],
    *,
    contracts: Iterable[tuple[str, int]] = (),
    created: str | None = None,
    founders: Mapping[str, Any] | None = None,
    app_state: dict[str, Any] | None = None,
    reads: Iterable[str] = (),
    **params: int,
) -> Genesis:
    """Build a validated Genesis. `validators` are Validator objects, dicts, or
    (department, public_key, address) tuples; a public key may be hex, 32 raw
    bytes, or a nacl VerifyKey. `contracts` are (name, version) pairs; none
    by default (a chain that takes no transactions). `founders` maps each
    founding department to its governance key: a SigningKey also signs (so
    the result passes load_genesis once written), a public key leaves it
    unsigned; none by default, which load_genesis refuses (in-memory use
    only). Consensus parameters not given take the ConsensusParams defaults.
    Raises GenesisError (TypeError for unknown params)."""
    unknown = sorted(set(params) - set(_PARAM_NAMES))
    if unknown:
        raise TypeError(f"make_genesis() got unknown consensus parameter(s): {', '.join(unknown)}")
    entries = []
    for v in validators:
        if isinstance(v, Validator):
            entry = {"department": v.department, "public_key": v.public_key, "address": v.address}
        elif isinstance(v, Mapping):
            entry = dict(v)
        else:
            department, public_key, address = v
            entry = {"department": department, "public_key": public_key, "address": address}
        entry["public_key"] = _public_key_text(entry.get("public_key"))
        entries.append(entry)
    defaults = ConsensusParams()
    obj: dict[str, Any] = {
        "chain_id": chain_id,
        "validators": entries,
        "consensus": {name: params.get(name, getattr(defaults, name)) for name in _PARAM_NAMES},
        "contracts": [{"name": name, "version": version} for name, version in contracts],
    }
    if created is not None:
        obj["created"] = created
    founders = dict(founders or {})
    obj["founders"] = [{"department": d, "key": _public_key_text(getattr(k, "verify_key", k))}
                       for d, k in founders.items()]
    if app_state is not None:
        obj["app_state"] = app_state
    if reads:
        obj["reads"] = list(reads)
    genesis = genesis_from_obj(obj, source="make_genesis")
    return sign_genesis(genesis, {d: k for d, k in founders.items() if isinstance(k, SigningKey)})
