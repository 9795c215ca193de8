"""`govchain` CLI against a running network: every command's output parsed and checked."""
from __future__ import annotations

import json
import os
import stat

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.e2e


def test_cli_keys_status_tx_block_state(net_factory, tmp_path):
    key = tmp_path / "client.key"
    out = json.loads(run_cli("keys", "generate", "--out", str(key), "--json").stdout)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    public = out["public_key"]
    assert len(bytes.fromhex(public)) == 32
    content = key.read_bytes()
    again = run_cli("keys", "generate", "--out", str(key), check=False)
    assert again.returncode != 0 and "error" in again.stderr
    assert key.read_bytes() == content, "keys generate overwrote an existing key"
    assert run_cli("keys", "show", str(key)).stdout.strip() == public
    assert json.loads(run_cli("keys", "show", str(key), "--json").stdout)["public_key"] == public

    net = net_factory(nodes=4, chains=("demo",))
    node = net.specs[2].client
    status = json.loads(run_cli("status", "--node", node, "--json").stdout)
    assert status["department"] == net.specs[2].department
    demo = status["chains"]["demo"]
    assert demo["replica"] == 2 and demo["height"] == 0 and len(demo["peers"]) == 3 and demo["view"] == 0

    payload = json.dumps({"key": "greeting", "value": "hello"})
    sub = json.loads(run_cli("tx", "submit", "--node", node, "--chain", "demo", "--key", str(key),
                             "--method", "put", "--payload", payload, "--nonce", "7", "--wait", "--json").stdout)
    assert sub["committed"] is True
    receipt = sub["receipt"]
    assert receipt["status"] == "OK" and receipt["height"] == 1 and receipt["tx_id"] == sub["tx_id"]

    got = json.loads(run_cli("tx", "get", "--node", net.specs[0].client, "--chain", "demo", "--id", sub["tx_id"],
                             "--json").stdout)
    assert got["tx"] == {"chain_id": "demo", "sender": public, "nonce": 7, "contract": "kv", "method": "put",
                         "payload": payload}
    assert got["receipt"] == receipt

    net.wait_same_head("demo", range(4), at_least=1)
    block = json.loads(run_cli("block", "get", "--node", net.specs[3].client, "--chain", "demo", "--height", "1",
                               "--json").stdout)
    assert block["height"] == 1 and block["chain_id"] == "demo" and block["txs"] == 1
    assert block["parent_hash"] == "00" * 32
    assert len(set(block["certificate"]["signers"])) >= 3  # 2f+1 of 4
    assert block["hash"] == json.loads(run_cli("status", "--node", node, "--json").stdout)["chains"]["demo"]["head"]
    by_hash = json.loads(run_cli("block", "get", "--node", node, "--chain", "demo", "--hash", block["hash"],
                                 "--json").stdout)
    # Each node keeps the 2f+1 commits it collected itself: the certificates may differ, the block may not.
    assert by_hash.pop("certificate")["view"] == block.pop("certificate")["view"]
    assert by_hash == block

    state = json.loads(run_cli("state", "get", "--node", node, "--chain", "demo", "--key", "greeting",
                               "--json").stdout)
    assert state == {"found": True, "value": "hello", "height": 1}
    missing = run_cli("state", "get", "--node", node, "--chain", "demo", "--key", "nope", "--json", check=False)
    assert missing.returncode == 1 and json.loads(missing.stdout)["found"] is False

    ask = ("query", "--node", node, "--chain", "demo", "--contract", "kv")
    got = json.loads(run_cli(*ask, "--method", "get", "--args", '{"key": "greeting"}', "--json").stdout)
    assert got == {"chain_id": "demo", "contract": "kv", "method": "get", "height": 1,
                   "result": {"found": True, "value": "hello"}}
    listed = run_cli(*ask, "--method", "list").stdout  # --args defaults to {}
    assert json.loads(listed[:listed.rindex("(")]) == {"items": [{"key": "greeting", "value": "hello"}],
                                                       "more": False}
    assert listed.rstrip().endswith("(at height 1)")
    wrong = run_cli(*ask, "--method", "put", "--args", "{}", check=False)
    assert wrong.returncode == 1 and "NOT_FOUND: contract kv has no query 'put'; its queries: get, list" in wrong.stderr
    bad = run_cli(*ask, "--method", "get", "--args", "not json", check=False)
    assert bad.returncode == 1 and "INVALID_ARGUMENT: kv.get: args is not JSON" in bad.stderr

    # Replaying the same signed transaction (same nonce) is refused with the gRPC code.
    replay = run_cli("tx", "submit", "--node", node, "--chain", "demo", "--key", str(key), "--method", "put",
                     "--payload", payload, "--nonce", "7", "--json", check=False)
    assert replay.returncode == 1 and "ALREADY_EXISTS" in replay.stderr
    down = run_cli("status", "--node", "127.0.0.1:1", "--timeout", "1", check=False)
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr

    # TLS material: found in a local cluster's directory; plaintext does not reach a TLS node.
    found = run_cli("status", "--node", node, "--json", env={"GOVCHAIN_CA": "", "GOVCHAIN_CLUSTER_DIR": str(net.root)})
    assert json.loads(found.stdout)["department"] == net.specs[2].department
    plain = run_cli("status", "--node", node, "--insecure", "--timeout", "2", check=False)
    assert plain.returncode == 1 and "UNAVAILABLE" in plain.stderr and "--insecure" in plain.stderr
    lost = run_cli("status", "--node", node, check=False,
                   env={"GOVCHAIN_CA": "", "GOVCHAIN_CLUSTER_DIR": str(tmp_path / "nowhere")})
    assert lost.returncode == 2 and "pass --ca FILE (or set GOVCHAIN_CA)" in lost.stderr
