"""A test-only contract that reads another chain (docs/design.md, "Cross-chain
reads"). Never in node/contracts: tests register it themselves (unit tests in
a ContractRegistry, tests/e2e/reads_node.py in the node processes)."""
from __future__ import annotations

import json

from node.contracts.base import ANYONE, MethodContract, method, require_str
from node.ledger.execution import TxContext

NAME = "readtest"
VERSION = 1


class ReadTestContract(MethodContract):
    name = NAME
    version = VERSION

    @method(role=ANYONE)
    def copy(self, ctx: TxContext, args: dict) -> bytes:
        """Copy `chain`'s kv value of `key` into this chain's state under `key`,
        with the height it was read at; the output says the same."""
        chain, key = require_str(args, "chain"), require_str(args, "key").encode()
        value = ctx.read(chain, "kv", key)
        record = {"height": ctx.read_height(chain), "value": value.decode() if value is not None else None}
        ctx.put(key, json.dumps(record, sort_keys=True).encode())
        return json.dumps(record, sort_keys=True).encode()


CONTRACT = ReadTestContract
