from __future__ import annotations

import hashlib
import json

import pytest
from nacl.signing import SigningKey

from consensus.config import ReplicaConfig
from node.core.genesis import (ConsensusParams, Genesis, GenesisError, Validator, genesis_from_obj, load_genesis,
                          make_genesis, ms_to_ticks, write_genesis)

DEPARTMENTS = ("housing-registry", "tax-office", "health-dept", "transport")
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
OFFICERS = [SigningKey(bytes([i + 101]) * 32) for i in range(4)]  # the departments' governance keys


def validators(n: int = 4) -> list[tuple[str, object, str]]:
    return [(DEPARTMENTS[i], KEYS[i].verify_key, f"127.0.0.1:{7001 + i}") for i in range(n)]


def founders(n: int = 4) -> dict[str, SigningKey]:
    return {DEPARTMENTS[i]: OFFICERS[i] for i in range(n)}


def genesis_obj(**overrides) -> dict:
    obj = make_genesis("catalog", validators(), founders=founders()).to_json_obj()
    obj.update(overrides)
    return obj


def write_json(path, obj) -> None:
    path.write_text(json.dumps(obj))


def test_genesis_write_load_round_trip_and_hash_is_stable(tmp_path) -> None:
    genesis = make_genesis("catalog", validators(), created="2025-01-01T00:00:00Z", batch_txs_max=500,
                           founders=founders())
    path = tmp_path / "catalog.json"
    write_genesis(path, genesis)
    loaded = load_genesis(path)
    assert loaded == genesis
    assert loaded.hash == genesis.hash and len(genesis.hash) == 32
    # Reformatting, reordering keys and upper-case hex do not change the hash ...
    obj = json.loads(path.read_text())
    obj["validators"][0]["public_key"] = obj["validators"][0]["public_key"].upper()
    reordered = {key: obj[key] for key in reversed(list(obj))}
    (tmp_path / "other.json").write_text(json.dumps(reordered, indent=7, sort_keys=False))
    assert load_genesis(tmp_path / "other.json").hash == genesis.hash
    # ... and the canonical bytes are sorted-key, whitespace-free JSON.
    canonical = genesis.canonical_bytes()
    assert b" " not in canonical and b"\n" not in canonical
    assert json.loads(canonical) == genesis.to_json_obj(signatures=False)
    assert "signatures" not in json.loads(canonical) and len(genesis.signatures) == 4
    assert canonical == json.dumps(json.loads(canonical), sort_keys=True, separators=(",", ":")).encode()


FIXED = {
    "chain_id": "catalog",
    "validators": [
        {"department": "housing-registry", "public_key": KEYS[0].verify_key.encode().hex(), "address": "10.0.0.1:7001"},
        {"department": "tax-office", "public_key": KEYS[1].verify_key.encode().hex(), "address": "10.0.0.2:7001"},
    ],
    "consensus": {
        "batch_txs_max": 1000, "batch_bytes_max": 1048576, "batch_wait_ms": 10, "checkpoint_interval_blocks": 16,
        "window_blocks": 64, "in_flight_blocks_max": 8, "request_timeout_ms": 1000, "view_change_timeout_ms": 1000,
        "view_change_timeout_max_ms": 8000, "status_interval_ms": 200, "retransmit_interval_ms": 200,
        "pending_requests_max": 50000, "pending_requests_bytes_max": 64 << 20, "timestamp_skew_max_ms": 60000,
        "fetch_blocks_max": 64,
    },
    "contracts": [{"name": "kv", "version": 1}],
    "created": "2025-01-01T00:00:00Z",
    "founders": [
        {"department": "housing-registry", "key": OFFICERS[0].verify_key.encode().hex()},
        {"department": "tax-office", "key": OFFICERS[1].verify_key.encode().hex()},
    ],
}


def test_genesis_hash_is_sha256_of_canonical_json_and_pinned() -> None:
    # Pinned: if this changes, every existing chain's identity changes (a fork). The founders
    # joined it with the founding ceremony (docs/design.md, "Genesis"); signatures are left out.
    genesis = genesis_from_obj(json.loads(json.dumps(FIXED)))
    canonical = json.dumps(FIXED, sort_keys=True, separators=(",", ":")).encode()
    assert genesis.canonical_bytes() == canonical
    assert genesis.hash == hashlib.sha256(canonical).digest()
    assert genesis.hash_hex == "27c8bcafbd4a909b612e2949481937d3e301d14f5460fa7662f09a2cb9ceb974"


@pytest.mark.parametrize("change", [
    lambda o: o.update(chain_id="item"),
    lambda o: o.update(created="2025-01-02T00:00:00Z"),
    lambda o: o["consensus"].update(batch_wait_ms=11),
    lambda o: o["validators"].reverse(),  # order is the replica index
    lambda o: o["validators"][0].update(address="127.0.0.1:7101"),
    lambda o: o.update(contracts=[{"name": "kv", "version": 1}]),  # the code the chain runs
    lambda o: o.update(contracts=[{"name": "kv", "version": 2}]),
    lambda o: o.update(reads=["identity"]),  # docs/design.md, "Cross-chain reads"
])
def test_genesis_hash_changes_with_meaning(change) -> None:
    base = genesis_obj()
    other = genesis_obj()
    change(other)
    assert genesis_from_obj(base).hash != genesis_from_obj(other).hash


def test_genesis_contracts_are_a_set_sorted_by_name() -> None:
    """Their order means nothing, so it does not change the hash."""
    a = make_genesis("catalog", validators(), contracts=[("kv", 1), ("authz", 3)])
    b = make_genesis("catalog", validators(), contracts=[("authz", 3), ("kv", 1)])
    assert a.hash == b.hash and a.contracts == (("authz", 3), ("kv", 1))
    assert a.to_json_obj()["contracts"] == [{"name": "authz", "version": 3}, {"name": "kv", "version": 1}]
    assert make_genesis("catalog", validators()).contracts == ()


def test_genesis_replica_config_converts_ms_to_ticks_rounding_up() -> None:
    genesis = make_genesis("catalog", validators(), batch_wait_ms=5, request_timeout_ms=1001,
                           view_change_timeout_ms=1000, view_change_timeout_max_ms=8000,
                           status_interval_ms=1, retransmit_interval_ms=250, batch_txs_max=77)
    config = genesis.replica_config("health-dept", tick_ms=10)
    assert isinstance(config, ReplicaConfig)
    assert config.chain_id == "catalog" and config.validators == 4 and config.replica == 2
    assert config.batch_wait_ticks == 1  # 5 ms -> 0.5 tick -> rounded up to 1
    assert config.request_timeout_ticks == 101  # 1001/10 rounded up
    assert config.view_change_timeout_ticks == 100
    assert config.view_change_timeout_max_ticks == 800
    assert config.status_interval_ticks == 1  # at least one tick
    assert config.retransmit_interval_ticks == 25
    assert config.batch_txs_max == 77
    assert config.timestamp_skew_max_ms == 60_000  # stays in ms
    assert genesis.replica_config("housing-registry", tick_ms=1).request_timeout_ticks == 1001
    assert genesis.replica_config("transport", tick_ms=1000).request_timeout_ticks == 2


def test_genesis_defaults_equal_replica_config_defaults_at_10ms_ticks() -> None:
    genesis = make_genesis("catalog", validators())
    assert genesis.replica_config("tax-office", 10) == ReplicaConfig(chain_id="catalog", validators=4, replica=1,
                                                                     genesis_hash=genesis.hash)


def test_genesis_replica_config_rejects_non_validator_and_bad_tick() -> None:
    genesis = make_genesis("catalog", validators(3))
    with pytest.raises(GenesisError, match="'transport' is not a validator of chain 'catalog'"):
        genesis.replica_config("transport", 10)
    with pytest.raises(ValueError, match="tick_ms"):
        genesis.replica_config("tax-office", 0)
    assert ms_to_ticks(0, 10) == 1 and ms_to_ticks(10, 10) == 1 and ms_to_ticks(11, 10) == 2


def _set(path: tuple, value):
    def apply(obj):
        target = obj
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return apply


def _delete(path: tuple):
    def apply(obj):
        target = obj
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return apply


BAD = [
    (_set(("chain_id",), "Catalog"), r"chain_id must match \[a-z0-9-\]\{1,32\}"),
    (_set(("chain_id",), "c" * 33), "chain_id must match"),
    (_set(("chain_id",), 5), "chain_id must match"),
    (_delete(("chain_id",)), "chain_id is missing"),
    (_set(("validators",), []), "validators must be a non-empty array"),
    (_set(("validators", 1, "department"), "housing-registry"),
     r"validators\[1\]\.department 'housing-registry' is listed twice"),
    (_set(("validators", 1, "department"), "Tax Office"), r"validators\[1\]\.department must be"),
    (_set(("validators", 2, "public_key"), "zz" * 32), r"validators\[2\]\.public_key must be 64 hex characters"),
    (_set(("validators", 2, "public_key"), "ab" * 31), r"validators\[2\]\.public_key must be 64 hex"),
    (_set(("validators", 2, "public_key"), "00" * 32), r"validators\[2\]\.public_key is not a valid Ed25519"),
    (_set(("validators", 3, "public_key"), KEYS[0].verify_key.encode().hex()),
     r"validators\[3\]\.public_key is also used by another validator"),
    (_set(("validators", 0, "address"), "localhost"), r"validators\[0\]\.address must be \"host:port\""),
    (_set(("validators", 0, "address"), "127.0.0.1:0"), r"validators\[0\]\.address"),
    (_set(("validators", 1, "address"), "127.0.0.1:7001"), r"validators\[1\]\.address .* used by another"),
    (_delete(("validators", 0, "address")), r"validators\[0\]\.address is missing"),
    (_set(("validators", 0, "port"), 1), r"unknown field validators\[0\]\.'port'"),
    (_set(("consensus", "batch_txs_max"), "1000"), "consensus.batch_txs_max must be an integer"),
    (_set(("consensus", "batch_txs_max"), 0), "consensus.batch_txs_max must be an integer between 1"),
    (_set(("consensus", "batch_txs_max"), 10.0), "consensus.batch_txs_max must be an integer"),
    (_set(("consensus", "batch_txs_max"), True), "consensus.batch_txs_max must be an integer"),
    (_delete(("consensus", "fetch_blocks_max")), "consensus.fetch_blocks_max is missing"),
    (_set(("consensus", "batch_tx_max"), 5), "unknown field consensus.'batch_tx_max'"),
    (_set(("consensus", "window_blocks"), 31), r"window_blocks \(31\) must be at least 2 x"),
    (_set(("consensus", "view_change_timeout_max_ms"), 999), "view_change_timeout_max_ms must be >="),
    (_delete(("contracts",)), r'contracts is missing: .* "contracts": \[\{"name": "kv", "version": 1\}\] for the '
                              r"open key-value store every chain ran before; that makes a new chain"),
    (_set(("contracts",), {"kv": 1}), "contracts must be an array"),
    (_set(("contracts",), ["kv"]), r"contracts\[0\] must be an object"),
    (_set(("contracts",), [{"name": "kv"}]), r"contracts\[0\]\.version is missing"),
    (_set(("contracts",), [{"version": 1}]), r"contracts\[0\]\.name is missing"),
    (_set(("contracts",), [{"name": "kv", "version": 1, "code": "x"}]), r"unknown field contracts\[0\]\.'code'"),
    (_set(("contracts",), [{"name": "k v", "version": 1}]), r"contracts\[0\]\.name 'k v' is not a valid name"),
    (_set(("contracts",), [{"name": "", "version": 1}]), r"contracts\[0\]\.name must be a non-empty name"),
    (_set(("contracts",), [{"name": "k" * 65, "version": 1}]), r"contracts\[0\]\.name is 65 bytes long"),
    (_set(("contracts",), [{"name": "kv", "version": 0}]), r"contracts\[0\]\.version must be an integer between 1"),
    (_set(("contracts",), [{"name": "kv", "version": True}]), r"contracts\[0\]\.version must be an integer"),
    (_set(("contracts",), [{"name": "kv", "version": "1"}]), r"contracts\[0\]\.version must be an integer"),
    (_set(("contracts",), [{"name": "kv", "version": 1}, {"name": "kv", "version": 2}]),
     r"contracts\[1\]\.name 'kv' is listed twice; a chain runs one version of each contract"),
    (_set(("created",), 2025), "created must be a string"),
    (_delete(("founders",)), "founders is missing: .* `govchain genesis assemble`"),
    (_set(("founders",), {}), "founders must be an array"),
    (_set(("founders", 1, "department"), "housing-registry"), r"founders\[1\]\.department 'housing-registry' is listed twice"),
    (_set(("founders", 1, "key"), OFFICERS[0].verify_key.encode().hex()), r"founders\[1\]\.key is also another founder's"),
    (_set(("founders", 1, "key"), "00" * 32), r"founders\[1\]\.key is not a valid Ed25519 public key"),
    (lambda o: o["founders"].pop(), "validator\\(s\\) transport not among the founders"),
    (_set(("signatures", 0, "department"), "ministry"), r"signatures\[0\]\.department \"ministry\" is not a founder"),
    (_set(("signatures", 0, "signature"), "ab"), r"signatures\[0\]\.signature must be 128 hex characters"),
    (lambda o: o["signatures"].append(dict(o["signatures"][0])), r"signatures\[4\]: housing-registry signed twice"),
    (_set(("app_state",), {"catalog": {}}), r"app_state\.catalog: the chain runs no contract 'catalog'"),
    (_set(("app_state",), []), "app_state must be an object keyed by contract name"),
    (_set(("extra",), 1), "unknown field 'extra'"),
]


@pytest.mark.parametrize("change, message", BAD)
def test_genesis_validation_names_the_bad_field(tmp_path, change, message) -> None:
    obj = genesis_obj()
    change(obj)
    path = tmp_path / "g.json"
    write_json(path, obj)
    with pytest.raises(GenesisError, match=message) as info:
        load_genesis(path)
    assert str(info.value).startswith(str(path))


def test_genesis_load_rejects_bad_files(tmp_path) -> None:
    with pytest.raises(GenesisError, match="genesis file not found"):
        load_genesis(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(GenesisError, match="not valid JSON"):
        load_genesis(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(GenesisError, match="must be a JSON object"):
        load_genesis(tmp_path / "list.json")
    (tmp_path / "dup.json").write_text('{"chain_id": "a", "chain_id": "b"}')
    with pytest.raises(GenesisError, match="duplicate key 'chain_id'"):
        load_genesis(tmp_path / "dup.json")
    text = json.dumps(genesis_obj()).replace('"batch_txs_max": 1000', '"batch_txs_max": NaN')
    (tmp_path / "nan.json").write_text(text)
    with pytest.raises(GenesisError, match="NaN is not allowed"):
        load_genesis(tmp_path / "nan.json")


def test_genesis_make_accepts_validators_in_several_forms() -> None:
    key = KEYS[0].verify_key
    a = make_genesis("c", [("housing-registry", key, "h:1")])
    b = make_genesis("c", [{"department": "housing-registry", "public_key": key.encode().hex(), "address": "h:1"}])
    c = make_genesis("c", [Validator(department="housing-registry", public_key=key.encode().hex(), address="h:1")])
    d = make_genesis("c", [("housing-registry", key.encode(), "h:1")])
    assert a == b == c == d
    assert isinstance(a, Genesis) and a.consensus == ConsensusParams()
    assert a.validator("housing-registry").public_key_bytes == key.encode()
    with pytest.raises(TypeError, match="batch_tx_max"):
        make_genesis("c", [("housing-registry", key, "h:1")], batch_tx_max=1)
    with pytest.raises(GenesisError, match="make_genesis: chain_id"):
        make_genesis("C!", [("housing-registry", key, "h:1")])


def test_genesis_write_is_readable_json(tmp_path) -> None:
    genesis = make_genesis("catalog", validators(2))
    path = tmp_path / "catalog.json"
    write_genesis(path, genesis)
    write_genesis(path, genesis)  # replacing is fine (atomic rename)
    obj = json.loads(path.read_text())
    assert obj["chain_id"] == "catalog" and len(obj["validators"]) == 2
    assert "created" not in obj
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.json"]  # no temp files left


def test_genesis_reads_are_sorted_unique_never_itself_and_omitted_when_empty() -> None:
    """docs/design.md, "Genesis" and "Cross-chain reads"."""
    a = make_genesis("authn", validators(), reads=["identity", "catalog"])
    b = make_genesis("authn", validators(), reads=["catalog", "identity"])
    assert a.reads == ("catalog", "identity") and a.hash == b.hash
    assert a.to_json_obj()["reads"] == ["catalog", "identity"]
    plain = make_genesis("authn", validators())
    assert plain.reads == () and "reads" not in plain.to_json_obj()  # existing chains keep their hash
    assert genesis_from_obj(genesis_obj(reads=[])).hash == genesis_from_obj(genesis_obj()).hash
    for bad, words in ((["catalog"], "never the chain itself"), (["x", "x"], "each chain once"),
                       (["Bad_Name"], "chain ids"), ("catalog", "array")):
        with pytest.raises(GenesisError, match=words):
            genesis_from_obj(genesis_obj(reads=bad))
