"""Hypothesis against the application services on the client port (the
rest of issue 7, section 5's "every client RPC"): Audit.List,
Verification.Verify, Cases.OpenCase and GetCase, Identity.Evaluate, each on
a real node that serves it (an identity service, a provider with sources and
[verify] identity, a competent department with [cases]). Structured messages
from the .proto descriptors and raw bytes; every call must end OK or with a
status its .proto documents, never UNKNOWN, and no node may log a traceback."""
from __future__ import annotations

import os
import time

import grpc
import pytest
from hypothesis import strategies as st

from node.adapters import sample
from node.core import attest
from node.core.crypto import seal_to_signing_key
from node.core.keys import load_signing_key
from node.identity import oprf
from node.net import tls
from node.pb import audit_pb2, cases_pb2, identity_pb2, verify_pb2
from node.tools import localnet
from tests.e2e.conftest import Net
from tests.e2e.test_verify import ITEM_REGISTRATION, commit

from .conftest import CHAIN, healthy_after, open_channel
from .test_rpc_fuzz import _batch, _raw, _serialized, fuzz, messages

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

CHAINS = (CHAIN, "catalog", "authn", "authz", "item")
PROVIDER, COMPETENT, IDENTITY = 0, 2, 3  # housing-registry, power-company, public-security
C = grpc.StatusCode
SERVICES = {  # service -> (node serving it, the statuses its .proto documents besides OK)
    audit_pb2.DESCRIPTOR.services_by_name["Audit"]: (1, {
        C.INVALID_ARGUMENT, C.PERMISSION_DENIED, C.FAILED_PRECONDITION, C.RESOURCE_EXHAUSTED}),
    verify_pb2.DESCRIPTOR.services_by_name["Verification"]: (PROVIDER, {
        C.INVALID_ARGUMENT, C.FAILED_PRECONDITION, C.UNAUTHENTICATED, C.PERMISSION_DENIED, C.ALREADY_EXISTS,
        C.ABORTED, C.UNAVAILABLE, C.DEADLINE_EXCEEDED}),
    cases_pb2.DESCRIPTOR.services_by_name["Cases"]: (COMPETENT, {
        C.INVALID_ARGUMENT, C.FAILED_PRECONDITION, C.NOT_FOUND, C.PERMISSION_DENIED, C.DEADLINE_EXCEEDED,
        C.UNAVAILABLE, C.RESOURCE_EXHAUSTED}),
    identity_pb2.DESCRIPTOR.services_by_name["Identity"]: (IDENTITY, {
        C.PERMISSION_DENIED, C.RESOURCE_EXHAUSTED, C.INVALID_ARGUMENT}),
}
METHODS = [(service, method) for service in SERVICES for method in service.methods]


@pytest.fixture(scope="module")
def app_net(tmp_path_factory):
    """Four validators of the platform's chains and `demo`; public-security serves the identity service (the
    tools' certificate is a listed window, so the fuzzer reaches the element checks), housing-registry answers
    verification queries from the sample table (its item registered on the catalog) and checks agreement tags
    with it, power-company drives cases."""
    root = tmp_path_factory.mktemp("app-fuzz")
    specs = localnet.create_network(root, nodes=4, chains=CHAINS)
    net = Net(root, specs, CHAINS)
    oprf.generate_key_file(root / "oprf.key")
    cert, key = tls.issue_cert(root / "tls", root / "tls" / "provider-window", "provider-window")
    identity = specs[IDENTITY].config
    identity.write_text(identity.read_text().replace("require_client_cert = false", "require_client_cert = true")
                        + f'\n[identity]\noprf_key_file = "{root / "oprf.key"}"\n'
                        'windows = ["cluster-client", "provider-window"]\nrate_per_minute = 1000000\nburst = 100000\n')
    sample.write_sqlite(localnet.Path(specs[PROVIDER].home) / "household.db")
    with open(specs[PROVIDER].config, "a") as f:
        f.write("\n" + sample.SOURCES_TOML.format(dir=specs[PROVIDER].home) + '\n[verify]\nkey_file = "app.key"\n'
                f'identity = "{specs[IDENTITY].client}"\nidentity_cert = "{cert}"\nidentity_key = "{key}"\n')
    with open(specs[COMPETENT].config, "a") as f:
        f.write(f'\n[cases]\nkey_file = "app.key"\nproviders = {{ "{specs[PROVIDER].department}" = '
                f'"{specs[PROVIDER].client}" }}\n')
    try:
        net.start()
        net.wait_ready(timeout_s=60)
        commit(net, PROVIDER, load_signing_key(localnet.Path(specs[PROVIDER].home) / "app.key"), "catalog",
               "catalog", "register_item", ITEM_REGISTRATION)
        yield net
    finally:
        net.kill_all()


@pytest.fixture(autouse=True)
def still_healthy(app_net):
    with healthy_after(app_net):
        yield


@pytest.mark.parametrize("kind", ["structured", "raw"])
@pytest.mark.parametrize("service, method", METHODS, ids=[f"{s.name}.{m.name}" for s, m in METHODS])
def test_app_rpc(app_net, service, method, kind):
    node, documented = SERVICES[service]
    one = _serialized(method) if kind == "structured" else _raw(method)
    fuzz(open_channel(app_net.specs[node], "client"), service, method, _batch(method, one),
         frozenset(documented | {C.OK}))


@st.composite
def _signed_queries(draw, net) -> bytes:
    """A verification query that passes authentication: signed by the requester's real key, fresh, addressed
    to the provider's key, with a well-formed base (item, tag, consent, purpose, reply key) of which a few
    fields are replaced by hostile ones, and a SealedSubject sealed to the provider (any, or a resident's
    with its tag). It reaches the checks that log a DENY, the source and the authz contract."""
    requester = load_signing_key(localnet.Path(net.specs[COMPETENT].home) / "app.key")
    provider_key = bytes(load_signing_key(localnet.Path(net.specs[PROVIDER].home) / "app.key").verify_key)
    request = verify_pb2.VerifyRequest(
        item="household-registration", fields=["status"], tag=draw(st.binary(min_size=32, max_size=32)),
        consent_id="consent-fuzz", purpose="fuzzing", case_id="case-fuzz", reply_key=os.urandom(32))
    hostile = draw(messages(verify_pb2.VerifyRequest.DESCRIPTOR))
    for field in draw(st.sets(st.sampled_from(["item", "fields", "predicate", "tag", "consent_id", "agreement_id",
                                                "purpose", "case_id", "reply_key"]), max_size=2)):
        request.ClearField(field)
        if field == "fields":
            request.fields.extend(hostile.fields)
        elif field == "predicate":
            request.ClearField("fields")
            request.predicate = draw(st.one_of(st.just(hostile.predicate), st.sampled_from(
                ['{"field": "status", "op": "eq", "value": "married"}', '{"field": "x", "op": "in", "value": []}',
                 '{"op": "eq"}', "[]", '{"field": "status", "op": "eq", "value": ' + "[" * 200 + "]" * 200 + "}"])))
        else:
            setattr(request, field, getattr(hostile, field))
    request.requester, request.requester_key = net.specs[COMPETENT].department, bytes(requester.verify_key)
    request.provider, request.provider_key = net.specs[PROVIDER].department, provider_key
    request.time_ms, request.nonce = int(time.time() * 1000), os.urandom(24)
    subject = draw(messages(verify_pb2.SealedSubject.DESCRIPTOR))
    if draw(st.booleans()):  # a real resident, and the tag that matches: on to the source and the authz contract
        subject.id_number = draw(st.sampled_from(sample.SAMPLE_ID_NUMBERS))
        subject.oprf_output = os.urandom(32)
        request.tag = oprf.derive_tag(oprf.oprf_input(subject.id_number), subject.oprf_output)
    request.sealed_subject = seal_to_signing_key(provider_key, subject.SerializeToString())
    raw = request.SerializeToString(deterministic=True)
    signature = requester.sign(attest.request_signing_bytes(attest.request_digest(raw))).signature
    return verify_pb2.SignedVerifyRequest(request=raw, signature=signature).SerializeToString()


def test_signed_hostile_verification_queries(app_net):
    service = verify_pb2.DESCRIPTOR.services_by_name["Verification"]
    node, documented = SERVICES[service]
    method = service.methods_by_name["Verify"]
    fuzz(open_channel(app_net.specs[node], "client"), service, method,
         _signed_queries(app_net).map(lambda r: [r]), frozenset(documented | {C.OK}))
