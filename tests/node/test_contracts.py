"""Contracts are part of a chain's identity (docs/design.md, "Contracts"): the
registry comes from the genesis, a node lacking a named contract or version
does not start, and a contract is one module of node/contracts."""
from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest

import node.contracts
from node.tools import localnet
from node.core.config import load_config
from node.contracts import MissingContracts, available, platform_contracts, registry_for
from node.ledger.execution import not_runnable
from node.contracts.base import ANYONE, MethodContract, method, query
from node.contracts.kv import KvContract
from node.daemon import Node, StartupError
from node.ledger.execution import ContractError
from node.core.genesis import ContractRef, load_genesis, write_genesis

HAVE = ", ".join(f"{name} version {version}" for name, version in available())
KV_SOURCE = Path(node.contracts.__path__[0]) / "kv.py"


def test_the_package_offers_kv_version_1():
    assert available()[("kv", 1)] is KvContract
    registry = registry_for("demo", [("kv", 1)])
    assert registry.names() == ["kv"] and registry.get("kv").version == 1
    assert registry_for("catalog", []).names() == []


@pytest.mark.parametrize("wanted, missing", [
    ([("authz", 2)], "authz version 2"),  # a version of a contract this node does not have
    ([("kv", 2)], "kv version 2"),  # a version it does not have
    ([("kv", 2), ("authz", 2)], "kv version 2, authz version 2"),
])
def test_a_missing_contract_or_version_is_named_with_what_the_node_has(wanted, missing):
    with pytest.raises(MissingContracts) as info:
        registry_for("authz", wanted)
    assert str(info.value) == (f"chain authz: genesis names {missing}, which this node does not have "
                               f"(it has {HAVE}); run a govchain release that includes "
                               f"{'them' if ',' in missing else 'it'}")


def test_a_node_lacking_a_genesis_contract_does_not_start_and_opens_no_store(tmp_path):
    specs = localnet.create_network(tmp_path / "net", nodes=4, chains=("demo",))
    path = tmp_path / "net" / "genesis" / "demo.json"
    genesis = load_genesis(path)
    assert genesis.contracts == (("kv", 1),)  # the demo chain runs the open kv store, and says so
    write_genesis(path, dataclasses.replace(genesis, contracts=(ContractRef("authz", 2), ContractRef("kv", 2))))
    localnet.reseal(specs, path)  # signed again by every founder
    config = load_config(specs[0].config)
    with pytest.raises(StartupError, match=re.escape(
            "chain demo: genesis names authz version 2, kv version 2, which this node does not have "
            f"(it has {HAVE})")):
        Node(config)._open_chains()
    assert not (config.data_dir / "demo").exists()


def test_the_platform_sub_chains_run_their_contracts_and_demo_runs_kv():
    runs = {"catalog": (("catalog", 1),), "authn": (("authn", 1),), "cert": (("cert", 1),), "item": (("item", 1),),
            "authz": (("authz", 1),)}
    for chain in localnet.SUBCHAINS:
        assert platform_contracts(chain) == runs.get(chain, ())
    assert platform_contracts("demo") == (("kv", 1),)
    assert platform_contracts("my-test-chain") == (("kv", 1),)


@pytest.fixture
def extra_module(tmp_path, monkeypatch):
    """Write a module into a directory the package also searches; forget it after."""
    monkeypatch.setattr(node.contracts, "__path__", [*node.contracts.__path__, str(tmp_path)])
    names = []

    def write(name: str, source: str) -> None:
        (tmp_path / f"{name}.py").write_text(source)
        names.append(name)
        available.cache_clear()

    yield write
    for name in names:
        sys.modules.pop(f"node.contracts.{name}", None)
    monkeypatch.undo()
    available.cache_clear()


def test_a_new_contract_is_one_copied_module(extra_module):
    """Copy kv.py, rename NAME: the node has a second contract, with no other edit."""
    before = set(available())
    extra_module("notes", KV_SOURCE.read_text().replace('NAME = "kv"', 'NAME = "notes"'))
    assert set(available()) == before | {("notes", 1)}
    registry = registry_for("c", [("notes", 1)])
    assert registry.names() == ["notes"] and registry.get("notes").queries == {"get", "list"}


def test_a_module_whose_class_disagrees_with_it_is_refused(extra_module):
    extra_module("kv_two", KV_SOURCE.read_text().replace("VERSION = 1", "VERSION = 2").replace(
        "    version = VERSION", "    version = 1"))
    with pytest.raises(TypeError, match="CONTRACT KvContract says 'kv' version 1, the module 'kv' version 2"):
        available()


def test_two_modules_of_one_version_are_refused(extra_module):
    extra_module("kv_again", KV_SOURCE.read_text())
    with pytest.raises(TypeError, match="node.contracts.kv_again: kv version 1 is defined twice"):
        available()


def test_every_write_method_declares_a_role_and_reads_are_queries():
    assert dict(KvContract.methods) == {"cas": ANYONE, "delete": ANYONE, "put": ANYONE}
    assert KvContract.queries == {"get", "list"}
    with pytest.raises(TypeError, match="role must be a name"):
        method(role="")
    with pytest.raises(TypeError):
        method()  # no default role

    with pytest.raises(TypeError, match="Both: twice marked both @method and @query"):
        class Both(MethodContract):  # noqa: F841
            @query
            @method(role="registrar")
            def twice(self, ctx, args):
                return None

    class Narrower(KvContract):
        def put(self, ctx, args):  # overridden without a mark: no longer a method
            raise AssertionError

    assert set(Narrower.methods) == {"cas", "delete"}


def test_unknown_contracts_and_methods_are_named_with_what_the_chain_runs():
    registry = registry_for("demo", [("kv", 1)])
    assert not_runnable(registry, "demo", "kv", "put", read=False) is None
    assert not_runnable(registry, "demo", "kv", "get", read=True) is None
    assert not_runnable(registry, "demo", "authz", "grant", read=False) == \
        "chain demo runs no contract 'authz'; it runs: kv 1"
    assert not_runnable(registry_for("catalog", []), "catalog", "kv", "put", read=False) == \
        "chain catalog runs no contract 'kv'; it runs: none"
    assert not_runnable(registry, "demo", "kv", "get", read=False) == \
        "contract kv has no method 'get'; its methods: cas, delete, put"
    assert not_runnable(registry, "demo", "kv", "put", read=True) == \
        "contract kv has no query 'put'; its queries: get, list"


def test_method_contract_dispatch_refuses_what_it_does_not_declare():
    class Tx:
        method = "get"
        payload = b"{}"

    with pytest.raises(ContractError, match="contract 'kv' has no method 'get'"):
        KvContract().execute(None, Tx())
    with pytest.raises(ContractError, match="contract 'kv' has no query 'put'"):
        KvContract().query(None, "put", b"{}")
