"""The contracts this node can run, and the registry each chain builds from
its genesis (docs/design.md, "Contracts").

Every module of this package but `base` is one contract at one version:

    NAME = "kv"                   # what transactions and genesis call it
    VERSION = 1                   # bumped for any change in behaviour
    class KvContract(MethodContract):
        name, version = NAME, VERSION
        @method(role=ANYONE)
        def put(self, ctx, args): ...
        @query
        def get(self, ctx, args): ...
    CONTRACT = KvContract

A chain runs exactly the (name, version) pairs its genesis lists, so the
genesis hash pins the code every validator runs; a node that lacks one
does not start. A new contract is a new module here, named in a genesis;
a new version of one is a new module too (e.g. kv_v2.py), so that nodes
keep replaying the blocks of chains pinned to the old one.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterable

from node.core.receipts import StateWrite
from node.ledger.execution import ContractError, ContractRegistry

NOT_CONTRACTS = ("base",)

OPEN_CONTRACTS = (("kv", 1),)
PLATFORM_CONTRACTS: dict[str, tuple[tuple[str, int], ...]] = {
    # A sub-chain names no contract until its own exists: a chain without
    # contracts refuses every transaction, where the open kv store would let
    # anyone overwrite anything (docs/design.md, "Contracts").
    "catalog": (("catalog", 1),),
    "item": (("item", 1),),  # service items and cases (docs/design.md, "Service items and cases")
    "authn": (("authn", 1),), "cert": (("cert", 1),),  # identity service events; certificates
    "authz": (("authz", 1),),  # consents and the access log (docs/design.md, "Consent and the access log (authz)")
    "demo": OPEN_CONTRACTS,  # load tests and the demo: the open key-value store, on purpose
}


# The chains whose contracts read another chain's state (genesis "reads"): authn and cert
# find their signers' departments on the catalog chain (docs/design.md, "Cross-chain reads");
# authz also finds citizens' bindings on the authn chain.
PLATFORM_READS: dict[str, tuple[str, ...]] = {"authn": ("catalog",), "cert": ("catalog",),
                                              "authz": ("authn", "catalog"),
                                              "item": ("authn", "authz", "catalog")}


def platform_reads(chain_id: str, chains) -> tuple[str, ...]:
    """What the genesis files the tools write name as `chain_id`'s reads,
    among the `chains` of the network (a network without the catalog chain
    has nothing to read; its authn and cert chains then refuse writes)."""
    return tuple(c for c in PLATFORM_READS.get(chain_id, ()) if c in chains)


def platform_contracts(chain_id: str) -> tuple[tuple[str, int], ...]:
    """What the genesis files the tools write (node/tools/localnet.py,
    deploy/compose/init.py) name for `chain_id`. A chain the platform does
    not define is a test chain, and runs the open kv store like demo."""
    return PLATFORM_CONTRACTS.get(chain_id, OPEN_CONTRACTS)


class MissingContracts(ValueError):
    """A genesis names a contract or version this node does not have."""


def _label(name: str, version: int) -> str:
    return f"{name} version {version}"


@functools.cache
def available() -> dict[tuple[str, int], type]:
    """Every contract in this package: (NAME, VERSION) -> its class, in order."""
    found: dict[tuple[str, int], type] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in NOT_CONTRACTS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        name, version, cls = (getattr(module, attr, None) for attr in ("NAME", "VERSION", "CONTRACT"))
        where = f"{module.__name__}"
        if not isinstance(name, str) or isinstance(version, bool) or not isinstance(version, int) or cls is None:
            raise TypeError(f"{where}: a contract module defines NAME (str), VERSION (int) and CONTRACT (its class)")
        if (getattr(cls, "name", None), getattr(cls, "version", None)) != (name, version):
            raise TypeError(f"{where}: CONTRACT {cls.__name__} says {getattr(cls, 'name', None)!r} version "
                            f"{getattr(cls, 'version', None)!r}, the module {name!r} version {version}")
        if (name, version) in found:
            raise TypeError(f"{where}: {_label(name, version)} is defined twice")
        found[(name, version)] = cls
    return found


def registry_for(chain_id: str, contracts: Iterable[tuple[str, int]]) -> ContractRegistry:
    """The registry of one chain: one instance of each (name, version) its
    genesis names. MissingContracts names each one this node lacks, and
    what it has."""
    wanted = list(contracts)
    have = available()
    missing = [pair for pair in wanted if pair not in have]
    if missing:
        raise MissingContracts(
            f"chain {chain_id}: genesis names {', '.join(_label(*pair) for pair in missing)}, which this node "
            f"does not have (it has {', '.join(_label(*pair) for pair in have) or 'no contracts'}); "
            f"run a govchain release that includes {'them' if len(missing) > 1 else 'it'}")
    return ContractRegistry(have[pair]() for pair in wanted)


class BadAppState(ValueError):
    """A genesis app_state section its contract refuses."""


def genesis_state(chain_id: str, app_state, registry: ContractRegistry) -> tuple[StateWrite, ...]:
    """The initial state writes of a genesis's `app_state` (contract name ->
    section), in (contract, key) order: each contract turns its own section
    into writes with `genesis_writes(section) -> [(key, value)]`, which
    validates it. BadAppState names the contract and the problem; the daemon
    refuses to start on it (docs/design.md, "Genesis")."""
    writes: list[StateWrite] = []
    for name, section in sorted((app_state or {}).items()):
        hook = getattr(registry.get(name), "genesis_writes", None)
        if hook is None:
            raise BadAppState(f"chain {chain_id}: genesis app_state.{name}: contract {name} takes no initial state")
        try:
            writes += [(name, key, value) for key, value in hook(section)]
        except ContractError as exc:
            raise BadAppState(f"chain {chain_id}: genesis app_state.{name}: {exc}") from None
    return tuple(sorted(writes, key=lambda w: (w[0], w[1])))

