"""Built-in contracts and the registry helper each chain uses to build its
ContractRegistry from names in its config.

A new contract (catalog, item, authn, authz, cert) is a module with a class
that has a `name` and an `execute(ctx, tx)` (node.execution.Contract; most
subclass node.contracts.base.MethodContract). It plugs in by adding one line
to BUILTIN below, or without touching this package by naming it in the chain
config as "package.module:Class". The core (node.execution) never changes.
"""
from __future__ import annotations

import importlib
from typing import Iterable

from node.execution import Contract, ContractRegistry

BUILTIN: dict[str, str] = {
    "kv": "node.contracts.kv:KvContract",
}


def load_contract(spec: str) -> Contract:
    """A contract instance from a built-in name ("kv") or "module:Class"."""
    target = BUILTIN.get(spec, spec)
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"unknown contract {spec!r}: not built in ({', '.join(sorted(BUILTIN))}) "
                         "and not of the form 'module:Class'")
    factory = getattr(importlib.import_module(module_name), attr)
    contract = factory()
    if not isinstance(getattr(contract, "name", None), str) or not callable(getattr(contract, "execute", None)):
        raise TypeError(f"{target} is not a contract (needs .name and .execute(ctx, tx))")
    return contract


def registry_for(specs: Iterable[str]) -> ContractRegistry:
    """The registry of one chain: load every named contract, in config order."""
    return ContractRegistry(load_contract(spec) for spec in specs)
