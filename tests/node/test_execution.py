"""Executor + kv contract on a real LevelDB ledger: duplicates (Fabric
DUPLICATE_TXID, docs/testing.md S5/E3), failed transactions leave no writes, and
the state root is a deterministic function of the committed blocks (S6)."""
from __future__ import annotations

import hashlib
import json

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import messages as m
from node.core import codec
from node.contracts import registry_for
from node.contracts.base import INT_DIGITS_MAX, PAYLOAD_CONTAINERS_MAX, PAYLOAD_DEPTH_MAX, parse_json_object
from node.core.receipts import DUPLICATE, FAILED, OK
from node.ledger.execution import (
    EMPTY_STATE_ROOT, ContractError, ContractRegistry, ExecutionError, Executor, state_root,
)
from node.ledger.ledger import open_ledger
from node.core.tx import PAYLOAD_BYTES_MAX, Transaction, sign_transaction, verify_signature

CHAIN = "test-chain"
GENESIS = hashlib.sha256(b"genesis").digest()
KEY = nacl.signing.SigningKey(bytes(range(32)))


_nonce = iter(range(1, 1 << 30))


def tx(method: str, contract: str = "kv", chain_id: str = CHAIN, **payload) -> m.Request:
    t = sign_transaction(KEY, chain_id=chain_id, nonce=next(_nonce), contract=contract, method=method,
                         payload=json.dumps(payload).encode())
    return codec.request_from_tx(t)


def block(seq: int, requests, below: bytes = bytes(32)) -> m.CommittedBlock:
    """Block seq whose certified link extends `below` (link(seq-1))."""
    proposal = m.Proposal(chain_id=CHAIN, seq=seq, proposer=0, timestamp_ms=1_000 * seq,
                          requests=tuple(requests))
    link = m.next_link(below, proposal.digest)
    commit = m.Commit(chain_id=CHAIN, view=0, seq=seq, digest=proposal.digest, link=link, replica=0,
                      signature=b"s" * 64)
    cert = m.CommitCertificate(chain_id=CHAIN, view=0, seq=seq, digest=proposal.digest, link=link, commits=(commit,))
    return m.CommittedBlock(proposal=proposal, certificate=cert)


class Chain:
    """A ledger + executor that executes and commits blocks like the shell."""

    def __init__(self, path, registry: ContractRegistry | None = None, **executor_options):
        self.ledger = open_ledger(path, CHAIN, GENESIS)
        self.executor = Executor(CHAIN, registry or registry_for(CHAIN, [("kv", 1)]), self.ledger, **executor_options)

    def run(self, *requests: m.Request):
        b = block(self.ledger.height + 1, requests, self.ledger.tip_link)
        result = self.executor.execute_block(b, self.ledger.tip_header)
        self.ledger.commit_block(b, result.header, result.receipts, result.state_writes)
        return result

    def kv(self, key: str) -> str | None:
        value = self.ledger.state_get("kv", key.encode())
        return value.decode() if value is not None else None


@pytest.fixture
def chain(tmp_path):
    c = Chain(tmp_path / "a")
    yield c
    c.ledger.close()


def statuses(result):
    return [r.status for r in result.receipts]


def test_executor_kv_put_delete_cas(chain):
    result = chain.run(tx("put", key="a", value="1"), tx("put", key="b", value="2"),
                       tx("cas", key="a", expected="1", value="3"), tx("delete", key="b"),
                       tx("cas", key="c", expected=None, value="new"))
    assert statuses(result) == [OK] * 5
    assert (chain.kv("a"), chain.kv("b"), chain.kv("c")) == ("3", None, "new")
    # net writes of the block, sorted, one per key; the delete is a tombstone
    assert result.state_writes == (("kv", b"a", b"3"), ("kv", b"b", None), ("kv", b"c", b"new"))
    assert result.header.state_root == state_root(EMPTY_STATE_ROOT, result.state_writes)
    assert [(r.height, r.index) for r in result.receipts] == [(1, i) for i in range(5)]
    assert json.loads(result.receipts[3].output) == {"deleted": True}


def test_executor_duplicate_tx_is_marked_and_not_executed(chain):
    first = tx("put", key="k", value="v1")
    r1 = chain.run(first, first)  # again in the same block
    assert statuses(r1) == [OK, DUPLICATE]
    chain.run(tx("put", key="k", value="v2"))
    r3 = chain.run(first, tx("put", key="other", value="x"))  # replay in a later block
    assert statuses(r3) == [DUPLICATE, OK]
    assert chain.kv("k") == "v2"  # the replay did not run
    assert r3.state_writes == (("kv", b"other", b"x"),)
    # the index still points at the first occurrence; the DUPLICATE receipt is kept by position
    assert chain.ledger.tx_location(first.id) == (1, 0)
    assert chain.ledger.receipt(first.id).status == OK
    assert chain.ledger.receipt_at(3, 0).status == DUPLICATE
    assert chain.ledger.receipt_at(1, 1).status == DUPLICATE


class Exploding:
    name = "boom"

    def execute(self, ctx, t):
        ctx.put(b"half", b"written")
        if t.method == "fail":
            return FAILED, "refused", b""
        raise ContractError("exploded after a write")


def test_executor_failed_tx_writes_are_discarded(tmp_path):
    c = Chain(tmp_path / "a")
    c.executor.registry.register(Exploding())
    result = c.run(
        tx("put", key="a", value="1"),
        tx("cas", key="a", expected="wrong", value="2"),  # mismatch
        tx("explode", contract="boom"),  # writes, then raises
        tx("fail", contract="boom"),  # writes, then returns FAILED
        tx("put", contract="nope", key="a", value="9"),  # unknown contract
        tx("put", chain_id="elsewhere", key="a", value="9"),  # signed for another chain
        tx("put", key="a"),  # bad payload: no value
        tx("frobnicate", key="a"),  # unknown method
        m.Request(id=hashlib.sha256(b"junk").digest(), body=b"junk"),  # undecodable
        tx("cas", key="a", expected="1", value="4"),  # sees the first put (block overlay)
    )
    assert statuses(result) == [OK] + [FAILED] * 8 + [OK]
    messages = [r.message for r in result.receipts]
    assert "cas failed" in messages[1] and messages[2] == "exploded after a write"
    assert messages[3] == "refused" and "unknown contract 'nope'" in messages[4]
    assert "elsewhere" in messages[5] and "malformed transaction" in messages[8]
    assert result.state_writes == (("kv", b"a", b"4"),)
    assert c.ledger.state_get("boom", b"half") is None and c.kv("a") == "4"
    # a failed transaction is committed (its id is spent) but changed nothing
    assert c.ledger.receipt(result.receipts[2].tx_id).status == FAILED
    c.ledger.close()


def test_executor_can_recheck_signatures(tmp_path):
    c = Chain(tmp_path / "a", verify_tx=verify_signature)
    good = tx("put", key="a", value="1")
    forged = codec.request_from_tx(Transaction(
        chain_id=CHAIN, sender=bytes(KEY.verify_key), nonce=10**9, contract="kv", method="put",
        payload=json.dumps({"key": "a", "value": "stolen"}).encode(), signature=bytes(64),
    ))
    result = c.run(good, forged)
    assert statuses(result) == [OK, FAILED] and result.receipts[1].message == "bad transaction signature"
    assert c.kv("a") == "1"
    c.ledger.close()


def test_executor_contracts_only_see_their_own_namespace(chain):
    class Reader:
        name = "reader"

        def execute(self, ctx, t):
            assert ctx.get(b"a") is None  # kv's "a" is not visible here
            ctx.put(b"a", b"mine")
            return OK, "", b""

    chain.executor.registry.register(Reader())
    result = chain.run(tx("put", key="a", value="kv's"), tx("x", contract="reader"))
    assert statuses(result) == [OK, OK]
    assert chain.ledger.state_get("reader", b"a") == b"mine" and chain.kv("a") == "kv's"


def test_executor_state_root_is_deterministic(tmp_path):
    def history(path, value_in_block_2):
        c = Chain(path)
        roots = [c.run(*reqs).header.state_root for reqs in (
            [common[0]], [common[1], m.Request(id=b"\x07" * 32, body=b"junk")] + value_in_block_2, [common[2]],
        )]
        c.ledger.close()
        return roots

    common = [tx("put", key="x", value="1"), tx("delete", key="x"), tx("put", key="y", value="2")]
    v_a, v_b = tx("put", key="z", value="a"), tx("put", key="z", value="b")
    a = history(tmp_path / "a", [v_a])
    b = history(tmp_path / "b", [v_a])
    c = history(tmp_path / "c", [v_b])
    assert a == b
    assert c[0] == a[0] and c[1] != a[1] and c[2] != a[2]  # an accumulator: the difference persists


def test_executor_same_block_twice_gives_the_same_result(chain):
    chain.run(tx("put", key="a", value="1"))
    b = block(2, [tx("cas", key="a", expected="1", value="2"), tx("put", key="b", value="3")])
    first = chain.executor.execute_block(b, chain.ledger.tip_header)
    second = chain.executor.execute_block(b, chain.ledger.tip_header)  # execution does not write
    assert first == second and first.header.hash == second.header.hash
    assert chain.kv("a") == "1"


def test_executor_refuses_a_block_out_of_order(chain):
    with pytest.raises(ExecutionError, match="height"):
        chain.executor.execute_block(block(2, []), None)
    other = m.CommittedBlock(
        proposal=m.Proposal(chain_id="x", seq=1, proposer=0, timestamp_ms=0),
        certificate=block(1, []).certificate,
    )
    with pytest.raises(ExecutionError, match="chain"):
        chain.executor.execute_block(other, None)


def test_state_root_depends_on_writes_not_their_order():
    w = [("kv", b"a", b"1"), ("kv", b"b", None), ("z", b"a", b"")]
    assert state_root(EMPTY_STATE_ROOT, w) == state_root(EMPTY_STATE_ROOT, list(reversed(w)))
    assert state_root(EMPTY_STATE_ROOT, [("kv", b"b", None)]) != state_root(EMPTY_STATE_ROOT, [("kv", b"b", b"")])
    assert state_root(EMPTY_STATE_ROOT, [("kv", b"ab", b"c")]) != state_root(EMPTY_STATE_ROOT, [("kv", b"a", b"bc")])
    assert state_root(EMPTY_STATE_ROOT, []) != state_root(b"\x01" * 32, [])


# ---- payload bounds: the outcome depends on the bytes, not the interpreter --------

def raw_tx(payload: bytes) -> m.Request:
    """A kv put with a raw payload, bypassing sign_transaction's shape check
    (as a faulty primary could); the executor does not re-check signatures."""
    return codec.request_from_tx(Transaction(chain_id=CHAIN, sender=bytes(KEY.verify_key), nonce=next(_nonce),
                                             contract="kv", method="put", payload=payload, signature=bytes(64)))


def put_with(extra: str) -> bytes:
    return ('{"key": "k", "value": "v", "extra": ' + extra + "}").encode()


def sized(size: int) -> bytes:
    """A valid kv put payload of exactly `size` bytes."""
    payload = put_with('""')
    return payload[:-2] + b"x" * (size - len(payload)) + payload[-2:]


def nested(depth: int) -> str:  # `depth` arrays inside the payload object: total depth + 1
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("payload, problem", [
    (put_with(nested(PAYLOAD_DEPTH_MAX - 1)), None),
    (put_with(nested(PAYLOAD_DEPTH_MAX)), f"{PAYLOAD_DEPTH_MAX + 1} deep, more than the {PAYLOAD_DEPTH_MAX}"),
    (put_with(nested(969)), "970 deep"),  # executed or not, depending on the stack, before the bound
    (put_with(nested(979)), "980 deep"),  # RecursionError before the bound
    (put_with("9" * INT_DIGITS_MAX), None),
    (put_with("-" + "9" * INT_DIGITS_MAX), None),
    (put_with("9" * (INT_DIGITS_MAX + 1)), f"{INT_DIGITS_MAX + 1}-digit number, more than the {INT_DIGITS_MAX}"),
    (put_with("1" * 4300), "4300-digit number"),  # executed before the bound
    (put_with("1" * 4301), "4301-digit number"),  # ValueError (int max str digits) before
    (put_with("0." + "1" * INT_DIGITS_MAX), "non-integer number"),
    (put_with("[" + ",".join(["[]"] * (PAYLOAD_CONTAINERS_MAX - 2)) + "]"), None),  # + the payload object
    (put_with("[" + ",".join(["[]"] * (PAYLOAD_CONTAINERS_MAX - 1)) + "]"),
     f"{2 * PAYLOAD_CONTAINERS_MAX + 2} brackets: more than the {PAYLOAD_CONTAINERS_MAX} arrays/objects"),
    (put_with('"' + "1" * 30 + '"'), None),  # digits inside strings are text
    (put_with("1.5"), "non-integer number '1.5'"),
    (put_with("1e3"), "non-integer number '1e3'"),
    (put_with("NaN"), "NaN, which is not JSON"),
    (put_with("-Infinity"), "-Infinity, which is not JSON"),
    (sized(PAYLOAD_BYTES_MAX), None),
    (sized(PAYLOAD_BYTES_MAX + 1), f"{PAYLOAD_BYTES_MAX + 1} bytes, more than the {PAYLOAD_BYTES_MAX} allowed"),
    (put_with('"[[[[[[[ \\" ]]]]"'), None),  # brackets inside strings do not nest
])
def test_payload_bounds_decide_the_receipt(chain, payload, problem):
    result = chain.run(raw_tx(payload))
    receipt = result.receipts[0]
    if problem is None:
        assert (receipt.status, chain.kv("k")) == (OK, "v"), receipt.message
    else:
        assert receipt.status == FAILED and problem in receipt.message, receipt.message
        assert result.state_writes == ()


class Recursive:
    name = "recursive"

    def execute(self, ctx, t):
        return self.execute(ctx, t)


def test_interpreter_limits_stop_the_node_instead_of_failing_the_tx(chain):
    """A RecursionError depends on the interpreter and its stack: a receipt
    from it could differ between replicas, so it propagates (fail-stop)."""
    chain.executor.registry.register(Recursive())
    with pytest.raises(RecursionError):
        chain.executor.execute_block(block(1, [tx("x", contract="recursive")]), None)


_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8))
_json_values = st.recursive(_json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)), max_leaves=20)
_json_texts = st.one_of(
    _json_values.map(json.dumps),
    st.integers(1, 3000).map(lambda d: "[" * d + "]" * d),
    st.integers(1, 5000).map(lambda n: '{"a": ' + "7" * n + "}"),
    st.lists(st.sampled_from(list('[]{}",:\\ 0123456789.e-truefalsn')), max_size=200).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_json_texts.map(str.encode), st.binary(max_size=300)))
def test_payload_decoding_raises_only_contract_error(payload):
    try:
        value = parse_json_object(payload)
    except ContractError:
        return
    # Accepted: exactly what the standard decoder gives, a JSON object within the bounds.
    assert value == json.loads(payload) and isinstance(value, dict)


def test_hashes_match_the_formulas_documented_in_consensus_proto(chain):
    """An independent re-implementation of the Proposal digest, tx_root,
    state_root, link and block hash as proto/govchain/v1/consensus.proto
    states them (the API contract for client writers)."""
    def sha(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def u(n: int, size: int) -> bytes:
        return n.to_bytes(size, "big")

    chain.run(tx("put", key="gone", value="x"))
    requests = [tx("put", key="a", value="1"), tx("delete", key="gone"), tx("put", key="b", value="2")]
    b = block(2, requests, chain.ledger.tip_link)
    result = chain.executor.execute_block(b, chain.ledger.tip_header)
    p, header = b.proposal, result.header
    link0 = sha(b"govchain:v1:genesis-link:" + u(len(CHAIN), 2) + CHAIN.encode() + GENESIS)
    link1 = sha(b"govchain:v1:link:" + link0 + chain.ledger.header(1).proposal_digest)
    assert chain.ledger.header(1).link == link1
    assert header.link == sha(b"govchain:v1:link:" + link1 + p.digest) == b.certificate.link

    level = [sha(b"\x00" + r.id + sha(r.body)) for r in requests]
    while len(level) > 1:
        level = [sha(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)] + level[len(level) & ~1:]
    assert p.tx_root == level[0] == header.tx_root
    assert m.Proposal(chain_id=CHAIN, seq=3, proposer=0, timestamp_ms=0).tx_root == sha(b"")
    assert p.digest == sha(b"govchain:v1:proposal:" + CHAIN.encode() + u(p.seq, 8) + u(p.proposer, 4)
                           + u(p.timestamp_ms, 8) + p.tx_root + u(0, 4)) == header.proposal_digest
    with_metadata = m.Proposal(chain_id=CHAIN, seq=3, proposer=1, timestamp_ms=5, metadata=b"md")
    assert with_metadata.digest == sha(b"govchain:v1:proposal:" + CHAIN.encode() + u(3, 8) + u(1, 4) + u(5, 8)
                                       + sha(b"") + u(2, 4) + b"md")

    writes = b"govchain:v1:writes:"
    for key, value in ((b"a", b"1"), (b"b", b"2"), (b"gone", None)):
        writes += u(2, 2) + b"kv" + u(len(key), 4) + key
        writes += b"\x00" if value is None else b"\x01" + u(len(value), 4) + value
    parent = chain.ledger.tip_header
    assert header.state_root == sha(b"govchain:v1:state:" + parent.state_root + sha(writes))
    assert header.hash == sha(b"govchain:v1:block:" + u(len(CHAIN), 2) + CHAIN.encode() + u(2, 8) + parent.hash
                              + u(p.proposer, 4) + u(header.timestamp_ms, 8) + header.tx_root + header.state_root
                              + header.proposal_digest + header.link)


# ---- cross-chain reads (docs/design.md, "Cross-chain reads") ---------------------------------

class _Versions:
    """Another chain's versioned state: (contract, key) -> [(height, value)]."""

    def __init__(self, writes):
        self.writes = writes

    def state_get_at(self, contract, key, height):
        found = [v for h, v in self.writes.get((contract, key), []) if h <= height]
        return found[-1] if found else None


def _reads_chain(tmp_path, reads=("catalog",)):
    from tests.readtest_contract import ReadTestContract
    source = _Versions({("kv", b"k"): [(2, b"two"), (5, None), (7, b"seven")]})
    registry = ContractRegistry([ReadTestContract()])
    return Chain(tmp_path / "r", registry, reads=reads, read_sources={c: source for c in reads})


def _run_with_metadata(chain, metadata: bytes, *requests):
    proposal = m.Proposal(chain_id=CHAIN, seq=chain.ledger.height + 1, proposer=0,
                          timestamp_ms=1_000 * (chain.ledger.height + 1), requests=tuple(requests), metadata=metadata)
    link = m.next_link(chain.ledger.tip_link, proposal.digest)
    commit = m.Commit(chain_id=CHAIN, view=0, seq=proposal.seq, digest=proposal.digest, link=link, replica=0,
                      signature=b"s" * 64)
    b = m.CommittedBlock(proposal=proposal, certificate=m.CommitCertificate(
        chain_id=CHAIN, view=0, seq=proposal.seq, digest=proposal.digest, link=link, commits=(commit,)))
    result = chain.executor.execute_block(b, chain.ledger.tip_header)
    chain.ledger.commit_block(b, result.header, result.receipts, result.state_writes)
    return result


def test_executor_reads_another_chain_at_the_blocks_effective_height_which_never_goes_back(tmp_path):
    from node.ledger.execution import READS_NAMESPACE
    chain = _reads_chain(tmp_path)
    heights = lambda h: codec.encode_read_heights({"catalog": h})  # noqa: E731
    copy = lambda: tx("copy", contract="readtest", chain="catalog", key="k")  # noqa: E731
    got = []
    for metadata in (heights(3), heights(1), b"", heights(6), b"garbage", heights(9)):
        result = _run_with_metadata(chain, metadata, copy())
        got.append(json.loads(result.receipts[0].output))
        assert chain.ledger.state_get(READS_NAMESPACE, b"catalog") == got[-1]["height"].to_bytes(8, "big")
    # named 3, then 1 (stays 3), none (stays), 6, garbage (stays), 9
    assert [g["height"] for g in got] == [3, 3, 3, 6, 6, 9]
    assert [g["value"] for g in got] == ["two", "two", "two", None, None, "seven"]
    # the effective heights are state: written where they moved, so the state root covers them
    assert chain.ledger.state_get_at(READS_NAMESPACE, b"catalog", 2) == (3).to_bytes(8, "big")


def test_executor_read_of_a_chain_not_in_reads_fails_the_transaction(tmp_path):
    chain = _reads_chain(tmp_path)
    result = _run_with_metadata(chain, codec.encode_read_heights({"catalog": 1}),
                                tx("copy", contract="readtest", chain="identity", key="k"))
    assert statuses(result) == [FAILED] and "does not read chain 'identity'" in result.receipts[0].message


def test_executor_chain_without_reads_ignores_metadata_and_refuses_reads(tmp_path):
    from tests.readtest_contract import ReadTestContract
    chain = Chain(tmp_path / "n", ContractRegistry([ReadTestContract()]))
    result = _run_with_metadata(chain, codec.encode_read_heights({"catalog": 1}),
                                tx("copy", contract="readtest", chain="catalog", key="k"))
    assert statuses(result) == [FAILED] and result.state_writes == ()
