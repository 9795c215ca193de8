"""The read side of contracts (docs/design.md, "Queries"): kv get and list
on a real LevelDB ledger, the statuses run_query's errors map to, and a
Query served by a real ChainNode that reads only fsynced state."""
from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from node.chain.chain_node import ChainNode, Group
from node.contracts import registry_for
from node.contracts.base import MethodContract, query
from node.contracts.kv import LIST_BYTES_MAX, LIST_LIMIT_MAX
from node.ledger.execution import ContractRegistry
from node.ledger.ledger import Ledger
from node.pb import client_pb2
from node.ledger.query import (RESULT_BYTES_MAX, SCAN_LIMIT_MAX, BadQuery, NoSuchQuery, QueryContext, ResultTooLarge,
                        StateSnapshot, run_query)
from node.services.client_api import ClientService
from node.net.transport import Transport
from node.core.codec import request_from_tx
from node.core.genesis import make_genesis
from node.core.tx import sign_transaction
from tests.node.test_chain_budgets import KEYS, Aborted, Context
from tests.node.test_execution import CHAIN, Chain, block, tx


def kv(state: StateSnapshot, method: str, registry=None, **args) -> dict:
    answer = run_query(registry or registry_for(CHAIN, [("kv", 1)]), state, chain_id=CHAIN, contract="kv",
                       method=method, args=json.dumps(args).encode())
    return json.loads(answer)


@pytest.fixture
def chain(tmp_path):
    c = Chain(tmp_path / "ledger")
    yield c
    c.ledger.close()


@pytest.fixture
def service(tmp_path):
    """A ClientService over one real ChainNode (not started) of chain CHAIN, running kv."""
    genesis = make_genesis(CHAIN, [(f"d{i}", KEYS[i].verify_key, f"127.0.0.1:{7001 + i}") for i in range(4)],
                           contracts=[("kv", 1)])
    ledger = Ledger(str(tmp_path / "node"), CHAIN, genesis.hash, create=True)
    chain = ChainNode(genesis=genesis, department="d1", signing_key=KEYS[1], ledger=ledger,
                      registry=registry_for(CHAIN, genesis.contracts), tick_ms=10, transport=Transport(16, 4 << 20),
                      mempool_max=1000, pool=None)
    yield ClientService("d1", {CHAIN: chain})
    ledger.close()


def test_a_snapshot_keeps_the_state_of_its_height(chain):
    chain.run(tx("put", key="a", value="1"), tx("put", key="c", value="3"))
    pinned = StateSnapshot(chain.ledger)
    chain.run(tx("put", key="a", value="2"), tx("put", key="b", value="new"), tx("delete", key="c"))
    now = StateSnapshot(chain.ledger)
    assert pinned.height == 1 and now.height == 2
    assert kv(pinned, "get", key="a") == {"found": True, "value": "1"}
    assert kv(pinned, "get", key="b") == {"found": False, "value": None}
    assert kv(pinned, "list") == {"items": [{"key": "a", "value": "1"}, {"key": "c", "value": "3"}], "more": False}
    assert kv(now, "list") == {"items": [{"key": "a", "value": "2"}, {"key": "b", "value": "new"}], "more": False}
    pinned.close()
    now.close()


def test_kv_answers_in_one_canonical_encoding(chain):
    chain.run(tx("put", key="k", value="värde"))
    answer = run_query(registry_for(CHAIN, [("kv", 1)]), StateSnapshot(chain.ledger), chain_id=CHAIN,
                       contract="kv", method="get", args=b'{ "key" : "k" }')
    assert answer == '{"found":true,"value":"värde"}'.encode()
    assert run_query(registry_for(CHAIN, [("kv", 1)]), StateSnapshot(chain.ledger), chain_id=CHAIN,
                     contract="kv", method="list", args=b"") == '{"items":[{"key":"k","value":"värde"}],"more":false}'.encode()


def test_kv_list_pages_by_prefix_after_and_limit(chain):
    keys = [f"account/{i:03}" for i in range(25)] + ["acc", "account", "accounts/x", "b"]
    chain.run(*(tx("put", key=k, value=k.upper()) for k in keys))
    state = StateSnapshot(chain.ledger)
    seen, after = [], None
    while True:
        page = kv(state, "list", prefix="account/", limit=7, **({"after": after} if after else {}))
        seen += [item["key"] for item in page["items"]]
        assert all(item["value"] == item["key"].upper() for item in page["items"])
        if not page["more"]:
            break
        assert len(page["items"]) == 7
        after = page["items"][-1]["key"]
    assert seen == sorted(k for k in keys if k.startswith("account/"))  # each once, in order
    assert kv(state, "list", prefix="account/", after="account/024") == {"items": [], "more": False}
    assert kv(state, "list", prefix="account/", after="b") == {"items": [], "more": False}
    assert [i["key"] for i in kv(state, "list", prefix="account/", after="a")["items"]][:1] == ["account/000"]
    assert [i["key"] for i in kv(state, "list", limit=3)["items"]] == ["acc", "account", "account/000"]
    assert len(kv(state, "list")["items"]) == len(keys)  # the default limit (100) covers them


def test_kv_list_stops_at_its_byte_budget(chain):
    big = "x" * 60_000
    chain.run(*(tx("put", key=f"k{i:02}", value=big) for i in range(12)))
    page = kv(StateSnapshot(chain.ledger), "list", limit=LIST_LIMIT_MAX)
    assert LIST_BYTES_MAX == 512 * 1024 and page["more"] and len(page["items"]) == 8  # 8 x 60,027 bytes fit
    assert kv(StateSnapshot(chain.ledger), "list", after=page["items"][-1]["key"])["items"][0]["key"] == "k08"


@pytest.mark.parametrize("contract, method, args, error, message", [
    ("authz", "get", b"{}", NoSuchQuery, "chain test-chain runs no contract 'authz'; it runs: kv 1"),
    ("kv", "put", b"{}", NoSuchQuery, "contract kv has no query 'put'; its queries: get, list"),
    ("kv", "nope", b"{}", NoSuchQuery, "contract kv has no query 'nope'"),
    ("", "get", b"{}", BadQuery, "contract must be a non-empty name"),
    ("k v", "get", b"{}", BadQuery, "contract 'k v' is not a valid name"),
    ("kv", "g" * 65, b"{}", BadQuery, "method is 65 bytes long, more than the 64 allowed"),
    ("kv", "get", b"[1]", BadQuery, "kv.get: args must be a JSON object"),
    ("kv", "get", b"{", BadQuery, "kv.get: args is not JSON"),
    ("kv", "get", b"\xff", BadQuery, "kv.get: args is not JSON"),
    ("kv", "get", b'{"key": 1.5}', BadQuery, "kv.get: args has a non-integer number '1.5'"),
    ("kv", "get", b"{}", BadQuery, "kv.get: field 'key' must be a string"),
    ("kv", "get", json.dumps({"key": "k" * 257}).encode(), BadQuery, "key longer than 256 characters"),
    ("kv", "list", b'{"limit": 0}', BadQuery, "field 'limit' must be an integer from 1 to 1000"),
    ("kv", "list", b'{"limit": 1001}', BadQuery, "field 'limit' must be an integer from 1 to 1000"),
    ("kv", "list", b'{"limit": true}', BadQuery, "field 'limit' must be an integer"),
    ("kv", "list", b'{"after": ""}', BadQuery, "field 'after' must not be empty"),
    ("kv", "list", b'{"limit": ' + b"[" * 65 + b"]" * 65 + b"}", BadQuery, "args nests arrays/objects 66 deep"),
    ("kv", "get", b" " * (64 * 1024 + 1), BadQuery, "args are 65537 bytes, more than the 65536 allowed"),
])
def test_bad_queries_raise_the_error_of_their_status(chain, contract, method, args, error, message):
    with pytest.raises(error, match=None) as info:
        run_query(registry_for(CHAIN, [("kv", 1)]), StateSnapshot(chain.ledger), chain_id=CHAIN,
                  contract=contract, method=method, args=args)
    assert message in str(info.value)


class Chatty(MethodContract):
    name = "chatty"
    version = 1

    @query
    def everything(self, ctx: QueryContext, args: dict) -> str:
        return "x" * RESULT_BYTES_MAX  # + 2 quotes

    @query
    def unbounded(self, ctx: QueryContext, args: dict) -> list:
        return ctx.scan(limit=SCAN_LIMIT_MAX + 1)


def test_an_answer_over_the_limit_is_refused_and_scans_are_bounded(chain):
    registry = ContractRegistry([Chatty()])
    state = StateSnapshot(chain.ledger)
    with pytest.raises(ResultTooLarge, match=f"chatty.everything answered {RESULT_BYTES_MAX + 2} bytes"):
        run_query(registry, state, chain_id=CHAIN, contract="chatty", method="everything", args=b"")
    with pytest.raises(ValueError, match="scan limit must be 1..10000"):
        run_query(registry, state, chain_id=CHAIN, contract="chatty", method="unbounded", args=b"")


def test_a_contract_reads_only_its_own_namespace(chain):
    chain.run(tx("put", key="a", value="1"))
    assert QueryContext(chain_id=CHAIN, contract="other", state=StateSnapshot(chain.ledger)).get(b"a") is None
    assert QueryContext(chain_id=CHAIN, contract="kv", state=StateSnapshot(chain.ledger)).get(b"a") == b"1"


async def _ask(service: ClientService, request):
    """(QueryResponse or None, the status it aborted with or None)."""
    context = Context()
    call = service.Query if isinstance(request, client_pb2.QueryRequest) else service.QueryState
    try:
        return await call(request, context), None
    except Aborted:
        return None, context.code


def test_query_and_query_state_read_only_fsynced_state(service):
    """A committed block whose group fsync has not finished is invisible:
    Query and QueryState answer from the state at durable_height, and see the
    block once its fsync is done (node/chain/chain_node.py, _release)."""
    chain: ChainNode = service._chains[CHAIN]
    put = sign_transaction(KEYS[0], chain_id=CHAIN, nonce=1, contract="kv", method="put",
                           payload=b'{"key": "a", "value": "1"}')
    get = client_pb2.QueryRequest(chain_id=CHAIN, contract="kv", method="get", args=b'{"key": "a"}')
    raw = client_pb2.QueryStateRequest(chain_id=CHAIN, contract="kv", key=b"a")

    async def run():
        group = Group()
        chain._commit(block(1, [request_from_tx(put)], chain.ledger.tip_link), group)
        assert chain.ledger.height == 1 and chain.ledger.state_get("kv", b"a") == b"1"  # written, not synced
        (answer, _), (value, _) = await _ask(service, get), await _ask(service, raw)
        assert (json.loads(answer.result), answer.height, value.found, value.height) == \
            ({"found": False, "value": None}, 0, False, 0)
        await chain._release(group)
        (answer, _), (value, _) = await _ask(service, get), await _ask(service, raw)
        assert (json.loads(answer.result), answer.height, value.value, value.height) == \
            ({"found": True, "value": "1"}, 1, b"1", 1)

    asyncio.run(run())


@pytest.mark.parametrize("chain_id, contract, method, args, code", [
    ("nope", "kv", "get", b"", grpc.StatusCode.FAILED_PRECONDITION),
    (CHAIN, "authz", "get", b"", grpc.StatusCode.NOT_FOUND),
    (CHAIN, "kv", "put", b"", grpc.StatusCode.NOT_FOUND),
    (CHAIN, "kv", "get", b"[]", grpc.StatusCode.INVALID_ARGUMENT),
    (CHAIN, "kv", "", b"", grpc.StatusCode.INVALID_ARGUMENT),
])
def test_query_statuses_on_a_chain_node(service, chain_id, contract, method, args, code):
    request = client_pb2.QueryRequest(chain_id=chain_id, contract=contract, method=method, args=args)
    assert asyncio.run(_ask(service, request))[1] == code
