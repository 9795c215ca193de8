"""A proactive offer on 4 real node processes and a real mosquitto
(docs/design.md, "Push notices and offers"): market-regulation issues an
unemployment-registration certificate on the cert chain; power-company's node
(standing in for the benefits office), configured with an [[offers]] table,
sees the record commit and pushes an offer, sealed to the app key the authn
chain binds to the holder's tag; `govchain notices` prints it."""
from __future__ import annotations

import json
import os
import time

import pytest

from node.core.keys import generate_key_file, load_signing_key
from node.core.tx import sign_transaction
from node.pb import client_pb2
from node.tools import localnet
from tests.mosquitto import mosquitto, mosquitto_factory  # noqa: F401 (fixtures)

from .conftest import run_cli, submit_batch

pytestmark = pytest.mark.e2e
ISSUER, PUSHER, IDENTITY = 1, 2, 3  # market-regulation, power-company, public-security
OFFER = """
[[offers]]
id = "unemployment-benefit"
chain = "cert"
contract = "cert"
method = "issue"
tag_field = "holder_tag"
notice = "unemployment-benefit.apply"
where = {type = "unemployment-registration"}
"""


def commit(net, i: int, key_file, chain: str, method: str, payload: dict) -> client_pb2.SubmitResponse:
    tx = sign_transaction(load_signing_key(key_file), chain_id=chain, nonce=time.time_ns(), contract=chain,
                          method=method, payload=json.dumps(payload).encode())
    result = submit_batch(net.client(i), [tx]).results[0]
    assert result.committed and result.receipt.status == client_pb2.Receipt.OK, result
    return result


def test_offer_pushed_to_the_bound_app_key_when_a_matching_record_commits(net_factory, mosquitto, tmp_path):
    net = net_factory(chains=("catalog", "authn", "cert"), mqtt_port=mosquitto.port, start=False)
    with open(net.specs[PUSHER].config, "a") as f:
        f.write(OFFER)
    net.start()
    net.wait_ready(timeout_s=60)
    home = {i: localnet.Path(net.specs[i].home) for i in range(4)}
    citizen_key = tmp_path / "citizen.key"
    citizen = generate_key_file(citizen_key)
    tag = os.urandom(32).hex()
    broker = f"{mosquitto.host}:{mosquitto.port}"
    notices = ("notices", "--key", str(citizen_key), "--broker", broker, "--tag", tag)
    run_cli(*notices, "--wait", "1")  # the citizen's app opens its persistent session, then goes offline

    now = int(time.time() * 1000)
    bound = commit(net, IDENTITY, home[IDENTITY] / "app.key", "authn", "record", {
        "event_id": "ev-1", "tag": tag, "method": "face-app", "assurance": 3,
        "app_key": bytes(citizen.verify_key).hex(), "expires_at_ms": now + 20 * 60_000,
        "window": "public-security/app"})
    net.wait_same_head("authn", [PUSHER], at_least=bound.receipt.height)

    def issue(cert_id: str, kind: str):
        return commit(net, ISSUER, home[ISSUER] / "app.key", "cert", "issue", {
            "cert_id": cert_id, "type": kind, "holder_tag": tag, "valid_from_ms": now, "valid_until_ms": None,
            "field_root": "ab" * 32})

    issue("mc-1", "marriage-certificate")  # another kind of record: no offer
    registered = issue("ur-1", "unemployment-registration")

    out = run_cli(*notices, "--json", "--count", "1", "--wait", "60")
    [line] = out.stdout.splitlines()
    got = json.loads(line)
    assert got["department"] == net.specs[PUSHER].department
    # The first notice is the matching record's: the earlier marriage certificate was not offered.
    assert got["notice"] == {"kind": "offer", "offer": "unemployment-benefit", "notice": "unemployment-benefit.apply",
                             "source": {"chain": "cert", "height": registered.receipt.height,
                                        "tx_id": registered.tx_id.hex()}}
    assert len(bytes.fromhex(got["digest"])) == 32
