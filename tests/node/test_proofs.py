"""Inclusion proofs (docs/design.md, "Audit proofs"): built from a real
ledger of signed, certified and executed blocks, checked offline against the
genesis; every kind of forgery fails with its own message."""
from __future__ import annotations

import copy
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from consensus import messages as m
from consensus.merkle import EMPTY_ROOT, audit_path, leaf_hash, merkle_root, root_from_audit_path
from consensus.signing import with_signature
from node.contracts import registry_for
from node.core import codec
from node.core.crypto import Ed25519Signer
from node.core.genesis import make_genesis
from node.core.tx import sign_transaction
from node.ledger.execution import Executor
from node.ledger.ledger import Ledger
from node.ledger.proofs import ProofError, build_inclusion_proof, verify_inclusion_proof
from node.tools.cli import main

KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
GENESIS = make_genesis("demo", [(f"dept-{i}", k.verify_key, f"127.0.0.1:{7001 + i}") for i, k in enumerate(KEYS)],
                       contracts=[("kv", 1)], founders={f"dept-{i}": k for i, k in enumerate(KEYS)})
OTHER = make_genesis("other", [(f"dept-{i}", k.verify_key, f"127.0.0.1:{7001 + i}") for i, k in enumerate(KEYS)],
                     contracts=[("kv", 1)])
CLIENT = SigningKey(b"\x42" * 32)
TXS_PER_BLOCK = (1, 5, 3)  # block 2 has an odd number of leaves: a promoted node in its path


def certify(proposal: m.Proposal, link: bytes, signers=(0, 1, 2)) -> m.CommittedBlock:
    commits = tuple(with_signature(m.Commit(chain_id=proposal.chain_id, view=0, seq=proposal.seq,
                                            digest=proposal.digest, link=link, replica=r), Ed25519Signer(KEYS[r]))
                    for r in signers)
    return m.CommittedBlock(proposal=proposal, certificate=m.CommitCertificate(
        chain_id=proposal.chain_id, view=0, seq=proposal.seq, digest=proposal.digest, link=link, commits=commits))


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A ledger of three executed blocks of signed kv transactions; yields (ledger, tx ids per block)."""
    ledger = Ledger(str(tmp_path_factory.mktemp("proofs") / "demo"), "demo", GENESIS.hash, create=True)
    executor = Executor("demo", registry_for("demo", [("kv", 1)]), ledger)
    ids, nonce = [], 0
    for seq, count in enumerate(TXS_PER_BLOCK, start=1):
        requests = []
        for _ in range(count):
            nonce += 1
            tx = sign_transaction(CLIENT, chain_id="demo", nonce=nonce, contract="kv", method="put",
                                  payload=json.dumps({"key": f"access/{nonce}", "value": "PERMIT"}).encode())
            requests.append(codec.request_from_tx(tx))
        # timestamps go back at block 3: its header keeps the clamped one, the proof the proposer's
        # block 2 names a cross-chain read height in its metadata, which the digest covers
        p = m.Proposal(chain_id="demo", seq=seq, proposer=seq % 4, timestamp_ms=[0, 5_000, 9_000, 7_000][seq],
                       requests=tuple(requests), metadata=codec.encode_read_heights({"catalog": 7}) if seq == 2 else b"")
        block = certify(p, m.next_link(ledger.tip_link, p.digest))
        result = executor.execute_block(block, ledger.tip_header)
        ledger.commit_block(block, result.header, result.receipts, result.state_writes)
        ids.append([r.id for r in requests])
    yield ledger, ids
    ledger.close()


def proof_of(chain, height: int, index: int) -> dict:
    ledger, ids = chain
    return build_inclusion_proof(ledger, ids[height - 1][index])


def problem(proof: dict, genesis=GENESIS) -> str:
    verdict = verify_inclusion_proof(json.loads(json.dumps(proof)), genesis)
    assert not verdict.ok and verdict.transaction is None
    return verdict.problem


def test_every_transaction_of_a_real_ledger_has_a_proof_that_verifies(chain):
    ledger, ids = chain
    for height, block_ids in enumerate(ids, start=1):
        for index, tx_id in enumerate(block_ids):
            proof = json.loads(json.dumps(build_inclusion_proof(ledger, tx_id)))  # survives a JSON file
            verdict = verify_inclusion_proof(proof, GENESIS)
            assert verdict.ok, verdict.problem
            assert (verdict.height, verdict.index, verdict.block_hash) == (height, index, ledger.header(height).hash)
            assert verdict.transaction.id == tx_id and verdict.transaction.method == "put"
            out = verdict.to_json_obj()["transaction"]
            assert json.loads(out["payload"])["value"] == "PERMIT" and out["sender"] == bytes(CLIENT.verify_key).hex()
    assert ledger.header(3).timestamp_ms == 9_000  # clamped; the proof carried the proposer's 7000


def test_no_proof_for_a_transaction_the_ledger_does_not_hold(chain):
    with pytest.raises(ProofError, match="is not committed on chain 'demo' \\(at height 3\\)"):
        build_inclusion_proof(chain[0], bytes(32))


def test_a_tampered_transaction_body_fails(chain):
    proof = proof_of(chain, 2, 1)
    body = bytearray(bytes.fromhex(proof["tx"]["body"]))
    body[-70] ^= 1  # inside the payload
    proof["tx"]["body"] = body.hex()
    assert problem(proof).startswith("the transaction body does not match its id (altered body)")


def test_a_transaction_swapped_in_with_its_own_id_fails_at_the_audit_path(chain):
    proof, other = proof_of(chain, 2, 1), proof_of(chain, 3, 0)
    proof["tx"] = other["tx"]  # a genuine transaction of another block
    assert problem(proof) == ("the audit path does not lead from the transaction (leaf 1 of 5) to the header's "
                              "tx_root: a wrong path, or the transaction is not in block 2")


def test_a_wrong_audit_path_fails(chain):
    proof = proof_of(chain, 2, 4)
    proof["audit_path"][0] = "00" * 32
    assert "does not lead from the transaction (leaf 4 of 5)" in problem(proof)
    short = proof_of(chain, 2, 4)
    short["audit_path"] = short["audit_path"][:-1]
    assert problem(short) == "the audit path has the wrong shape for leaf 4 of a tree of 5 (0 hashes)"
    moved = proof_of(chain, 2, 1)
    moved["index"] = 0  # the right path, claimed for another position
    assert "does not lead from the transaction (leaf 0 of 5)" in problem(moved)


def test_a_header_from_another_block_fails(chain):
    proof, other = proof_of(chain, 2, 0), proof_of(chain, 3, 0)
    proof["header"] = other["header"]
    assert "does not lead from the transaction" in problem(proof)  # another tx_root
    # same tx_root, other height: the header's hash and digest no longer hold together
    proof = proof_of(chain, 2, 0)
    proof["header"]["height"] = 3
    assert problem(proof) == "the header's hash does not match its fields: the header was altered"
    # a header rebuilt consistently for the forger's proposal: the certificate signs another digest
    proof, other = proof_of(chain, 1, 0), proof_of(chain, 3, 0)
    proof["certificate"] = other["certificate"]
    assert problem(proof).startswith("the commit certificate is for block 3 of chain 'demo'")
    assert "the header is block 1" in problem(proof) and problem(proof).endswith("the header is from another block")


def test_an_altered_header_field_fails(chain):
    proof = proof_of(chain, 3, 0)
    proof["proposal_timestamp_ms"] = 9_000  # the clamped header timestamp is not what the proposer signed
    assert problem(proof).startswith("the header's proposal_digest does not cover its tx_root")
    proof = proof_of(chain, 2, 0)
    assert proof["proposal_metadata"] == codec.encode_read_heights({"catalog": 7}).hex()
    proof["proposal_metadata"] = ""
    assert problem(proof).startswith("the header's proposal_digest does not cover its tx_root")
    proof = proof_of(chain, 3, 0)
    proof["header"]["hash"] = "11" * 32
    assert problem(proof) == "the header's hash does not match its fields: the header was altered"


def test_a_certificate_with_too_few_signatures_fails(chain):
    proof = proof_of(chain, 2, 0)
    proof["certificate"]["commits"] = proof["certificate"]["commits"][:2]
    assert problem(proof) == "the commit certificate holds 2 valid signatures of distinct genesis validators, 3 of 4 needed"
    repeated = proof_of(chain, 2, 0)
    commits = repeated["certificate"]["commits"]
    commits[2] = copy.deepcopy(commits[0])
    assert problem(repeated) == ("the commit certificate holds 2 valid signatures of distinct genesis validators, "
                                 "3 of 4 needed (commit #2 repeats validator 0)")


def test_a_certificate_with_forged_signatures_fails(chain):
    proof = proof_of(chain, 2, 0)
    proof["certificate"]["commits"][1]["signature"] = "ab" * 64
    assert problem(proof) == ("the commit certificate holds 2 valid signatures of distinct genesis validators, 3 of "
                              "4 needed (commit #1: the signature of validator 1 (dept-1) does not verify)")
    extra = proof_of(chain, 2, 0)  # a quorum plus one forged commit: a certificate is all valid or nothing
    extra["certificate"]["commits"].append({"replica": 3, "signature": "cd" * 64})
    assert problem(extra) == ("the commit certificate carries a commit that does not verify (commit #3: the "
                              "signature of validator 3 (dept-3) does not verify)")
    stranger = proof_of(chain, 2, 0)
    stranger["certificate"]["commits"][0]["replica"] = 9
    assert "commit #0: the signature of validator 9 (the genesis has 4) does not verify" in problem(stranger)


def test_a_certificate_signed_by_keys_outside_the_genesis_fails(chain, tmp_path):
    """Another chain's validators (other keys) certified a block with the same
    contents: the genesis given does not know them."""
    strangers = [SigningKey(bytes([i + 9]) * 32) for i in range(4)]
    genesis = make_genesis("demo", [(f"dept-{i}", k.verify_key, f"127.0.0.1:{7001 + i}")
                                    for i, k in enumerate(strangers)], contracts=[("kv", 1)])
    proof = proof_of(chain, 1, 0)
    proof["genesis_hash"] = genesis.hash.hex()  # the forger claims the strangers' genesis
    assert problem(proof, genesis).startswith("the commit certificate holds 0 valid signatures")


def test_a_genesis_of_another_chain_fails(chain):
    assert problem(proof_of(chain, 1, 0), OTHER) == (
        f"the proof is for chain 'demo' with genesis {GENESIS.hash.hex()[:16]}..., the genesis given is chain "
        f"'other' with genesis {OTHER.hash.hex()[:16]}...: a genesis of another chain")


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.pop("certificate"), "malformed proof: certificate is missing"),
    (lambda p: p.update(format="v0"), "malformed proof: format must be 'govchain-inclusion-proof/1'"),
    (lambda p: p["header"].update(tx_root="XY"), "malformed proof: header.tx_root must be 64 lowercase hex"),
    (lambda p: p.update(index=-1), "malformed proof: index must be an integer in 0.."),
    (lambda p: p["certificate"]["commits"].append("x"), "malformed proof: certificate.commits[3] must be a JSON"),
])
def test_a_malformed_proof_names_the_field(chain, edit, message):
    proof = proof_of(chain, 1, 0)
    edit(proof)
    assert problem(proof).startswith(message)


def test_cli_audit_prove_and_verify(chain, tmp_path, capsys):
    ledger, ids = chain
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(json.dumps(GENESIS.to_json_obj()))
    proof_file = tmp_path / "proof.json"
    data_dir = os.path.dirname(ledger.path)
    assert main(["audit", "prove", "--genesis", str(genesis_file), "--data-dir", data_dir, "--tx", ids[1][3].hex(),
                 "--out", str(proof_file)]) == 0
    assert json.loads(proof_file.read_text()) == proof_of(chain, 2, 3)
    assert main(["audit", "prove", "--genesis", str(genesis_file), "--data-dir", data_dir, "--tx", "00" * 32]) == 2
    assert "is not committed on chain 'demo'" in capsys.readouterr().err
    assert main(["audit", "verify", str(proof_file), "--genesis", str(genesis_file), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["height"] == 2 and out["transaction"]["id"] == ids[1][3].hex()
    assert main(["audit", "verify", str(proof_file), "--genesis", str(genesis_file)]) == 0
    assert capsys.readouterr().out.startswith(f"OK: transaction {ids[1][3].hex()} is in block 2 of chain demo")
    bad = proof_of(chain, 2, 3)
    bad["audit_path"][0] = "00" * 32
    proof_file.write_text(json.dumps(bad))
    assert main(["audit", "verify", str(proof_file), "--genesis", str(genesis_file)]) == 3
    assert capsys.readouterr().out.startswith("BAD: the audit path does not lead")
    proof_file.write_text("{not json")
    assert main(["audit", "verify", str(proof_file), "--genesis", str(genesis_file)]) == 2
    assert "is not JSON" in capsys.readouterr().err


# ---- the audit path against RFC 6962's definition ------------------------------------------------

def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, literally."""
    import hashlib
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)  # largest power of two smaller than n
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _path(m_: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n]), literally."""
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return _path(m_, leaves[:k]) + [_mth(leaves[k:])] if m_ < k else _path(m_ - k, leaves[k:]) + [_mth(leaves[:k])]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 64).flatmap(lambda n: st.tuples(
    st.lists(st.binary(max_size=8), min_size=n, max_size=n, unique=True), st.integers(0, n - 1),
    st.integers(0, n - 1))))
def test_audit_path_matches_rfc6962_and_binds_the_leaf_and_its_position(case):
    leaves, index, other = case
    n, root = len(leaves), merkle_root(leaves)
    path = audit_path(leaves, index)
    assert root == _mth(leaves) and path == _path(index, leaves)
    assert root_from_audit_path(leaves[index], index, n, path) == root
    if other != index:  # another leaf, or the same path claimed for another position
        assert root_from_audit_path(leaves[other], index, n, path) != root
        assert root_from_audit_path(leaves[index], other, n, path) != root
    if path:
        flipped = [path[0][:-1] + bytes([path[0][-1] ^ 1])] + path[1:]
        assert root_from_audit_path(leaves[index], index, n, flipped) != root
        assert root_from_audit_path(leaves[index], index, n, path[:-1]) is None
    assert root_from_audit_path(leaves[index], index, n, path + [root]) is None
    assert root_from_audit_path(leaves[index], n, n, path) is None
