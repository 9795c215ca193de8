"""Verification queries under a standing agreement, on 4 real node processes
with a real identity service (docs/design.md, "Verification queries"):
without a consent nothing ties the query's tag to the citizen, and the
requester's OPRF output proves nothing (it can hash one of its own making).
The provider ([verify] identity) asks the identity service itself, blinded
like any window, and logs a DENY for a tag that is not the citizen's, so no
access hides under a made-up tag."""
from __future__ import annotations

import os
import signal

import grpc
import pytest
from nacl.bindings import crypto_scalarmult_ed25519_noclamp
from nacl.public import PrivateKey

from node.adapters import sample
from node.core.keys import load_signing_key
from node.identity import oprf
from node.net import tls
from node.services.requester import build_request
from node.tools import localnet
from node.tools.verify_cli import check_reply

from .test_verify import CHAINS, IDENTITY, PROVIDER, REQUESTER, commit, home, verify_stub, wait_logged

pytestmark = pytest.mark.e2e
ITEM = "household-district"  # answered under an agreement: no consent required
ITEM_REGISTRATION = {"item_id": ITEM, "fields": ["district"], "answer_modes": ["fields"], "consent_required": False,
                     "requester_roles": ["requester"]}
WINDOW = "housing-registry-verify"  # the provider node's window certificate at the identity service
ID = sample.SAMPLE_ID_NUMBERS[0]  # Dongcheng


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from tests.e2e.conftest import Net

    root = tmp_path_factory.mktemp("agreement")
    specs = localnet.create_network(root, nodes=4, chains=CHAINS)
    net = Net(root, specs, CHAINS)
    oprf.generate_key_file(root / "oprf.key")
    cert, key = tls.issue_cert(root / "tls", root / "tls" / WINDOW, WINDOW)
    identity = specs[IDENTITY].config
    text = identity.read_text()
    identity.write_text(text.replace("require_client_cert = false", "require_client_cert = true")
                        + f'\n[identity]\noprf_key_file = "{root / "oprf.key"}"\nwindows = ["{WINDOW}"]\n'
                        "rate_per_minute = 600\n")
    sample.write_sqlite(home(net, PROVIDER) / "household.db")
    with open(specs[PROVIDER].config, "a") as f:
        sources = sample.SOURCES_TOML.format(dir=home(net, PROVIDER))
        f.write("\n" + sources.replace('item = "household-registration"', f'item = "{ITEM}"') +
                '\n[verify]\nkey_file = "app.key"\n'
                f'identity = "{specs[IDENTITY].client}"\nidentity_cert = "{cert}"\nidentity_key = "{key}"\n')
    net.start()
    try:
        net.wait_ready(timeout_s=60)
        commit(net, PROVIDER, load_signing_key(home(net, PROVIDER) / "app.key"), "catalog", "catalog",
               "register_item", ITEM_REGISTRATION)
        proposed = commit(net, PROVIDER, load_signing_key(home(net, PROVIDER) / "officer.key"), "catalog", "catalog",
                          "propose_agreement", {"department": specs[REQUESTER].department, "items": [ITEM]})
        agreement = proposed[0]["agreement"]
        commit(net, REQUESTER, load_signing_key(home(net, REQUESTER) / "officer.key"), "catalog", "catalog",
               "accept_agreement", {"id": agreement})
        yield net, agreement
    finally:
        net.kill_all()


def _ask(cluster, oprf_key: oprf.OprfKey):
    """A query under the agreement whose tag and OPRF output come from `oprf_key`: (request, digest, reply key,
    provider key)."""
    net, agreement = cluster
    data = oprf.oprf_input(ID)
    n = crypto_scalarmult_ed25519_noclamp(bytes(oprf_key), oprf.hash_to_group(data))
    provider = bytes(load_signing_key(home(net, PROVIDER) / "app.key").verify_key)
    reply = PrivateKey.generate()
    signed, digest = build_request(
        key=load_signing_key(home(net, REQUESTER) / "app.key"), department=net.specs[REQUESTER].department,
        provider=net.specs[PROVIDER].department, provider_key=provider, item=ITEM, fields=["district"],
        predicate=None, tag=oprf.derive_tag(data, n), id_number=ID, oprf_output=n, consent=None,
        agreement=agreement, purpose="electricity-transfer", case_id="case-a", reply_public=bytes(reply.public_key))
    return signed, digest, reply, provider


def test_the_citizens_own_tag_is_answered_under_the_agreement(cluster):
    net, _ = cluster
    signed, digest, reply, provider = _ask(cluster, oprf.load_key(net.root / "oprf.key"))
    answer = check_reply(verify_stub(net).Verify(signed, timeout=30), digest=digest, provider_key=provider,
                         reply_private=reply)
    assert answer == {"found": True, "fields": {"district": "Dongcheng"}}
    assert wait_logged(net, digest)["decision"] == "PERMIT"


def test_a_made_up_tag_is_refused_and_logged_as_deny(cluster):
    """The requester hashes the right ID number with an OPRF key of its own: the tag matches the sealed ID
    number and OPRF output, which the provider checked before; only the identity service can tell."""
    net, _ = cluster
    signed, digest, _, _ = _ask(cluster, oprf.OprfKey.generate())
    with pytest.raises(grpc.RpcError) as refused:
        verify_stub(net).Verify(signed, timeout=30)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details().startswith("the identity service gives another tag for the sealed ID number")
    entry = wait_logged(net, digest)
    assert entry["decision"] == "DENY" and entry["reason"] == "the identity service gives another tag for the ID number"


def test_without_the_identity_service_nothing_is_answered_or_logged(cluster):
    net, _ = cluster
    pid = localnet.pid_of(net.specs[IDENTITY])
    os.kill(pid, signal.SIGSTOP)
    try:
        signed, _, _, _ = _ask(cluster, oprf.load_key(net.root / "oprf.key"))
        with pytest.raises(grpc.RpcError) as refused:
            verify_stub(net).Verify(signed, timeout=30)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "the identity service at" in refused.value.details() and "send the same request again" in \
        refused.value.details()
    answer = verify_stub(net).Verify(signed, timeout=30)  # the same request, once the service is back
    assert answer.log_tx_id and not answer.redelivered
