"""The application platform on a real 4-process network (docs/design.md,
"Identities and permissions", "Authentication events", "Certificates"): a
mixed workload over the catalog, authn and cert chains leaves every node with
the same state roots, a presented certificate field verifies against the chain
until its certificate is revoked, and no committed block carries an ID
number, a name or a certificate field value in clear."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time

import grpc
import nacl.signing
import pytest

from node.adapters.sample import RESIDENTS
from node.core import codec
from node.core.keys import load_signing_key
from node.identity import fields, oprf
from node.pb import client_pb2

from .conftest import RPC_TIMEOUT_S, rpc_code, run_cli, signed
from .conftest import submit_one as submit

pytestmark = pytest.mark.e2e

CHAINS = ("catalog", "authn", "cert")
# An ID number: 6-digit region, birth date, 3-digit sequence, check character,
# not inside a longer run of hex digits (digests and keys are hex: any 18
# digits in a row occur there by chance); candidates must pass the check character.
ID_NUMBER = re.compile(rb"(?<![0-9A-Fa-f])[1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
                       rb"[0-9]{3}[0-9Xx](?![0-9A-Fa-f])")


def id_numbers_in(data: bytes) -> list[str]:
    found = []
    for match in ID_NUMBER.finditer(data):
        try:
            found.append(oprf.normalize_id_number(match.group().decode()))
        except oprf.IdNumberError:
            pass
    return found


def refusal(net, i: int, signer, chain: str, method: str, payload: dict) -> grpc.StatusCode:
    """The status code with which node i refuses the transaction at admission."""
    tx = signed(signer, chain, method, payload)
    return rpc_code(net.client(i).Submit, client_pb2.SubmitRequest(tx=codec.tx_to_proto(tx)), timeout=RPC_TIMEOUT_S)


def ok(receipt):
    assert receipt.status == "OK", receipt.message
    return json.loads(receipt.output) if receipt.output else None


def tag_of(key: oprf.OprfKey, id_number: str) -> str:
    """The window's side of the OPRF with the identity service's side run locally."""
    state, blinded = oprf.blind(id_number)
    return oprf.finalize(state, oprf.evaluate(key, blinded)).hex()


def verify_cert(net, i: int, disclosure) -> subprocess.CompletedProcess:
    return run_cli("cert", "verify", "--node", net.specs[i].client, "--chain", "cert",
                   "--disclosure", str(disclosure), "--json", check=False)


def test_mixed_workload_same_roots_verified_certificates_and_no_personal_data_on_chain(net_factory, tmp_path):
    net = net_factory(nodes=4, chains=CHAINS)
    index = {s.department: i for i, s in enumerate(net.specs)}
    officer = {s.department: load_signing_key(f"{s.home}/officer.key") for s in net.specs}
    app = {s.department: load_signing_key(f"{s.home}/app.key") for s in net.specs}
    identity_node, issuer_node = index["public-security"], index["market-regulation"]
    identity_key = oprf.OprfKey.generate()  # the identity service's key: never on chain

    # catalog: a provider registers what it can answer; three departments add a key by governance
    ok(submit(net, index["housing-registry"], app["housing-registry"], "catalog", "register_item", {
        "item_id": "property.owner", "fields": ["owner_is_subject"], "answer_modes": ["predicate"],
        "consent_required": True, "requester_roles": ["requester"]}))
    new_key = nacl.signing.SigningKey.generate()
    change = ok(submit(net, 0, officer[net.specs[0].department], "catalog", "propose", {"change": {
        "type": "add_key", "department": net.specs[0].department, "key": bytes(new_key.verify_key).hex(),
        "roles": ["provider"]}}))["change"]
    for spec in net.specs[1:3]:
        ok(submit(net, index[spec.department], officer[spec.department], "catalog", "approve", {"change": change}))

    # authn: a face check at the window binds each resident's application key to their tag
    tags, citizens = {}, {}
    now_ms = int(time.time() * 1000)
    for n, (id_number, *_rest) in enumerate(RESIDENTS):
        tags[id_number] = tag_of(identity_key, id_number)
        citizens[id_number] = nacl.signing.SigningKey.generate()
        ok(submit(net, identity_node, app["public-security"], "authn", "record", {
            "event_id": f"ev-{n}", "tag": tags[id_number], "method": "face-window", "assurance": 4,
            "app_key": bytes(citizens[id_number].verify_key).hex(), "expires_at_ms": now_ms + 20 * 60_000,
            "window": "public-security/window-1"}))
    # a key without the identity role records nothing
    assert refusal(net, identity_node, app["housing-registry"], "authn", "record", {}) \
        == grpc.StatusCode.PERMISSION_DENIED

    # cert: the issuer certifies each resident's fields; only the salted Merkle root goes on chain
    certs = {}
    for n, (id_number, name, status, household, district, born, _size) in enumerate(RESIDENTS):
        cert = fields.make_certificate(f"mc-{n}", "cert", {
            "full_name": name, "id_number": id_number, "marital_status": status, "household_no": household,
            "district": district, "birth_date": born})
        certs[id_number] = cert
        ok(submit(net, issuer_node, app["market-regulation"], "cert", "issue", {
            "cert_id": cert["cert_id"], "type": "household-record", "holder_tag": tags[id_number],
            "valid_from_ms": now_ms - 60_000, "valid_until_ms": None, "field_root": cert["field_root"]}))
    revoked_id = RESIDENTS[2][0]
    ok(submit(net, issuer_node, app["market-regulation"], "cert", "set_status",
              {"cert_id": certs[revoked_id]["cert_id"], "status": "revoked"}))
    assert refusal(net, index["housing-registry"], officer["housing-registry"], "cert", "set_status", {
        "cert_id": certs[RESIDENTS[0][0]]["cert_id"], "status": "revoked"}) == grpc.StatusCode.PERMISSION_DENIED  # not an issuer

    # every node: the same head (hence the same state root) on every chain, and a chain that verifies
    heads = {chain: net.wait_same_head(chain, range(4), at_least=1) for chain in CHAINS}
    for chain in CHAINS:
        roots = set()
        for i in range(4):
            response = net.client(i).GetBlock(client_pb2.GetBlockRequest(chain_id=chain, height=heads[chain]["height"]),
                                              timeout=RPC_TIMEOUT_S)
            roots.add(response.header.state_root)
        assert len(roots) == 1, f"{chain}: nodes disagree on the state root"
        out = json.loads(run_cli("chain", "verify", "--node", net.specs[3].client, "--genesis",
                                 str(net.genesis(chain)), "--json").stdout)
        assert out["ok"] and out["height"] == heads[chain]["height"], out

    # a presented field verifies at any node until its certificate is revoked
    valid = tmp_path / "valid.json"
    valid.write_text(json.dumps(fields.disclose(certs[RESIDENTS[0][0]], "marital_status")))
    result = verify_cert(net, 1, valid)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["valid"] is True
    gone = tmp_path / "revoked.json"
    gone.write_text(json.dumps(fields.disclose(certs[revoked_id], "marital_status")))
    result = verify_cert(net, 2, gone)
    assert result.returncode == 1 and "revoked" in result.stdout + result.stderr
    forged = fields.disclose(certs[RESIDENTS[1][0]], "marital_status")
    forged["value"] = "single"
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    assert verify_cert(net, 0, tmp_path / "forged.json").returncode == 1

    # the PII scan: every committed block (transactions and receipts) of every chain
    secrets = {value.encode() for id_number, name, _status, household, _district, born, _size in RESIDENTS
               for value in (id_number, name, household, born)}
    scanned = 0
    for chain in CHAINS:
        for height in range(1, heads[chain]["height"] + 1):
            data = net.client(0).GetBlock(client_pb2.GetBlockRequest(chain_id=chain, height=height),
                                          timeout=RPC_TIMEOUT_S).SerializeToString()
            scanned += 1
            assert not id_numbers_in(data), f"{chain} block {height} holds ID numbers {id_numbers_in(data)}"
            leaked = [s.decode() for s in secrets if s in data]
            assert not leaked, f"{chain} block {height} holds {leaked}"
    assert scanned >= len(RESIDENTS) * 2 + 4
    # the scan itself finds what it looks for
    planted = json.dumps({"holder": RESIDENTS[0][1], "id": RESIDENTS[0][0]}).encode()
    assert id_numbers_in(b"x" + planted) == [RESIDENTS[0][0]] and RESIDENTS[0][1].encode() in planted


def test_repair_of_a_chain_that_reads_the_catalog_uses_this_nodes_catalog_store(net_factory):
    """docs/design.md, "Cross-chain reads": the authn chain's blocks are
    re-executed against this node's own catalog store, so the catalog is
    needed (and repaired first) before authn."""
    net = net_factory(nodes=4, chains=("catalog", "authn"))
    index = {s.department: i for i, s in enumerate(net.specs)}
    identity_node = index["public-security"]
    victim = next(i for i in range(4) if i != identity_node)
    key = oprf.OprfKey.generate()
    now_ms = int(time.time() * 1000)
    app = load_signing_key(f"{net.specs[identity_node].home}/app.key")
    for n, (id_number, *_rest) in enumerate(RESIDENTS[:3]):
        ok(submit(net, identity_node, app, "authn", "record", {
            "event_id": f"ev-{n}", "tag": tag_of(key, id_number), "method": "face-window", "assurance": 4,
            "app_key": bytes(nacl.signing.SigningKey.generate().verify_key).hex(),
            "expires_at_ms": now_ms + 20 * 60_000, "window": "public-security/window-1"}))
    head = net.wait_same_head("authn", range(4), at_least=3)
    assert net.stop(victim) == "stopped"
    data = os.path.join(net.specs[victim].home, "data")
    logs = sorted(n for n in os.listdir(os.path.join(data, "authn")) if n.endswith(".log"))
    os.truncate(os.path.join(data, "authn", logs[-1]), 0)  # the disk lost the authn chain's newest writes

    def repair() -> subprocess.CompletedProcess:
        return run_cli("chain", "repair", "--config", str(net.specs[victim].config), "--chain", "authn",
                       "--from", net.specs[identity_node].client, "--json", check=False)

    os.rename(os.path.join(data, "catalog"), os.path.join(data, "catalog-away"))
    refused = repair()
    assert refused.returncode == 3 and "reads catalog" in refused.stderr and "repair catalog first" in refused.stderr
    os.rename(os.path.join(data, "catalog-away"), os.path.join(data, "catalog"))
    done = repair()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["height"] >= head["height"]

    net.start(victim)
    net.wait_ready()
    ok(submit(net, identity_node, app, "authn", "record", {
        "event_id": "ev-after", "tag": tag_of(key, RESIDENTS[3][0]), "method": "face-window", "assurance": 4,
        "app_key": bytes(nacl.signing.SigningKey.generate().verify_key).hex(),
        "expires_at_ms": now_ms + 20 * 60_000, "window": "public-security/window-1"}))
    final = net.wait_same_head("authn", range(4), at_least=head["height"] + 1, timeout_s=40)
    assert final["height"] > head["height"]
