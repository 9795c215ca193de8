"""End-to-end harness: real node processes on 127.0.0.1, real gRPC, real LevelDB.

`net_factory(**kw)` creates a network with node.tools.localnet.create_network in a
tmp dir (TLS on both ports unless insecure=True) and starts every node; the finalizer SIGKILLs whatever is still
running (and reaps it), so no daemon ever outlives its test, pass or fail.
A failing test gets the tail of every node log appended to its report.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import nacl.signing
import pytest

from node.core import codec

from node.tools import localnet
from node.net.client import stub
from node.pb import client_pb2
from node.core.tx import sign_transaction

REPO = Path(__file__).resolve().parents[2]
_GOVCHAIN = Path(sys.executable).parent / "govchain"
GOVCHAIN = [str(_GOVCHAIN)] if _GOVCHAIN.exists() else [sys.executable, "-m", "node"]
RPC_TIMEOUT_S = 15


class Net:
    """One local network: its specs, genesis files and helpers to talk to it."""

    def __init__(self, root: Path, specs: list[localnet.NodeSpec], chains: tuple[str, ...]) -> None:
        self.root = root
        self.specs = specs
        self.chains = chains
        self._stubs: dict[str, object] = {}
        self.tls = localnet.client_tls(root)  # None for an insecure network

    # ---- processes ------------------------------------------------------------

    def genesis(self, chain: str) -> Path:
        return self.root / "genesis" / f"{chain}.json"

    def start(self, *indexes: int) -> None:
        for i in indexes or range(len(self.specs)):
            localnet.start(self.specs[i])

    def stop(self, i: int) -> str:
        return localnet.stop(self.specs[i])

    def kill(self, i: int) -> str:
        return localnet.kill(self.specs[i])

    def kill_all(self) -> None:
        for spec in self.specs:
            localnet.kill(spec)

    def status(self, i: int) -> dict | None:
        return localnet.status(self.specs[i])

    def wait_ready(self, indexes=None, chain: str | None = None, timeout_s: float = 30) -> None:
        """Every node in `indexes` answers Status and sees all its peers on every chain."""
        indexes = list(range(len(self.specs))) if indexes is None else list(indexes)
        want = len(indexes) - 1

        def ready() -> bool:
            for i in indexes:
                st = self.status(i)
                if not st or any(c["peers"] < want for c in st.values()):
                    return False
            return True

        localnet.wait_until(ready, timeout_s, what=f"nodes {indexes} connected\n{self.logs()}")

    def heights(self, chain: str, indexes) -> dict[int, int | None]:
        out = {}
        for i in indexes:
            st = self.status(i)
            out[i] = st[chain]["height"] if st else None
        return out

    def wait_same_head(self, chain: str, indexes, timeout_s: float = 30, at_least: int = 0) -> dict:
        """Every node in `indexes` has the same height (>= at_least) and head hash."""
        indexes = list(indexes)

        def same():
            sts = [self.status(i) for i in indexes]
            if not all(sts):
                return None
            heads = {(s[chain]["height"], s[chain]["head"]) for s in sts}
            if len(heads) == 1 and sts[0][chain]["height"] >= at_least:
                return sts[0][chain]
            return None

        return localnet.wait_until(same, timeout_s, what=f"same head on {chain} for nodes {indexes}: "
                                                         f"{self.heights(chain, indexes)}\n{self.logs()}")

    # ---- clients ------------------------------------------------------------------

    def client(self, i: int):
        address = self.specs[i].client
        if address not in self._stubs:
            self._stubs[address] = stub(address, self.tls)
        return self._stubs[address]

    def logs(self, lines: int = 15) -> str:
        out = []
        for spec in self.specs:
            try:
                tail = spec.log.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                tail = ["(no log)"]
            out.append(f"--- {spec.department} ---\n" + "\n".join(tail))
        return "\n".join(out)


@pytest.fixture
def net_factory(tmp_path, request, monkeypatch):
    nets: list[Net] = []

    def make(*, nodes: int = 4, chains=("demo",), start: bool = True, ready: bool = True, **kw) -> Net:
        root = tmp_path / f"net{len(nets)}"
        specs = localnet.create_network(root, nodes=nodes, chains=tuple(chains), **kw)
        net = Net(root, specs, tuple(chains))
        nets.append(net)
        if net.tls is not None:  # `govchain` commands (run_cli) trust this network's CA
            monkeypatch.setenv("GOVCHAIN_CA", str(root / "tls" / "ca.crt"))
        if start:
            net.start()
            if ready:
                net.wait_ready()
        return net

    yield make
    for net in nets:
        net.kill_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for net in nets:
            print(net.logs(40))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def sender():
    return nacl.signing.SigningKey.generate()


_nonce = [time.time_ns()]


def make_tx(key, chain: str, key_name: str, value: str, *, contract: str = "kv", method: str = "put"):
    """A signed kv put (domain Transaction)."""
    _nonce[0] += 1
    return sign_transaction(key, chain_id=chain, nonce=_nonce[0], contract=contract, method=method,
                            payload=json.dumps({"key": key_name, "value": value}).encode())


def signed(key, chain: str, method: str, payload, *, contract: str | None = None):
    """A transaction of `key` calling `method` of `contract` (default: the contract named like the chain)."""
    _nonce[0] += 1
    return sign_transaction(key, chain_id=chain, nonce=_nonce[0], contract=contract or chain, method=method,
                            payload=json.dumps(payload).encode())


def submit_one(net, i: int, key, chain: str, method: str, payload, *, contract: str | None = None):
    """Submit to node i and wait for the commit: the receipt (raises grpc.RpcError on refusal)."""
    tx = signed(key, chain, method, payload, contract=contract)
    response = net.client(i).Submit(client_pb2.SubmitRequest(tx=codec.tx_to_proto(tx), wait_commit=True,
                                                             timeout_ms=10_000), timeout=RPC_TIMEOUT_S + 10)
    assert response.committed
    return codec.receipt_from_proto(response.receipt)


def submit_batch(client, txs, *, wait: bool = True, timeout_ms: int = 10_000):
    return client.SubmitBatch(client_pb2.SubmitBatchRequest(txs=[codec.tx_to_proto(t) for t in txs],
                                                            wait_commit=wait, timeout_ms=timeout_ms),
                              timeout=RPC_TIMEOUT_S + timeout_ms / 1000)


def run_cli(*args: str, check: bool = True, timeout: float = 60, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    proc = subprocess.run([*GOVCHAIN, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"govchain {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def rpc_code(call, *args, **kwargs) -> grpc.StatusCode:
    """The status code a failing RPC raised (fails the test if it succeeded)."""
    try:
        call(*args, **kwargs)
    except grpc.RpcError as exc:
        return exc.code()
    raise AssertionError(f"{call} succeeded; expected an error")
