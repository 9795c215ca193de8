"""Contracts named by genesis, and their read side, on real node processes
over TLS (docs/design.md, "Contracts" and "Queries")."""
from __future__ import annotations

import json

import grpc
import pytest

from node.core import codec
from node.pb import client_pb2

from .conftest import RPC_TIMEOUT_S, make_tx, rpc_code, submit_batch

pytestmark = pytest.mark.e2e


def query(client, method: str, chain: str = "demo", contract: str = "kv", **args):
    return client.Query(client_pb2.QueryRequest(chain_id=chain, contract=contract, method=method,
                                                args=json.dumps(args).encode()), timeout=RPC_TIMEOUT_S)


def test_query_answers_the_same_on_every_node_and_sub_chains_take_no_kv(net_factory, sender):
    net = net_factory(nodes=4, chains=("demo", "catalog"))
    puts = [make_tx(sender, "demo", f"account/{i}", f"owner-{i}") for i in range(5)]
    puts.append(make_tx(sender, "demo", "property/unit-1203", "housing-registry"))
    assert all(r.committed for r in submit_batch(net.client(0), puts).results)
    height = net.wait_same_head("demo", range(4), at_least=1)["height"]

    answers = set()
    for i in range(4):
        got = query(net.client(i), "get", key="property/unit-1203")
        page = query(net.client(i), "list", prefix="account/", limit=3)
        rest = query(net.client(i), "list", prefix="account/", after="account/2")
        assert got.height == page.height == rest.height == height
        answers.add((got.result, page.result, rest.result))
    assert len(answers) == 1, "nodes at the same height answered differently"
    got, page, rest = answers.pop()
    assert got == b'{"found":true,"value":"housing-registry"}'
    assert json.loads(page) == {"items": [{"key": f"account/{i}", "value": f"owner-{i}"} for i in range(3)],
                                "more": True}
    assert json.loads(rest) == {"items": [{"key": f"account/{i}", "value": f"owner-{i}"} for i in (3, 4)],
                                "more": False}
    assert json.loads(query(net.client(1), "get", key="nobody").result) == {"found": False, "value": None}

    # The sub-chains never run the open kv store: it is not there to write to.
    attempt = make_tx(sender, "catalog", "property/unit-1203", "attacker")
    try:
        net.client(2).Submit(client_pb2.SubmitRequest(tx=codec.tx_to_proto(attempt)), timeout=RPC_TIMEOUT_S)
        raise AssertionError("catalog admitted a kv transaction")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
        assert exc.details() == "chain catalog runs no contract 'kv'; it runs: catalog 1"
    assert submit_batch(net.client(3), [attempt]).results[0].code == grpc.StatusCode.NOT_FOUND.value[0]
    assert net.status(0)["catalog"]["height"] == 0
    # A read method is not a write method, and the other way round.
    not_a_write = make_tx(sender, "demo", "a", "1", method="get")
    assert submit_batch(net.client(0), [not_a_write]).results[0].code == grpc.StatusCode.NOT_FOUND.value[0]

    client = net.client(1)
    for request, code in (
        (client_pb2.QueryRequest(chain_id="nowhere", contract="kv", method="get"), grpc.StatusCode.FAILED_PRECONDITION),
        (client_pb2.QueryRequest(chain_id="catalog", contract="kv", method="get"), grpc.StatusCode.NOT_FOUND),
        (client_pb2.QueryRequest(chain_id="demo", contract="kv", method="put"), grpc.StatusCode.NOT_FOUND),
        (client_pb2.QueryRequest(chain_id="demo", contract="kv", method="get", args=b'{"key": 7}'),
         grpc.StatusCode.INVALID_ARGUMENT),
        (client_pb2.QueryRequest(chain_id="demo", contract="kv", method="list", args=b'{"limit": 5000}'),
         grpc.StatusCode.INVALID_ARGUMENT),
        (client_pb2.QueryRequest(chain_id="demo", contract="no such", method="get"), grpc.StatusCode.INVALID_ARGUMENT),
    ):
        assert rpc_code(client.Query, request, timeout=RPC_TIMEOUT_S) == code, request
