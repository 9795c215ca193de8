"""The node's signature cache never vouches for other bytes under a known id;
`chain verify` and the ledger reject blocks of another history."""
import os

import pytest
from nacl.signing import SigningKey

from consensus import messages as m
from consensus.block import BlockHeader, make_header
from consensus.signing import with_signature
from node.core import codec
from node.chain.chain_node import _verify_requests
from node.contracts import registry_for
from node.core.crypto import Ed25519Signer
from node.core.genesis import make_genesis
from node.ledger.ledger import Ledger, LedgerError
from node.tools.repair import RepairError, repair_chain
from node.core.tx import sign_transaction
from node.ledger.verify import verify_chain


def test_chain_verified_cache_key_binds_the_body():
    tx = sign_transaction(SigningKey(b"\x05" * 32), chain_id="demo", nonce=1, contract="kv", method="put",
                          payload=b'{"key": "a", "value": "1"}')
    real = codec.request_from_tx(tx)
    swapped = m.Request(id=real.id, body=b"garbage")
    assert _verify_requests([real]) == [m.tx_leaf(real)]
    assert m.tx_leaf(swapped) != m.tx_leaf(real)  # a cache hit for `real` is a miss for `swapped`
    assert _verify_requests([swapped]) == []


# ---- block binding (docs/design.md, "Block binding") ------------------------------------------

KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
GENESIS = make_genesis("demo", [(f"dept-{i}", k.verify_key, f"127.0.0.1:{7001 + i}") for i, k in enumerate(KEYS)])


def _history(tag: int, blocks: int) -> list[tuple[BlockHeader, m.CommittedBlock]]:
    """A chain certified by validators 0-2 with the genesis keys; `tag` tells histories apart."""
    out, parent, link = [], None, m.genesis_link(GENESIS.chain_id, GENESIS.hash)
    for seq in range(1, blocks + 1):
        p = m.Proposal(chain_id="demo", seq=seq, proposer=0, timestamp_ms=1_000 * seq + tag)
        link = m.next_link(link, p.digest)
        commits = tuple(with_signature(m.Commit(chain_id="demo", view=0, seq=seq, digest=p.digest, link=link,
                                                replica=r), Ed25519Signer(KEYS[r])) for r in range(3))
        block = m.CommittedBlock(proposal=p, certificate=m.CommitCertificate(
            chain_id="demo", view=0, seq=seq, digest=p.digest, link=link, commits=commits))
        parent = make_header(block, parent, bytes(32))
        out.append((parent, block))
    return out


def test_chain_verify_rejects_a_chain_spliced_from_two_histories():
    """Issue 8, finding 2: a node on a fork grafted the majority's certified
    blocks onto its own history, re-deriving their headers on its own chain,
    and `chain verify` passed because the certificate signed only the
    proposal digest. The certified link covers every digest below: the
    splice fails at the first grafted block."""
    a, b = _history(0, 4), _history(1, 4)
    for history in (a, b):
        assert verify_chain(GENESIS, [(h, blk, None) for h, blk in history]).ok
    spliced, parent = [], None
    for _, block in a[:2] + b[2:]:  # headers re-derived on the spliced chain, as the grafting node did
        parent = make_header(block, parent, bytes(32))
        spliced.append((parent, block, None))
    result = verify_chain(GENESIS, spliced)
    assert not result.ok and result.height == 3 and "another history" in result.problem, result


def test_ledger_refuses_to_append_a_block_certified_over_another_history(tmp_path):
    a, b = _history(0, 2), _history(1, 2)
    with Ledger(str(tmp_path / "demo"), "demo", GENESIS.hash, create=True) as ledger:
        ledger.commit_block(a[0][1], a[0][0], [], [])
        grafted = make_header(b[1][1], ledger.tip_header, bytes(32))
        with pytest.raises(LedgerError, match="another history"):
            ledger.commit_block(b[1][1], grafted, [], [])
        ledger.commit_block(a[1][1], a[1][0], [], [])
        assert ledger.height == 2


def test_repair_refuses_blocks_spliced_from_two_histories(tmp_path):
    """`govchain chain repair` checks the link chain too: sources that serve
    another history above some height (e.g. a forked node among them) fail
    the repair with the height, and the half-built store is removed."""
    spliced = [block for _, block in _history(0, 4)[:2] + _history(1, 4)[2:]]
    source = lambda height: (spliced[height - 1], None) if height <= len(spliced) else None  # noqa: E731
    path = str(tmp_path / "demo")
    with pytest.raises(RepairError, match="block 3: .*another history"):
        repair_chain(path, GENESIS, registry_for("demo", [("kv", 1)]), source)
    assert not os.path.exists(path)
