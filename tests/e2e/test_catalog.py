"""The catalog chain on a real 4-process network (docs/design.md,
"Identities and permissions"): a key added by 3 of 4 departments over real
gRPC is usable at once, refusals are PERMISSION_DENIED with the rule, and
every node holds the same state root."""
from __future__ import annotations

import json

import grpc
import nacl.signing
import pytest

from node.core.keys import load_signing_key
from node.pb import client_pb2

from .conftest import RPC_TIMEOUT_S, run_cli, submit_one

pytestmark = pytest.mark.e2e


def submit(net, i: int, signer, method: str, payload: dict):
    return submit_one(net, i, signer, "catalog", method, payload)


def query(net, i: int, method: str, **args) -> dict:
    return json.loads(net.client(i).Query(client_pb2.QueryRequest(
        chain_id="catalog", contract="catalog", method=method, args=json.dumps(args).encode()),
        timeout=RPC_TIMEOUT_S).result)


def test_three_departments_add_a_key_that_is_usable_at_once(net_factory, tmp_path):
    net = net_factory(nodes=4, chains=("catalog",))
    officer = {s.department: load_signing_key(f"{s.home}/officer.key") for s in net.specs}
    service = {s.department: load_signing_key(f"{s.home}/app.key") for s in net.specs}
    new = nacl.signing.SigningKey.generate()
    new_hex = bytes(new.verify_key).hex()
    assert query(net, 1, "departments")["approvals"] == 3  # a majority of 4

    # housing-registry proposes through the CLI an officer would use
    change = {"type": "add_key", "department": "power-company", "key": new_hex, "roles": ["provider"]}
    out = json.loads(run_cli("tx", "submit", "--node", net.specs[0].client, "--chain", "catalog",
                             "--contract", "catalog", "--method", "propose", "--payload", json.dumps({"change": change}),
                             "--key", f"{net.specs[0].home}/officer.key", "--wait", "--json").stdout)
    assert out["receipt"]["status"] == "OK", out
    change_id = json.loads(out["receipt"]["output"])["change"]
    assert change_id == out["tx_id"]

    item = {"item_id": "account.holder", "fields": ["holder"], "answer_modes": ["predicate"],
            "consent_required": True, "requester_roles": ["requester"]}
    with pytest.raises(grpc.RpcError) as refused:  # not yet: the change is pending
        submit(net, 1, new, "register_item", item)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == (f"permission denied: catalog.register_item needs role 'provider'; "
                                       f"key {new_hex[:16]} is not registered in the catalog")
    with pytest.raises(grpc.RpcError) as refused:  # a service key may not approve
        submit(net, 2, service["public-security"], "approve", {"change": change_id})
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "catalog.approve needs role 'governance'; key" in refused.value.details()
    assert "of public-security has roles [identity, provider, requester]" in refused.value.details()

    assert json.loads(submit(net, 1, officer["power-company"], "approve", {"change": change_id}).output)["status"] \
        == "pending"
    receipt = submit(net, 2, officer["public-security"], "approve", {"change": change_id})
    assert json.loads(receipt.output) == {"change": change_id, "status": "applied", "approvals": 3, "needed": 3}
    late = submit(net, 3, officer["market-regulation"], "approve", {"change": change_id})
    assert (late.status, late.message) == ("FAILED", f"change {change_id} was already applied at catalog height "
                                                     f"{receipt.height}")

    # every node knows the key now (once it has the block durable)
    net.wait_same_head("catalog", range(4), at_least=late.height)
    for i in range(4):
        assert query(net, i, "key", key=new_hex)["key"]["since"] == receipt.height
    registered = submit(net, 3, new, "register_item", item)
    assert registered.status == "OK", registered.message
    head = net.wait_same_head("catalog", range(4), at_least=registered.height)  # node 0 reads its durable state
    assert query(net, 0, "item", item_id="account.holder")["item"]["department"] == "power-company"

    roots = {net.client(i).GetBlock(client_pb2.GetBlockRequest(chain_id="catalog", height=head["height"]),
                                    timeout=RPC_TIMEOUT_S).header.state_root for i in range(4)}
    assert len(roots) == 1 and roots != {bytes(32)}
    out = json.loads(run_cli("chain", "verify", "--node", net.specs[2].client, "--genesis",
                             str(net.genesis("catalog")), "--json").stdout)
    assert out["ok"] and out["height"] == head["height"], out
