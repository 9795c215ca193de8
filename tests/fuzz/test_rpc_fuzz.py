"""Hypothesis against every client RPC and the peer Deliver stream of a real
node (issue 7, section 5): structured messages built from the .proto
descriptors, signed transactions with hostile fields and payloads, signed
junk from one validator's real key, and raw bytes through a generic channel.
Each call must end with a documented status, never UNKNOWN, and the node must
stay up, keep committing and log no traceback.

Bounded for CI: EXAMPLES per RPC and kind, deadline off, about a minute in
all. `GOVCHAIN_FUZZ_EXAMPLES=1000 scripts/dev test tests/fuzz` runs longer."""
from __future__ import annotations

import dataclasses
import functools
import json
import os

import grpc
import nacl.signing
import pytest
from google.protobuf import descriptor as d
from google.protobuf import message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.signing import signable
from node.core import codec
from node.core.keys import load_signing_key
from node.pb import client_pb2, consensus_pb2, peer_pb2
from node.core.tx import Transaction, signing_digest

from .conftest import CHAIN, healthy_after, open_channel

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

EXAMPLES = int(os.environ.get("GOVCHAIN_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
RPC_TIMEOUT_S = 10
WAITING_TIMEOUT_S = 0.2  # StreamBlocks past the tip waits for new blocks: cut it short
CLIENT = client_pb2.DESCRIPTOR.services_by_name["Client"]
PEER = peer_pb2.DESCRIPTOR.services_by_name["Peer"]
DELIVER = PEER.methods_by_name["Deliver"]
DOCUMENTED = frozenset({  # what a client may see (client.proto, peer.proto)
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
})
MESSAGE_DEPTH_MAX = 4
FUZZ_KEY = nacl.signing.SigningKey(bytes(range(32)))


# ---- structured messages from descriptors ---------------------------------------

_INTS = {
    d.FieldDescriptor.TYPE_INT32: (-(1 << 31), (1 << 31) - 1), d.FieldDescriptor.TYPE_SINT32: (-(1 << 31), (1 << 31) - 1),
    d.FieldDescriptor.TYPE_SFIXED32: (-(1 << 31), (1 << 31) - 1), d.FieldDescriptor.TYPE_UINT32: (0, (1 << 32) - 1),
    d.FieldDescriptor.TYPE_FIXED32: (0, (1 << 32) - 1), d.FieldDescriptor.TYPE_INT64: (-(1 << 63), (1 << 63) - 1),
    d.FieldDescriptor.TYPE_SINT64: (-(1 << 63), (1 << 63) - 1), d.FieldDescriptor.TYPE_SFIXED64: (-(1 << 63), (1 << 63) - 1),
    d.FieldDescriptor.TYPE_UINT64: (0, (1 << 64) - 1), d.FieldDescriptor.TYPE_FIXED64: (0, (1 << 64) - 1),
}
_texts = st.one_of(st.sampled_from([CHAIN, "", "kv", "put", "catalog", "x" * 300]), st.text(max_size=12))
_blobs = st.one_of(st.binary(max_size=8), st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64),
                   st.binary(max_size=300))


def _scalars(field: d.FieldDescriptor) -> st.SearchStrategy:
    if field.type in _INTS:
        low, high = _INTS[field.type]
        return st.one_of(st.integers(0, 8), st.integers(low, high), st.sampled_from([low, high]))
    if field.type == d.FieldDescriptor.TYPE_STRING:
        return _texts
    if field.type == d.FieldDescriptor.TYPE_BYTES:
        return _blobs
    if field.type == d.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == d.FieldDescriptor.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-5, 50))
    return st.floats()


@functools.cache
def messages(descriptor: d.Descriptor, depth: int = 0) -> st.SearchStrategy:
    """Any message of this type: every field optional, repeated fields and
    maps of a few entries, nesting cut at MESSAGE_DEPTH_MAX."""
    cls = message_factory.GetMessageClass(descriptor)
    fields = {}
    for field in descriptor.fields:
        if field.message_type is not None and depth >= MESSAGE_DEPTH_MAX:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            fields[field.name] = st.dictionaries(_scalars(key), _value(value, depth), max_size=3)
        elif field.is_repeated:
            fields[field.name] = st.lists(_value(field, depth), max_size=3)
        else:
            fields[field.name] = _value(field, depth)
    return st.fixed_dictionaries({}, optional=fields).map(
        lambda kw: cls(**{k: v for k, v in kw.items() if v is not None}))


def _value(field: d.FieldDescriptor, depth: int) -> st.SearchStrategy:
    if field.message_type is None:
        return _scalars(field)
    return st.deferred(lambda: messages(field.message_type, depth + 1))


# ---- transactions that pass decoding: signed, any shape, any payload -----------

def _kv_put(extra: bytes) -> bytes:
    return b'{"key": "k", "value": "v", "x": ' + extra + b"}"


_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
                     lambda inner: st.one_of(st.lists(inner, max_size=3),
                                             st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                     max_leaves=10)
_payloads = st.one_of(
    _blobs,
    _json.map(lambda v: _kv_put(json.dumps(v).encode())),
    st.integers(1, 3000).map(lambda n: _kv_put(b"[" * n + b"]" * n)),  # the nesting bound
    st.integers(1, 5000).map(lambda n: _kv_put(b"7" * n)),  # the integer-digits bound
)


@st.composite
def signed_txs(draw) -> client_pb2.Transaction:
    tx = Transaction(chain_id=draw(st.one_of(st.just(CHAIN), _texts)), sender=bytes(FUZZ_KEY.verify_key),
                     nonce=draw(st.integers(0, (1 << 64) - 1)),
                     contract=draw(st.one_of(st.just("kv"), _texts)),
                     method=draw(st.one_of(st.sampled_from(["put", "delete", "cas"]), _texts)),
                     payload=draw(_payloads))
    return codec.tx_to_proto(dataclasses.replace(tx, signature=FUZZ_KEY.sign(signing_digest(tx)).signature))


def _submit_requests() -> st.SearchStrategy:
    return st.builds(client_pb2.SubmitRequest, tx=signed_txs(), wait_commit=st.booleans(),
                     timeout_ms=st.integers(1, 3000))


def _query_requests() -> st.SearchStrategy:
    """kv's queries (and neighbours) with args that parse as JSON, to reach the contract's own checks."""
    args = st.fixed_dictionaries({}, optional={field: _json for field in ("key", "prefix", "after", "limit")})
    return st.builds(client_pb2.QueryRequest, chain_id=st.just(CHAIN), contract=st.sampled_from(["kv", "authz"]),
                     method=st.sampled_from(["get", "list", "put"]),
                     args=st.one_of(args.map(lambda a: json.dumps(a).encode()), _payloads))


def requests_of(method: d.MethodDescriptor) -> st.SearchStrategy:
    structured = messages(method.input_type)
    if method.input_type.name == "QueryRequest":
        return st.one_of(structured, _query_requests())
    if method.input_type.name == "SubmitRequest":
        return st.one_of(structured, _submit_requests())
    if method.input_type.name == "SubmitBatchRequest":
        return st.one_of(structured, st.builds(client_pb2.SubmitBatchRequest, txs=st.lists(signed_txs(), max_size=4),
                                               wait_commit=st.booleans(), timeout_ms=st.integers(1, 3000)))
    return structured


# ---- calls through a generic channel -------------------------------------------------

def call(channel: grpc.Channel, service: d.ServiceDescriptor, method: d.MethodDescriptor,
         requests: list[bytes], documented: frozenset = DOCUMENTED) -> None:
    """Send raw request bytes (identity serializers); the call must end OK or
    with a status `documented` for the service."""
    path = f"/{service.full_name}/{method.name}"
    ident = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
    timeout = WAITING_TIMEOUT_S if method.name == "StreamBlocks" else RPC_TIMEOUT_S
    try:
        if method.client_streaming and method.server_streaming:
            list(channel.stream_stream(path, **ident)(iter(requests), timeout=timeout))
        elif method.client_streaming:
            channel.stream_unary(path, **ident)(iter(requests), timeout=timeout)
        elif method.server_streaming:
            list(channel.unary_stream(path, **ident)(requests[0], timeout=timeout))
        else:
            channel.unary_unary(path, **ident)(requests[0], timeout=timeout)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and timeout == WAITING_TIMEOUT_S:
            return  # still waiting for a block: a correct answer
        assert exc.code() in documented, f"{path}: {exc.code()} {exc.details()}"


def _batch(method: d.MethodDescriptor, one: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(one, min_size=1, max_size=4) if method.client_streaming else one.map(lambda r: [r])


def _serialized(method: d.MethodDescriptor) -> st.SearchStrategy:
    return requests_of(method).map(lambda m: m.SerializeToString())


@st.composite
def _mangled(draw, method: d.MethodDescriptor) -> bytes:
    """A structured message cut short, or with one byte changed."""
    data = draw(_serialized(method))
    at = draw(st.integers(0, max(len(data) - 1, 0)))
    if not data or draw(st.booleans()):
        return data[:at]
    return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]


def _raw(method: d.MethodDescriptor) -> st.SearchStrategy:
    return st.one_of(st.binary(max_size=200), _mangled(method))


@pytest.fixture(scope="module")
def target(fuzz_net):
    """Node 1 (a backup) of the module's network: (net, client channel, peer channel)."""
    return fuzz_net, open_channel(fuzz_net.specs[1], "client"), open_channel(fuzz_net.specs[1], "peer", peer_as=fuzz_net.specs[3])


@pytest.fixture(autouse=True)
def still_healthy(target):
    with healthy_after(target[0]):
        yield


def fuzz(channel: grpc.Channel, service: d.ServiceDescriptor, method: d.MethodDescriptor,
         calls: st.SearchStrategy, documented: frozenset = DOCUMENTED) -> None:
    """Make one call per drawn list of request bytes; `call` checks its status."""
    @FUZZ
    @given(calls)
    def run(requests):
        call(channel, service, method, requests, documented)

    run()


@pytest.mark.parametrize("kind", ["structured", "raw"])
@pytest.mark.parametrize("name", list(CLIENT.methods_by_name))
def test_client_rpc(target, name, kind):
    method = CLIENT.methods_by_name[name]
    one = _serialized(method) if kind == "structured" else _raw(method)
    fuzz(target[1], CLIENT, method, _batch(method, one))


def test_query_state_refuses_a_bad_contract_name(target):
    """Found by the fuzzer: an empty name answered UNKNOWN with a traceback."""
    net, _, _ = target
    for contract in ("", "x" * 256):
        try:
            net.client(1).QueryState(client_pb2.QueryStateRequest(chain_id=CHAIN, contract=contract, key=b"a"),
                                     timeout=RPC_TIMEOUT_S)
            raise AssertionError(f"contract {contract!r} accepted")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "contract" in exc.details(), exc



def test_submit_stream_ends_with_invalid_argument_at_a_malformed_request(target):
    """Found by the fuzzer: a malformed request right after one the node
    refuses at once (an empty SubmitRequest) made it log a traceback and
    leave the stream hanging until the client's deadline."""
    _, channel, _ = target
    stream = channel.stream_stream("/govchain.v1.Client/SubmitStream", request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
    for _ in range(10):
        try:
            list(stream(iter([b"", b"\xff\xff\xff\xff\x0fnot a protobuf"]), timeout=RPC_TIMEOUT_S))
            raise AssertionError("garbage accepted")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc


def test_peer_stream_structured_and_raw(target):
    fuzz(target[2], PEER, DELIVER, _batch(DELIVER, st.one_of(_serialized(DELIVER), _raw(DELIVER))))


def test_peer_stream_signed_by_a_byzantine_validator(target):
    """Junk that decodes, re-signed with validator 3's real key: it passes the
    envelope checks and reaches the replica. One faulty validator (f = 1)."""
    net, _, channel = target
    key = load_signing_key(net.specs[3].key)

    def signed(pb: consensus_pb2.ConsensusMessage) -> bytes:
        try:
            message = dataclasses.replace(codec.message_from_proto(pb), chain_id=CHAIN, replica=3)
            message = dataclasses.replace(message, signature=key.sign(signable(message)).signature)
            return codec.envelope_to_proto(message).SerializeToString()
        except (codec.CodecError, TypeError):  # does not decode, or has no sender
            return peer_pb2.PeerEnvelope(chain_id=CHAIN, message=pb).SerializeToString()

    fuzz(channel, PEER, DELIVER,
         st.lists(messages(consensus_pb2.ConsensusMessage.DESCRIPTOR).map(signed), min_size=1, max_size=4))
