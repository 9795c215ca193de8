"""The core is pure (docs/design.md, Rule 1): consensus/ never does I/O, never reads
a clock, never uses global randomness and never imports the node.

Every .py file under consensus/ (including consensus/sim/) is parsed with
`ast` -- nested and lazy (function-level) imports included -- and checked
against the forbidden list. Only the wall-clock benchmark of the simulator
(consensus/sim/bench.py and its entry point consensus/sim/__main__.py) may
import `time`: it measures wall time by definition. `sys` and `argparse` are
allowed in consensus/sim/ (the command line) but never in the core.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "consensus"

FORBIDDEN = {"asyncio", "threading", "socket", "time", "os", "uuid", "grpc", "plyvel", "nacl", "node"}
# Where a forbidden top-level module is nonetheless allowed, and why.
ALLOWED = {
    "time": {"consensus/sim/bench.py", "consensus/sim/__main__.py"},  # --bench measures wall time
}
CORE_ONLY_FORBIDDEN = {"sys", "argparse"}  # fine for the simulator's CLI, never in the core
RANDOM_NAMES_ALLOWED = {"Random"}


def _files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _is_core(rel: str) -> bool:
    return rel.startswith("consensus/") and not rel.startswith("consensus/sim/")


def _resolve_relative(rel: str, node: ast.ImportFrom) -> str:
    """Absolute module name of a relative `from . import x`."""
    parts = rel[: -len(".py")].split("/")
    package = parts[:-1]  # the module's package (for __init__ too: it is its own package's file)
    if node.level > 1:
        package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *(node.module.split(".") if node.module else [])])


def violations(source: str, rel: str) -> list[str]:
    """Every purity violation in one module's source, as readable lines."""
    tree = ast.parse(source, filename=rel)
    found: list[str] = []

    def check_module(name: str, lineno: int) -> None:
        top = name.split(".")[0]
        if top in FORBIDDEN and rel not in ALLOWED.get(top, set()):
            found.append(f"{rel}:{lineno}: imports {name}")
        if top in CORE_ONLY_FORBIDDEN and _is_core(rel):
            found.append(f"{rel}:{lineno}: core module imports {name}")

    random_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_module(alias.name, node.lineno)
                if alias.name == "random":
                    random_aliases.add(alias.asname or "random")
        elif isinstance(node, ast.ImportFrom):
            module = _resolve_relative(rel, node) if node.level else (node.module or "")
            if module:
                check_module(module, node.lineno)
            else:  # `from ... import node`: the names are the modules
                for alias in node.names:
                    check_module(alias.name, node.lineno)
            if module == "random":
                for alias in node.names:
                    if alias.name not in RANDOM_NAMES_ALLOWED:
                        found.append(f"{rel}:{node.lineno}: from random import {alias.name} "
                                     "(module-level random state)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {
                "__import__", "import_module"}:
            found.append(f"{rel}:{node.lineno}: dynamic import via {node.func.id}()")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in random_aliases and node.attr not in RANDOM_NAMES_ALLOWED):
            found.append(f"{rel}:{node.lineno}: uses module-level random.{node.attr}")
    return found


# ---- the scan itself -------------------------------------------------------------------------

def test_purity_scan_finds_the_package() -> None:
    """The scan is not vacuous: it sees the core and the simulator."""
    rels = {_rel(p) for p in _files()}
    assert "consensus/replica.py" in rels
    assert "consensus/quorum.py" in rels
    assert any(r.startswith("consensus/sim/") for r in rels)


@pytest.mark.parametrize("path", _files(), ids=_rel)
def test_purity_module_imports_nothing_impure(path: Path) -> None:
    """docs/design.md, Rule 1: no asyncio, threading, socket, time, os, uuid, grpc,
    plyvel, nacl, node, or module-level random anywhere under consensus/."""
    rel = _rel(path)
    assert violations(path.read_text(encoding="utf-8"), rel) == []


# ---- the checker catches what it must (so a green scan means something) -----------------------

@pytest.mark.parametrize("source", [
    "import asyncio",
    "import threading",
    "import socket",
    "import time",
    "from time import monotonic",
    "import os.path",
    "from os import urandom",
    "import uuid",
    "import grpc",
    "from grpc import aio",
    "import plyvel",
    "from nacl.signing import SigningKey",
    "def lazy():\n    import nacl.signing\n",
    "import node",
    "from node.ledger.ledger import Ledger",
    "from node import codec",
    "from random import random",
    "from random import choice, Random",
    "import random\nx = random.random()",
    "import random\nrandom.seed(1)",
    "import random as r\ny = r.choice([1, 2])",
    "import random\nf = random.shuffle",
    "import sys",
    "import argparse",
    "__import__('os')",
])
def test_purity_checker_flags_impure_core_source(source: str) -> None:
    assert violations(source, "consensus/replica.py")


@pytest.mark.parametrize("source", [
    "import random\nrng = random.Random(7)",
    "from random import Random\nrng = Random(7)",
    "import random\ndef f(rng: random.Random) -> int:\n    return rng.randint(1, 6)",
    "import hashlib\nfrom dataclasses import dataclass",
    "from consensus import messages as m",
    "from . import messages",
    "from collections.abc import Iterable",
])
def test_purity_checker_allows_pure_source(source: str) -> None:
    assert violations(source, "consensus/replica.py") == []


def test_purity_time_allowed_only_for_the_wall_clock_benchmark() -> None:
    src = "import time\nstart = time.perf_counter()"
    assert violations(src, "consensus/sim/bench.py") == []
    assert violations(src, "consensus/sim/__main__.py") == []
    assert violations(src, "consensus/sim/runner.py")
    assert violations(src, "consensus/replica.py")


def test_purity_cli_modules_allowed_only_in_the_simulator() -> None:
    src = "import sys\nimport argparse"
    assert violations(src, "consensus/sim/__main__.py") == []
    assert violations(src, "consensus/config.py")


def test_purity_relative_import_of_node_is_caught() -> None:
    """`from .. import node` inside consensus/sim resolves to consensus.node,
    which is fine; `from ...node import x` from consensus/sim resolves to
    node.x, which is not."""
    assert violations("from ..node import x", "consensus/sim/runner.py") == []  # consensus.node
    assert violations("from ...node import ledger", "consensus/sim/runner.py")
    assert violations("from ... import node", "consensus/sim/runner.py")
