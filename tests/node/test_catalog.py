"""The catalog contract and the platform's permission checks on a real
LevelDB ledger (docs/design.md, "Identities and permissions"): genesis app
state, every method's role, governance k of n and the forgeries it refuses,
key rotation, item ownership, agreements, admission statuses."""
from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import grpc
import nacl.signing
import pytest

from consensus import messages as m
from node.chain.admission import Outcome, screen
from node.chain.chain_node import ChainNode
from node.contracts import BadAppState, genesis_state, registry_for
from node.contracts.catalog import CatalogContract, PENDING_CHANGES_MAX
from node.identity.citizens import CITIZEN
from node.identity.signers import ANYONE, ROLES, SignerRecord, check_role, lookup_signer, permission_refusal
from node.contracts import available
from node.core import codec
from node.core.genesis import GenesisError, genesis_from_obj, make_genesis
from node.core.tx import sign_transaction
from node.ledger.execution import FAILED, OK, Executor
from node.ledger.ledger import open_ledger
from node.ledger.query import BadQuery, StateSnapshot, run_query
from node.net.transport import Transport
from node.pb import client_pb2
from node.services.client_api import ClientService

CHAIN = "catalog"
DEPTS = ("a", "b", "c", "d")


def key(name: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(name.encode().ljust(32, b"."))


GOV = {d: key(f"gov-{d}") for d in DEPTS}
GOV2_A = key("gov2-a")  # a second governance key of department a
SERVICE = {d: key(f"service-{d}") for d in DEPTS}
STRANGER = key("stranger")
NODE_KEYS = [key(f"node-{d}") for d in DEPTS]


def hexkey(k: nacl.signing.SigningKey) -> str:
    return bytes(k.verify_key).hex()


def section(approvals: int = 3) -> dict:
    return {"governance": {"approvals": approvals}, "departments": [
        {"id": d, "name": f"Department {d.upper()}", "validator": True,
         "roles": ["governance", "provider", "requester"],
         "keys": [{"key": hexkey(GOV[d]), "roles": ["governance"]},
                  *([{"key": hexkey(GOV2_A), "roles": ["governance"]}] if d == "a" else []),
                  {"key": hexkey(SERVICE[d]), "roles": ["provider", "requester"]}]}
        for d in DEPTS]}


def genesis(app_section: dict | None = None):
    return make_genesis(CHAIN, [(d, NODE_KEYS[i].verify_key, f"127.0.0.1:{7001 + i}") for i, d in enumerate(DEPTS)],
                        contracts=[("catalog", 1)], app_state={"catalog": app_section or section()},
                        founders={d: GOV[d] for d in DEPTS})


_nonce = iter(range(1, 1 << 30))


def request(signer, method: str, payload: dict, nonce: int | None = None) -> m.Request:
    return codec.request_from_tx(sign_transaction(signer, chain_id=CHAIN, nonce=nonce or next(_nonce),
                                                  contract="catalog", method=method,
                                                  payload=json.dumps(payload).encode()))


class Catalog:
    """A catalog chain's ledger and executor, one transaction per block unless told."""

    def __init__(self, path, app_section: dict | None = None) -> None:
        self.genesis = genesis(app_section)
        self.registry = registry_for(CHAIN, self.genesis.contracts)
        self.ledger = open_ledger(str(path), CHAIN, self.genesis.hash,
                                  genesis_state(CHAIN, self.genesis.app_state, self.registry))
        self.executor = Executor(CHAIN, self.registry, self.ledger)

    def block(self, *requests: m.Request):
        seq = self.ledger.height + 1
        proposal = m.Proposal(chain_id=CHAIN, seq=seq, proposer=0, timestamp_ms=1000 * seq, requests=requests)
        link = m.next_link(self.ledger.tip_link, proposal.digest)
        commit = m.Commit(chain_id=CHAIN, view=0, seq=seq, digest=proposal.digest, link=link, replica=0,
                          signature=b"s" * 64)
        cert = m.CommitCertificate(chain_id=CHAIN, view=0, seq=seq, digest=proposal.digest, link=link,
                                   commits=(commit,))
        b = m.CommittedBlock(proposal=proposal, certificate=cert)
        result = self.executor.execute_block(b, self.ledger.tip_header)
        self.ledger.commit_block(b, result.header, result.receipts, result.state_writes)
        return result

    def send(self, signer, method: str, **payload):
        return self.block(request(signer, method, payload)).receipts[0]

    def ok(self, signer, method: str, **payload) -> dict:
        receipt = self.send(signer, method, **payload)
        assert receipt.status == OK, receipt.message
        return json.loads(receipt.output) if receipt.output else {}

    def refused(self, signer, method: str, **payload) -> str:
        receipt = self.send(signer, method, **payload)
        assert receipt.status == FAILED, receipt
        return receipt.message

    def query(self, method: str, **args) -> dict:
        state = StateSnapshot(self.ledger)
        try:
            return json.loads(run_query(self.registry, state, chain_id=CHAIN, contract="catalog", method=method,
                                        args=json.dumps(args).encode()))
        finally:
            state.close()

    def read(self, contract: str, k: bytes) -> bytes | None:
        return self.ledger.state_get(contract, k)

    def approve_all(self, change_id: str, departments=("b", "c")) -> None:
        for d in departments:
            self.ok(GOV[d], "approve", change=change_id)


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "catalog")
    yield c
    c.ledger.close()


def propose(cat: Catalog, signer, change: dict) -> str:
    out = cat.ok(signer, "propose", change=change)
    assert out["status"] == "pending"
    return out["change"]


def add_key_change(department: str, k, roles=("governance",)) -> dict:
    return {"type": "add_key", "department": department, "key": hexkey(k), "roles": list(roles)}


# ---- genesis -------------------------------------------------------------------------

def test_genesis_app_state_is_the_initial_state_and_in_the_hash(cat) -> None:
    assert cat.ledger.height == 0
    assert cat.query("key", key=hexkey(GOV["b"])) == {"found": True, "key": {
        "department": "b", "roles": ["governance"], "status": "active", "since": 0, "revoked_at": None}}
    listed = cat.query("departments")
    assert [d["id"] for d in listed["departments"]] == list(DEPTS) and listed["approvals"] == 3
    dept = cat.query("department", id="a")
    assert dept["department"]["roles"] == ["governance", "provider", "requester"]
    assert sorted(k["key"] for k in dept["keys"]) == sorted([hexkey(GOV["a"]), hexkey(GOV2_A), hexkey(SERVICE["a"])])
    other = section()
    other["departments"][1]["keys"][1]["roles"] = ["provider"]
    assert genesis(other).hash != cat.genesis.hash
    # reformatting does not change the hash; the parsed file holds the same app_state
    assert genesis_from_obj(json.loads(json.dumps(cat.genesis.to_json_obj(), indent=3))).hash == cat.genesis.hash


def _bad(mutate) -> str:
    s = section()
    mutate(s)
    with pytest.raises(BadAppState) as info:
        genesis_state(CHAIN, genesis(s).app_state, registry_for(CHAIN, [("catalog", 1)]))
    return str(info.value)


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s["departments"][0]["keys"][0].update(roles=["issuer"]),
     "departments[0]: roles [issuer] are not roles of department a ([governance, provider, requester])"),
    (lambda s: s["departments"][1]["keys"].append({"key": hexkey(GOV["a"]), "roles": ["governance"]}),
     f"departments[1]: key {hexkey(GOV['a'])[:16]} is already registered (to a, active)"),
    (lambda s: s["departments"].append(dict(s["departments"][0])), "departments[4]: department a is listed twice"),
    (lambda s: s["governance"].update(approvals=5),
     "governance.approvals is 5, but only 4 department(s) hold a governance key"),
    (lambda s: s["departments"][2].update(roles=["governance", "mayor"]),
     "departments[2]: change.roles: \"mayor\" is not one of auditor, governance, identity, issuer, provider, requester"),
    (lambda s: s.update(extra=1), "catalog section: unknown field 'extra'"),
    (lambda s: s["departments"][0]["keys"][0].update(key="00" * 32), "is not a valid Ed25519 public key"),
])
def test_bad_genesis_sections_are_refused_with_the_reason(mutate, message) -> None:
    got = _bad(mutate)
    assert got.startswith("chain catalog: genesis app_state.catalog: ") and message in got, got


def test_genesis_app_state_names_only_the_contracts_it_runs() -> None:
    obj = genesis().to_json_obj()
    obj["app_state"]["kv"] = {}
    with pytest.raises(GenesisError, match=r"app_state.kv: the chain runs no contract 'kv' \(contracts: catalog\)"):
        genesis_from_obj(obj)
    obj = genesis().to_json_obj()
    obj["app_state"]["catalog"]["governance"]["approvals"] = 2.0
    with pytest.raises(GenesisError, match="app_state.catalog holds 2.0"):
        genesis_from_obj(obj)


def test_daemon_refuses_a_bad_section_at_start(tmp_path) -> None:
    from node.core.config import TlsConfig, config_template, load_config
    from node.core.genesis import write_genesis
    from node.core.keys import HEADER, public_key_hex, write_key_file
    from node.daemon import Node, StartupError

    s = section()
    s["governance"]["approvals"] = 0
    write_genesis(tmp_path / "catalog.json", genesis(s))
    write_key_file(tmp_path / "node.key", header=HEADER, public_hex=public_key_hex(NODE_KEYS[0]),
                   secret=bytes(NODE_KEYS[0]))
    (tmp_path / "node.toml").write_text(config_template(
        "a", tls=TlsConfig(insecure=True), chains=[("catalog", "catalog.json")]))
    node = Node(load_config(tmp_path / "node.toml"))
    with pytest.raises(StartupError, match=r"^chain catalog: genesis app_state.catalog: field 'approvals' must be "
                                           r"an integer from 1 to 256$"):
        node._open_chains()
    assert not (tmp_path / "data" / "catalog").exists()


# ---- permissions -----------------------------------------------------------------------

ROLE_OF = dict(CatalogContract.methods)


def test_every_catalog_write_method_declares_a_platform_role() -> None:
    assert ROLE_OF == {"accept_agreement": "governance", "approve": "governance", "propose": "governance",
                       "propose_agreement": "governance", "register_item": "provider", "retire_item": "provider",
                       "revoke_agreement": "governance"}
    for (name, version), cls in available().items():
        for method_name, role in getattr(cls, "methods", {}).items():
            for one in (role,) if isinstance(role, str) else role:  # a tuple: any of its roles
                assert one in (*ROLES, ANYONE, CITIZEN), f"{name} {version}: {method_name} declares unknown role {one!r}"


@pytest.mark.parametrize("method_name", sorted(ROLE_OF))
def test_unregistered_and_wrong_role_keys_are_refused_for_every_method(cat, method_name) -> None:
    role = ROLE_OF[method_name]
    rule = f"permission denied: catalog.{method_name} needs role {role!r}; "
    assert cat.refused(STRANGER, method_name) == rule + f"key {hexkey(STRANGER)[:16]} is not registered in the catalog"
    wrong = SERVICE["b"] if role == "governance" else GOV["b"]
    roles = "provider, requester" if role == "governance" else "governance"
    assert cat.refused(wrong, method_name) == rule + f"key {hexkey(wrong)[:16]} of b has roles [{roles}]"


@pytest.mark.parametrize("method_name", sorted(ROLE_OF))
def test_revoked_keys_are_refused_for_every_method(cat, method_name) -> None:
    change = propose(cat, GOV["a"], {"type": "revoke_key", "key": hexkey(SERVICE["d"])})
    cat.approve_all(change)
    height = cat.ledger.height
    change = propose(cat, GOV["a"], {"type": "revoke_key", "key": hexkey(GOV["d"])})
    cat.approve_all(change)
    revoked = GOV["d"] if ROLE_OF[method_name] == "governance" else SERVICE["d"]
    at = cat.ledger.height if revoked is GOV["d"] else height
    assert cat.refused(revoked, method_name) == (
        f"permission denied: catalog.{method_name} needs role {ROLE_OF[method_name]!r}; "
        f"key {hexkey(revoked)[:16]} of d was revoked at catalog height {at}")


def test_identity_view_reads_through_any_reader() -> None:
    record = {"department": "x", "roles": ["issuer"], "status": "active", "since": 7, "revoked_at": None}
    k = bytes(range(32))
    store = {("catalog", b"key/" + k.hex().encode()): json.dumps(record).encode()}
    fake = lambda contract, state_key: store.get((contract, state_key))  # noqa: E731
    signer = lookup_signer(fake, k)
    assert signer == SignerRecord(key=k, department="x", roles=("issuer",), status="active", since=7, revoked_at=None)
    assert check_role(signer, "issuer") is None
    assert check_role(signer, "window") == f"key {k.hex()[:16]} of x has roles [issuer]"
    assert permission_refusal(fake, k, "cert", "issue", "issuer") is None
    assert permission_refusal(fake, bytes(32), "cert", "issue", "issuer") == (
        f"permission denied: cert.issue needs role 'issuer'; key {bytes(32).hex()[:16]} is not registered in the catalog")
    assert permission_refusal(None, k, "cert", "issue", "issuer") == (
        "permission denied: cert.issue needs role 'issuer'; the catalog chain cannot be read here")
    assert permission_refusal(None, k, "kv", "put", ANYONE) is None


# ---- governance ------------------------------------------------------------------------

def test_k_of_n_applies_a_change_exactly_once(cat) -> None:
    new = key("new-b")
    change = propose(cat, GOV["a"], add_key_change("b", new, ["provider"]))
    assert change == cat.ledger.block(cat.ledger.height).proposal.requests[0].id.hex()  # the proposing tx's id
    assert cat.query("pending_changes")["changes"][0]["approvals"][0]["department"] == "a"
    assert cat.refused(new, "register_item", item_id="x", fields=["f"], answer_modes=["predicate"],
                       consent_required=True, requester_roles=["requester"]).endswith("is not registered in the catalog")
    assert cat.ok(GOV["b"], "approve", change=change) == {"change": change, "status": "pending", "approvals": 2,
                                                          "needed": 3}
    assert cat.ok(GOV["c"], "approve", change=change) == {"change": change, "status": "applied", "approvals": 3,
                                                          "needed": 3}
    applied_at = cat.ledger.height
    assert cat.query("key", key=hexkey(new))["key"] == {"department": "b", "roles": ["provider"], "status": "active",
                                                        "since": applied_at, "revoked_at": None}
    assert cat.refused(GOV["d"], "approve", change=change) == (
        f"change {change} was already applied at catalog height {applied_at}")
    assert cat.query("pending_changes")["changes"] == []
    cat.ok(new, "register_item", item_id="x", fields=["f"], answer_modes=["predicate"], consent_required=True,
           requester_roles=["requester"])  # the new key is usable


def test_forged_governance_is_refused(cat) -> None:
    change = propose(cat, GOV["a"], add_key_change("c", key("new-c")))
    assert cat.refused(GOV2_A, "approve", change=change) == f"department a already approved change {change}"
    assert cat.refused(GOV["a"], "approve", change=change) == f"department a already approved change {change}"
    assert cat.refused(GOV["b"], "approve", change="ab" * 32) == f"no change {'ab' * 32}"
    assert cat.refused(GOV["b"], "approve", change="nope").startswith("field 'change' must be 64 lowercase hex")
    assert "needs role 'governance'" in cat.refused(SERVICE["b"], "approve", change=change)
    assert "not registered" in cat.refused(STRANGER, "approve", change=change)
    assert cat.refused(GOV["b"], "propose", change=add_key_change("c", key("new-c"))) == (
        f"an identical change is pending as {change}; approve it instead")
    assert cat.refused(GOV["b"], "propose", change={"type": "add_key", "department": "c"}) == (
        "change add_key: field 'key' is missing")
    assert cat.refused(GOV["b"], "propose", change={"type": "grant_everything"}).startswith(
        "change must be an object whose type is one of")
    assert cat.refused(GOV["b"], "propose", change=add_key_change("c", GOV["a"])) == (
        f"key {hexkey(GOV['a'])[:16]} is already registered (to a, active); a key is registered once")
    assert cat.refused(GOV["b"], "propose", change=add_key_change("zz", key("z"))) == "department zz is not registered"
    assert cat.query("pending_changes")["changes"][0]["approvals"] == [
        {"department": "a", "key": hexkey(GOV["a"]), "height": 1}]


def test_no_change_may_leave_fewer_governance_departments_than_approvals(cat) -> None:
    revoke_d = propose(cat, GOV["a"], {"type": "revoke_key", "key": hexkey(GOV["d"])})
    # the same rule holds when the last approval arrives: a pending change re-checks then
    set_c = propose(cat, GOV["b"], {"type": "set_roles", "key": hexkey(GOV["c"]), "roles": ["provider"]})
    cat.approve_all(revoke_d)
    message = ("cannot apply: it would leave 2 department(s) with an active governance key, fewer than the 3 "
               "approvals a change needs: governance could never act again")
    assert cat.refused(GOV["c"], "approve", change=set_c) == f"change {set_c} {message}"
    assert cat.refused(GOV["c"], "propose", change={"type": "revoke_key", "key": hexkey(GOV["b"])}) == (
        message.replace("cannot apply: ", ""))
    # a second governance key of department a may go: a still holds one
    cat.approve_all(propose(cat, GOV["b"], {"type": "revoke_key", "key": hexkey(GOV2_A)}), ("a", "c"))
    assert cat.query("key", key=hexkey(GOV2_A))["key"]["status"] == "revoked"


def test_one_of_n_applies_at_once(tmp_path) -> None:
    cat = Catalog(tmp_path / "one", section(approvals=1))
    try:
        assert cat.ok(GOV["a"], "propose", change=add_key_change("a", key("x")))["status"] == "applied"
        assert cat.query("key", key=hexkey(key("x")))["found"]
    finally:
        cat.ledger.close()


def test_a_rotated_key_is_refused_and_its_successor_accepted(cat) -> None:
    successor = key("gov-b-2026")
    cat.approve_all(propose(cat, GOV["b"], add_key_change("b", successor)), ("a", "c"))
    cat.approve_all(propose(cat, successor, {"type": "revoke_key", "key": hexkey(GOV["b"])}), ("a", "c"))
    revoked_at = cat.ledger.height
    assert cat.refused(GOV["b"], "propose", change=add_key_change("b", key("y"))) == (
        f"permission denied: catalog.propose needs role 'governance'; key {hexkey(GOV['b'])[:16]} of b was revoked "
        f"at catalog height {revoked_at}")
    assert propose(cat, successor, add_key_change("b", key("y")))
    assert cat.refused(GOV["a"], "propose", change=add_key_change("b", GOV["b"])).startswith(
        f"key {hexkey(GOV['b'])[:16]} is already registered (to b, revoked)")


def test_register_department_and_role_limits(cat) -> None:
    change = {"type": "register_department", "id": "e", "name": "E", "validator": False, "roles": ["issuer"]}
    cat.approve_all(propose(cat, GOV["a"], change))
    assert cat.query("department", id="e")["department"] == {"id": "e", "name": "E", "validator": False,
                                                             "roles": ["issuer"], "since": cat.ledger.height}
    assert cat.refused(GOV["a"], "propose", change=add_key_change("e", key("e1"), ["governance"])) == (
        "roles [governance] are not roles of department e ([issuer])")
    cat.approve_all(propose(cat, GOV["a"], add_key_change("e", key("e1"), ["issuer"])))
    narrower = {**change, "roles": ["provider"]}
    assert cat.refused(GOV["a"], "propose", change=narrower) == (
        f"key {hexkey(key('e1'))[:16]} of e holds roles [issuer] the department would no longer have; "
        f"change or revoke it first")


def test_a_block_sees_the_revocation_of_an_earlier_transaction(cat) -> None:
    """Execution reads permissions from the state before each transaction,
    earlier writes of the same block included."""
    change = propose(cat, GOV["a"], {"type": "revoke_key", "key": hexkey(SERVICE["b"])})
    cat.ok(GOV["b"], "approve", change=change)
    item = dict(item_id="i", fields=["f"], answer_modes=["fields"], consent_required=False,
                requester_roles=["requester"])
    result = cat.block(request(GOV["c"], "approve", {"change": change}), request(SERVICE["b"], "register_item", item))
    assert [r.status for r in result.receipts] == [OK, FAILED]
    assert result.receipts[1].message.endswith(f"was revoked at catalog height {cat.ledger.height}")


def test_pending_changes_are_bounded(cat) -> None:
    proposals = [request(GOV["a"], "propose", {"change": add_key_change("a", key(f"k{i}"))})
                 for i in range(PENDING_CHANGES_MAX + 1)]
    receipts = cat.block(*proposals).receipts
    assert [r.status for r in receipts] == [OK] * PENDING_CHANGES_MAX + [FAILED]
    assert receipts[-1].message == (f"{PENDING_CHANGES_MAX} changes are pending, the most the catalog keeps "
                                    f"(PENDING_CHANGES_MAX); approve them first")
    assert len(cat.query("pending_changes")["changes"]) == PENDING_CHANGES_MAX


# ---- items and agreements -----------------------------------------------------------------

ITEM = dict(fields=["owner", "unit"], answer_modes=["predicate"], consent_required=True,
            requester_roles=["requester"])


def test_items_belong_to_their_department(cat) -> None:
    cat.ok(SERVICE["b"], "register_item", item_id="property.owner", **ITEM)
    record = cat.query("item", item_id="property.owner")["item"]
    assert record["department"] == "b" and record["since"] == 1 and record["status"] == "active"
    assert cat.refused(SERVICE["c"], "register_item", item_id="property.owner", **ITEM) == (
        "item property.owner belongs to b; a department registers only its own items")
    assert cat.refused(SERVICE["c"], "retire_item", item_id="property.owner") == (
        "item property.owner belongs to b; a department retires only its own items")
    assert cat.refused(SERVICE["b"], "register_item", item_id="x", **{**ITEM, "answer_modes": ["all"]}) == (
        'answer_modes: "all" is not one of fields, predicate')
    assert cat.refused(SERVICE["b"], "register_item", item_id="x", **{**ITEM, "fields": ["f"] * 2}) == (
        "fields lists a value twice")
    assert cat.refused(SERVICE["b"], "register_item", item_id="x", **{**ITEM, "fields": [f"f{i}" for i in range(65)]}) \
        == "fields must be a list of 1..64 strings"
    cat.ok(SERVICE["c"], "register_item", item_id="account", **ITEM)
    assert [i["item_id"] for i in cat.query("items")["items"]] == ["account", "property.owner"]
    assert [i["item_id"] for i in cat.query("items", department="b")["items"]] == ["property.owner"]
    assert cat.query("items", limit=1) == {"items": [cat.query("item", item_id="account")["item"]], "more": True}
    assert [i["item_id"] for i in cat.query("items", after="account")["items"]] == ["property.owner"]
    cat.ok(SERVICE["b"], "retire_item", item_id="property.owner")
    assert cat.refused(SERVICE["b"], "retire_item", item_id="property.owner") == (
        f"item property.owner was retired at catalog height {cat.ledger.height - 1}")


def test_agreements_need_both_departments(cat) -> None:
    cat.ok(SERVICE["b"], "register_item", item_id="property.owner", **ITEM)
    cat.ok(SERVICE["c"], "register_item", item_id="account", **ITEM)
    assert cat.refused(GOV["a"], "propose_agreement", department="b", items=["property.owner", "account"]) == (
        "the items must all belong to a or all to b (they belong to b, c)")
    agreement = cat.ok(GOV["a"], "propose_agreement", department="b", items=["property.owner"])["agreement"]
    record = cat.query("agreement", id=agreement)["agreement"]
    assert (record["provider"], record["requester"], record["status"]) == ("b", "a", "proposed")
    assert cat.refused(GOV["c"], "accept_agreement", id=agreement) == f"only b accepts agreement {agreement}"
    assert cat.refused(GOV["a"], "accept_agreement", id=agreement) == f"only b accepts agreement {agreement}"
    cat.ok(GOV["b"], "accept_agreement", id=agreement)
    assert cat.query("agreement", id=agreement)["agreement"]["accepted_at"] == cat.ledger.height
    assert cat.refused(GOV["c"], "revoke_agreement", id=agreement) == (
        f"agreement {agreement} is between b and a; only they revoke it")
    cat.ok(GOV["a"], "revoke_agreement", id=agreement)
    assert cat.refused(GOV["b"], "accept_agreement", id=agreement) == (
        f"agreement {agreement} was already revoked at catalog height {cat.ledger.height - 1}")


def test_every_agreement_is_listed_whatever_its_status(cat) -> None:
    """Who may ask whom without a consent is public: the query `agreements` pages through all of them."""
    cat.ok(SERVICE["b"], "register_item", item_id="property.owner", **ITEM)
    ids = [cat.ok(GOV["a"], "propose_agreement", department="b", items=["property.owner"])["agreement"]
           for _ in range(3)]
    cat.ok(GOV["b"], "accept_agreement", id=ids[0])
    cat.ok(GOV["a"], "revoke_agreement", id=ids[1])
    listed = cat.query("agreements")
    assert listed["more"] is False
    assert [(a["id"], a["status"]) for a in listed["agreements"]] == sorted(
        [(ids[0], "active"), (ids[1], "revoked"), (ids[2], "proposed")])
    first = cat.query("agreements", limit=2)
    assert first["more"] is True and first["agreements"] == listed["agreements"][:2]
    rest = cat.query("agreements", after=first["agreements"][-1]["id"])
    assert rest == {"agreements": listed["agreements"][2:], "more": False}
    with pytest.raises(BadQuery, match="catalog.agreements: field 'after' must be 64 lowercase hex"):
        cat.query("agreements", after="property.owner")
    with pytest.raises(BadQuery, match="limit"):  # a page of the largest agreements must fit a query result
        cat.query("agreements", limit=201)


# ---- a faulty primary and admission ----------------------------------------------------------

def test_a_refused_transaction_proposed_anyway_fails_alike_on_every_replica(tmp_path) -> None:
    """A faulty primary proposes what admission refuses: every replica's
    executor gives the same FAILED receipt and the same state root."""
    replicas = [Catalog(tmp_path / f"r{i}") for i in range(4)]
    try:
        forged = request(STRANGER, "propose", {"change": add_key_change("a", STRANGER)}, nonce=1)
        good = request(GOV["a"], "propose", {"change": add_key_change("a", key("k"))}, nonce=2)
        results = [r.block(forged, good) for r in replicas]
        assert {(res.receipts[0].status, res.receipts[0].message, res.header.state_root) for res in results} == {
            (FAILED, f"permission denied: catalog.propose needs role 'governance'; key {hexkey(STRANGER)[:16]} is "
                     f"not registered in the catalog", results[0].header.state_root)}
        assert all(res.receipts[1].status == OK for res in results)
    finally:
        for r in replicas:
            r.ledger.close()


def test_admission_screen_reads_the_catalog(cat) -> None:
    def tx(signer, method="approve"):
        return sign_transaction(signer, chain_id=CHAIN, nonce=next(_nonce), contract="catalog", method=method,
                                payload=b'{"change": "' + b"ab" * 32 + b'"}')

    def outcome(t):
        refusal = screen(t, chain_id=CHAIN, registry=cat.registry, stopping=False, replayed=lambda _: False,
                         catalog=cat.read)
        return (refusal.outcome, refusal.error) if refusal else None

    assert outcome(tx(GOV["b"])) is None  # a governance key passes the cheap checks
    assert outcome(tx(SERVICE["b"])) == (Outcome.PERMISSION_DENIED, (
        f"permission denied: catalog.approve needs role 'governance'; key {hexkey(SERVICE['b'])[:16]} of b has "
        f"roles [provider, requester]"))
    assert outcome(tx(STRANGER))[0] is Outcome.PERMISSION_DENIED
    assert outcome(tx(GOV["b"], "nothing"))[0] is Outcome.NOT_FOUND


class _Context:
    code = details = None

    async def abort(self, code, details):
        self.code, self.details = code, details
        raise RuntimeError("aborted")


def test_submit_answers_permission_denied_and_forgeries_unauthenticated(cat) -> None:
    """Through the client service and a chain node: a registered key without
    the role is PERMISSION_DENIED with the rule; a forgery naming a governance
    key passes the permission check and is refused by the signature check."""
    async def run():
        pool = ThreadPoolExecutor(1)
        chain = ChainNode(genesis=cat.genesis, department="b", signing_key=NODE_KEYS[1], ledger=cat.ledger,
                          registry=cat.registry, tick_ms=10, transport=Transport(16, 4 << 20), mempool_max=100,
                          pool=pool)
        service = ClientService("b", {CHAIN: chain})
        wrong = sign_transaction(SERVICE["c"], chain_id=CHAIN, nonce=1, contract="catalog", method="approve",
                                 payload=b'{"change": "' + b"ab" * 32 + b'"}')
        forged = sign_transaction(STRANGER, chain_id=CHAIN, nonce=2, contract="catalog", method="approve",
                                  payload=b"{}")
        forged = type(forged)(**{**forged.__dict__, "sender": bytes(GOV["c"].verify_key)})
        answers = []
        for t in (wrong, forged):
            context = _Context()
            with pytest.raises(RuntimeError):
                await service.Submit(client_pb2.SubmitRequest(tx=codec.tx_to_proto(t)), context)
            answers.append((context.code, context.details))
        chain.state.close()
        pool.shutdown()
        return answers

    assert asyncio.run(run()) == [
        (grpc.StatusCode.PERMISSION_DENIED,
         f"permission denied: catalog.approve needs role 'governance'; key {hexkey(SERVICE['c'])[:16]} of c has "
         f"roles [provider, requester]"),
        (grpc.StatusCode.UNAUTHENTICATED, "signature does not match sender key and transaction content")]


def test_another_chain_checks_roles_through_its_cross_chain_read(cat, tmp_path) -> None:
    """On a chain other than the catalog, execution reads the catalog at the
    height its block pins (TxContext.read); a chain whose genesis does not
    read the catalog refuses every role but anyone."""
    from node.contracts.base import MethodContract, method
    from node.ledger.execution import ContractRegistry

    class Certs(MethodContract):
        name, version = "certs", 1

        @method(role="issuer")
        def issue(self, ctx, args):
            ctx.put(b"c", b"1")

    issuer = key("issuer")
    cat.approve_all(propose(cat, GOV["a"], {"type": "register_department", "id": "x", "name": "X",
                                            "validator": False, "roles": ["issuer"]}))
    cat.approve_all(propose(cat, GOV["a"], add_key_change("x", issuer, ["issuer"])))
    registered_at = cat.ledger.height

    def run(executor, ledger, signer, read_height):
        t = sign_transaction(signer, chain_id="certs", nonce=next(_nonce), contract="certs", method="issue",
                             payload=b"{}")
        seq = ledger.height + 1
        proposal = m.Proposal(chain_id="certs", seq=seq, proposer=0, timestamp_ms=seq,
                              requests=(codec.request_from_tx(t),),
                              metadata=codec.encode_read_heights({"catalog": read_height}) if executor.reads else b"")
        link = m.next_link(ledger.tip_link, proposal.digest)
        cert = m.CommitCertificate(chain_id="certs", view=0, seq=seq, digest=proposal.digest, link=link, commits=())
        block = m.CommittedBlock(proposal=proposal, certificate=cert)
        result = executor.execute_block(block, ledger.tip_header)
        ledger.commit_block(block, result.header, result.receipts, result.state_writes)
        return result.receipts[0].status, result.receipts[0].message

    lone = open_ledger(str(tmp_path / "lone"), "certs", bytes(32))
    reader = open_ledger(str(tmp_path / "reader"), "certs", bytes(32))
    try:
        alone = Executor("certs", ContractRegistry([Certs()]), lone)
        assert run(alone, lone, issuer, 0) == (
            FAILED, "permission denied: certs.issue needs role 'issuer'; the catalog chain cannot be read here")
        reads = Executor("certs", ContractRegistry([Certs()]), reader, reads=("catalog",),
                         read_sources={"catalog": cat.ledger})
        assert run(reads, reader, issuer, registered_at - 1) == (  # pinned before the key was added
            FAILED, f"permission denied: certs.issue needs role 'issuer'; key {hexkey(issuer)[:16]} is not "
                    f"registered in the catalog")
        assert run(reads, reader, issuer, registered_at) == (OK, "")
        assert run(reads, reader, SERVICE["a"], registered_at) == (
            FAILED, f"permission denied: certs.issue needs role 'issuer'; key {hexkey(SERVICE['a'])[:16]} of a "
                    f"has roles [provider, requester]")  # its record: the genesis app state, version 0
    finally:
        lone.close()
        reader.close()
