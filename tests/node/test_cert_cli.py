"""`govchain cert make`, `cert disclose` and `cert verify` (node/tools/app_cli.py).

verify runs as a real process against a real gRPC Client service in process
whose Query answers come from the cert contract's own query code over the
state the contract wrote (tests/node/test_app_contracts.py's Chain), and
whose GetBlock gives the block time.
"""
from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from consensus.block import BlockHeader
from node.core import codec
from node.identity.fields import disclose, make_certificate
from node.contracts.cert import CertContract
from node.pb import client_pb2, client_pb2_grpc
from tests.node.test_app_contracts import CIVIL, T0, TAG, Chain

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
VALUES = {"name": "张三", "spouse": "李四", "registered_on": "2020-05-20"}


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.tools.cli", *args], capture_output=True, text=True,
                          input=stdin, env=ENV, cwd=REPO, timeout=60)


class ChainClient(client_pb2_grpc.ClientServicer):
    """Query and GetBlock of one cert chain, as a node answers them."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    async def Query(self, request, context):
        if request.chain_id != "cert" or request.contract != "cert":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "unknown chain")
        result = self.chain.query(request.method, json.loads(request.args))
        return client_pb2.QueryResponse(result=json.dumps(result).encode(), height=self.chain.height)

    async def GetBlock(self, request, context):
        assert request.height == self.chain.height
        header = BlockHeader(chain_id="cert", height=request.height, parent_hash=bytes(32), proposer=0,
                             timestamp_ms=self.chain.time_ms, tx_root=bytes(32), state_root=bytes(32),
                             proposal_digest=bytes(32), link=bytes(32))
        return client_pb2.BlockResponse(header=codec.to_proto(header))


def test_make_and_disclose_write_private_files_that_verify(tmp_path):
    cert_file, disclosure_file = tmp_path / "mc-1.json", tmp_path / "spouse.json"
    made = _cli("cert", "make", "--fields", "-", "--cert-id", "mc-1", "--type", "marriage-certificate",
                "--holder-tag", TAG, "--valid-from-ms", str(T0), "--out", str(cert_file), "--json",
                stdin=json.dumps(VALUES))
    assert made.returncode == 0, made.stderr
    out = json.loads(made.stdout)
    cert = json.loads(cert_file.read_text())
    assert stat.S_IMODE(cert_file.stat().st_mode) == 0o600
    assert out["issue_payload"] == {"cert_id": "mc-1", "type": "marriage-certificate", "holder_tag": TAG,
                                    "valid_from_ms": T0, "valid_until_ms": None, "field_root": cert["field_root"]}
    assert {name: field["value"] for name, field in cert["fields"].items()} == VALUES
    again = _cli("cert", "make", "--fields", json.dumps(VALUES), "--cert-id", "mc-1", "--type", "x",
                 "--holder-tag", TAG, "--valid-from-ms", "0", "--out", str(cert_file))
    assert again.returncode == 2 and "already exists" in again.stderr
    shown = _cli("cert", "disclose", "--cert", str(cert_file), "--field", "spouse", "--out", str(disclosure_file))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(disclosure_file.read_text()) == disclose(cert, "spouse")
    assert "张三" not in disclosure_file.read_text()


@pytest.fixture
def chain():
    chain = Chain(CertContract())
    chain.time_ms = T0 + 1000
    return chain


async def _verify(chain: Chain, disclosure: dict, tmp_path: Path, *extra: str) -> tuple[int, dict]:
    server = grpc.aio.server()
    client_pb2_grpc.add_ClientServicer_to_server(ChainClient(chain), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    path = tmp_path / f"disclosure-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(disclosure))
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "node.tools.cli", "cert", "verify", "--insecure", "--address",
            f"127.0.0.1:{port}", "--disclosure", str(path), "--json", *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV, cwd=REPO)
        out, err = await process.communicate()
    finally:
        await server.stop(None)
    assert err == b"" or process.returncode == 2, err.decode()
    return process.returncode, json.loads(out) if out else {"stderr": err.decode()}


def _issue(chain: Chain, cert_id: str = "mc-1", **changes) -> dict:
    cert = make_certificate(cert_id, "cert", VALUES)
    chain.run(CIVIL, "issue", {"cert_id": cert_id, "type": "marriage-certificate", "holder_tag": TAG,
                               "valid_from_ms": T0, "valid_until_ms": None, "field_root": cert["field_root"],
                               **changes})
    return cert


async def test_a_valid_certificate_field_verifies_and_exits_0(chain, tmp_path):
    cert = _issue(chain)
    code, out = await _verify(chain, disclose(cert, "spouse"), tmp_path)
    assert code == 0
    assert out["verdict"] == "valid" and out["valid"] is True and out["status"] == "valid"
    assert out["block_time_ms"] == T0 + 1000 and out["height"] == chain.height
    assert "'spouse' = '李四'" in out["message"]


async def test_a_revoked_certificate_exits_nonzero_naming_its_status(chain, tmp_path):
    cert = _issue(chain)
    chain.run(CIVIL, "set_status", {"cert_id": "mc-1", "status": "revoked"})
    code, out = await _verify(chain, disclose(cert, "spouse"), tmp_path)
    assert code == 1
    assert out["verdict"] == "invalid-status" and out["status"] == "revoked"
    assert f"certificate mc-1 is revoked (since height {chain.height}, by civil-affairs)" in out["message"]


async def test_a_changed_value_a_foreign_certificate_or_expiry_is_not_valid(chain, tmp_path):
    cert = _issue(chain)
    changed = disclose(cert, "spouse") | {"value": "王五"}
    assert (await _verify(chain, changed, tmp_path))[1]["verdict"] == "mismatch"
    other = make_certificate("mc-1", "cert", VALUES)  # the same fields, salted anew: not what was issued
    assert (await _verify(chain, disclose(other, "spouse"), tmp_path))[1]["verdict"] == "mismatch"
    expired = _issue(chain, "mc-2", valid_until_ms=T0 + 1000)  # the chain's time is T0 + 1000
    code, out = await _verify(chain, disclose(expired, "name"), tmp_path)
    assert (code, out["verdict"]) == (1, "outside-validity")
    missing = make_certificate("mc-9", "cert", VALUES)
    code, out = await _verify(chain, disclose(missing, "name"), tmp_path)
    assert (code, out["verdict"]) == (1, "not-found")


async def test_a_malformed_disclosure_or_other_chain_is_bad_input(chain, tmp_path):
    cert = _issue(chain)
    code, out = await _verify(chain, {"name": "spouse"}, tmp_path)
    assert code == 2 and "a disclosure is a JSON object with exactly" in out["stderr"]
    code, out = await _verify(chain, disclose(cert, "spouse"), tmp_path, "--chain", "cert2")
    assert code == 2 and "pass --chain cert" in out["stderr"]
