"""Every protocol message fits message_bytes_max by construction (issue 7 §1).

node.core.codec.worst_case_message_bytes bounds each message kind from the
consensus parameters; the genesis refuses parameters whose worst case does
not fit the default 4 MiB, and the daemon checks its own [limits] again. The
bound is checked against real encodings of the largest messages a replica
may build or accept.
"""
from __future__ import annotations

import dataclasses
import hashlib

import pytest
from nacl.signing import SigningKey

from consensus import messages as m
from consensus.quorum import quorum_size
from node.core import codec
from node.tools import localnet
from node.core.config import load_config
from node.daemon import Node, StartupError
from node.core.genesis import DEFAULT_MESSAGE_BYTES_MAX, GenesisError, check_message_bytes, make_genesis

CHAIN = "c" * 32  # the longest chain id a genesis allows


def _validators(n: int):
    return [(f"dept-{i}", SigningKey(bytes([i + 1]) * 32).verify_key, f"127.0.0.1:{7001 + i}") for i in range(n)]


def _envelope_bytes(msg) -> int:
    return len(codec.envelope_to_proto(msg).SerializeToString())


def _vote(kind, seq: int, replica: int, view: int = codec.INT_MAX):
    link = {"link": b"\xee" * 32} if kind is m.Commit else {}
    return kind(chain_id=CHAIN, view=view, seq=seq, digest=b"\xee" * 32, replica=replica, signature=b"\xff" * 64,
                **link)


def _header(seq: int, view: int = codec.INT_MAX) -> m.PrePrepare:
    return m.PrePrepare(chain_id=CHAIN, view=view, seq=seq, digest=b"\xee" * 32, proposal=None, replica=2**31,
                        signature=b"\xff" * 64)


def _full_batch(batch_txs_max: int, batch_bytes_max: int) -> tuple[m.Request, ...]:
    """batch_txs_max requests filling batch_bytes_max exactly, as the primary may cut."""
    body = (batch_bytes_max // batch_txs_max) - 32
    reqs = [m.Request(id=hashlib.sha256(b"%d" % i).digest(), body=b"\x01" * body) for i in range(batch_txs_max)]
    last = reqs[-1]
    reqs[-1] = m.Request(id=last.id, body=last.body + b"\x01" * (batch_bytes_max - sum(32 + body for _ in reqs)))
    assert sum(len(r.id) + len(r.body) for r in reqs) == batch_bytes_max
    return tuple(reqs)


@pytest.mark.parametrize("n", [4, 7])
def test_worst_case_new_view_and_view_change_for_genesis_defaults_fit_message_bytes_max(n: int) -> None:
    """§4.4 messages at their largest for the default genesis: 2f+1
    ViewChanges, each with window_blocks prepared certificates signed by
    every replica and a stable checkpoint with n signatures, plus window_blocks
    PrePrepare headers. The real encoding stays under the computed bound, and
    the bound under message_bytes_max."""
    c = make_genesis(CHAIN, _validators(n)).consensus
    bound = codec.worst_case_message_bytes(chain_id=CHAIN, validators=n, batch_txs_max=c.batch_txs_max,
                                           batch_bytes_max=c.batch_bytes_max, window_blocks=c.window_blocks)
    top = codec.INT_MAX - c.window_blocks
    checkpoint = m.StableCheckpoint(seq=top, digest=b"\xee" * 32, proof=tuple(
        m.Checkpoint(chain_id=CHAIN, seq=top, digest=b"\xee" * 32, replica=r, signature=b"\xff" * 64)
        for r in range(n)))
    certs = tuple(m.PreparedCertificate(pre_prepare=_header(top + s, view=codec.INT_MAX - 1),
                                        prepares=tuple(_vote(m.Prepare, top + s, r) for r in range(n)))
                  for s in range(1, c.window_blocks + 1))
    vcs = tuple(m.ViewChange(chain_id=CHAIN, view=codec.INT_MAX, checkpoint=checkpoint, prepared=certs, replica=r,
                             signature=b"\xff" * 64) for r in range(quorum_size(n)))
    headers = tuple(_header(top + s) for s in range(1, c.window_blocks + 1))
    nv = m.NewView(chain_id=CHAIN, view=codec.INT_MAX, view_changes=vcs, pre_prepares=headers, replica=n - 1,
                   signature=b"\xff" * 64)
    assert _envelope_bytes(vcs[0]) <= bound["ViewChange"] <= DEFAULT_MESSAGE_BYTES_MAX
    assert _envelope_bytes(nv) <= bound["NewView"] <= DEFAULT_MESSAGE_BYTES_MAX
    assert bound["NewView"] - _envelope_bytes(nv) < 0.05 * bound["NewView"]  # tight, not just safe


def test_worst_case_batch_messages_fit_and_are_bounded_by_batch_bytes_max() -> None:
    """A full batch (batch_txs_max requests, batch_bytes_max bytes) in a
    PrePrepare, a RequestBatch, a ProposalReply and a BlocksReply block
    (with its stable checkpoint's proof, n signatures)."""
    txs, size = 1000, 1 << 20
    bound = codec.worst_case_message_bytes(chain_id=CHAIN, validators=4, batch_txs_max=txs, batch_bytes_max=size,
                                           window_blocks=64)
    reqs = _full_batch(txs, size)
    p = m.Proposal(chain_id=CHAIN, seq=2**60, proposer=3, timestamp_ms=2**60, requests=reqs)
    cert = m.CommitCertificate(chain_id=CHAIN, view=2**40, seq=2**60, digest=p.digest, link=b"\xee" * 32,
                               commits=tuple(_vote(m.Commit, 2**60, r) for r in range(4)))
    proof = m.StableCheckpoint(seq=2**60, digest=b"\xee" * 32, proof=tuple(
        m.Checkpoint(chain_id=CHAIN, seq=2**60, digest=b"\xee" * 32, replica=r, signature=b"\xff" * 64)
        for r in range(4)))
    real = {
        "PrePrepare": m.PrePrepare(chain_id=CHAIN, view=2**40, seq=2**60, digest=p.digest, proposal=p, replica=3,
                                   signature=b"\xff" * 64),
        "RequestBatch": m.RequestBatch(chain_id=CHAIN, requests=reqs, replica=3, signature=b"\xff" * 64),
        "ProposalReply": m.ProposalReply(chain_id=CHAIN, proposal=p, replica=3),
        "BlocksReply": m.BlocksReply(chain_id=CHAIN, blocks=(m.CommittedBlock(proposal=p, certificate=cert),),
                                     checkpoints=(proof,), replica=3),
    }
    for kind, msg in real.items():
        assert size < _envelope_bytes(msg) <= bound[kind] <= DEFAULT_MESSAGE_BYTES_MAX, kind


@pytest.mark.parametrize("n, params, words, fits", [
    (4, dict(batch_bytes_max=5 << 20), "lower consensus.batch_bytes_max (5242880)", dict(batch_bytes_max=3 << 20)),
    (31, dict(window_blocks=64), "a NewView can reach", dict(window_blocks=16, checkpoint_interval_blocks=8)),
])
def test_genesis_refuses_parameters_whose_worst_message_exceeds_the_default_limit(n, params, words, fits) -> None:
    with pytest.raises(GenesisError) as info:
        make_genesis("demo", _validators(n), **params)
    text = str(info.value)
    assert "more than the default message_bytes_max (4194304), and the transport would drop it" in text
    assert words in text, text
    if n == 31:
        assert "lower consensus.window_blocks (64) or use fewer validators (31)" in text
    make_genesis("demo", _validators(n), **fits)


def test_daemon_limit_below_the_worst_case_is_refused_with_the_fix() -> None:
    """At daemon start the node's own [limits] message_bytes_max counts: a
    node that lowered it below what the chain needs does not start."""
    genesis = make_genesis("demo", _validators(4))
    check_message_bytes(genesis, 2 << 20, limit_name="[limits] message_bytes_max")
    with pytest.raises(GenesisError, match=r"a \w+ can reach (\d+) bytes, more than \[limits\] message_bytes_max "
                                           r"\(1048576\).*lower consensus.batch_bytes_max \(1048576\), or raise it "
                                           r"to at least \1$"):
        check_message_bytes(genesis, 1 << 20, source="chain demo", limit_name="[limits] message_bytes_max")


def test_daemon_does_not_start_when_its_limit_is_below_a_chains_worst_case(tmp_path) -> None:
    """The daemon's own [limits] message_bytes_max is checked at start, where
    both the node config and the genesis are known; the error names the
    chain, the message, the limit and both fixes."""
    specs = localnet.create_network(tmp_path / "net", nodes=4, chains=("demo",))
    config = load_config(specs[0].config)
    low = dataclasses.replace(config, limits=dataclasses.replace(config.limits, message_bytes_max=1 << 20))
    with pytest.raises(StartupError, match=r"^chain demo: with these consensus parameters a \w+ can reach \d+ "
                                           r"bytes, more than \[limits\] message_bytes_max \(1048576\).*lower "
                                           r"consensus.batch_bytes_max \(1048576\), or raise it to at least \d+$"):
        Node(low)._open_chains()
