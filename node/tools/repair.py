"""Rebuild one chain's damaged store from the other departments' nodes.

`govchain chain repair` moves the damaged store aside (never deletes it: the
operator may want it for forensics), then fetches the chain block by block
from other nodes' client ports. Each block must carry a commit certificate
of 2f+1 genesis validators and extend the previous one (parent hash and
certified link: docs/design.md, "Block binding"); it is executed here,
so the state root is this node's own, and every stable checkpoint's proof
must sign exactly the block hash this node computed (docs/design.md,
"Storage integrity"). The repair succeeds only when the rebuilt chain covers
every promise the node made (height and the sequence numbers it voted on);
until the network has passed those, the node could contradict votes it
forgot, so it stays down.
"""
from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import grpc

from consensus.certificates import valid_committed_block
from consensus.events import ViewRecord, Write
from consensus.messages import CommittedBlock
from consensus.replica import VIEW_KEY
from node.contracts import genesis_state
from node.net.client import get_block
from node.core.crypto import Ed25519Verifier
from node.ledger.execution import ContractRegistry, Executor
from node.core.genesis import Genesis
from node.ledger.ledger import CHECKPOINT_RECORD_KEY, Ledger, LedgerError, damaged_marker
from node.ledger.promises import Promise, PromiseError, PromiseFile
from node.ledger.verify import checkpoint_problem

BlockSource = Callable[[int], tuple[CommittedBlock, object] | None]  # height -> (block, checkpoint) or None


class RepairError(Exception):
    """The repair could not finish; the message says why and what to do."""


@dataclass(frozen=True)
class RepairResult:
    height: int
    checkpoints: int
    moved_to: str
    promised: Promise


def grpc_source(stubs: list, chain_id: str, timeout_s: float) -> BlockSource:
    """Blocks from the first of `stubs` that has the height (client API GetBlock)."""
    def fetch(height: int):
        for stub in stubs:
            try:
                _, block, checkpoint = get_block(stub, chain_id, height, timeout_s)
            except grpc.RpcError:  # that node is down, behind or damaged too: ask the next one
                continue
            return block, checkpoint
        return None
    return fetch


def _check_unlocked(path: str) -> None:
    """LevelDB holds an fcntl lock on LOCK while a node has the store open."""
    lock = os.path.join(path, "LOCK")
    if not os.path.exists(lock):
        return
    with open(lock, "rb+") as f:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RepairError(f"{path} is in use: stop the node first") from None
        fcntl.lockf(f, fcntl.LOCK_UN)


def _promised(path: str, genesis: Genesis) -> Promise:
    promises = PromiseFile(path, genesis.hash)
    if not promises.exists():
        return Promise()
    try:
        return promises.read()
    except PromiseError:
        return Promise()  # both copies lost: nothing to hold the rebuilt chain to


def repair_chain(path: str, genesis: Genesis, registry: ContractRegistry, source: BlockSource,
                 progress: Callable[[int], None] = lambda height: None,
                 read_sources: Mapping[str, Ledger] | None = None) -> RepairResult:
    """Rebuild one chain's store from certified blocks. `read_sources` are
    this node's ledgers of the chains the genesis `reads` (docs/design.md,
    "Cross-chain reads"): each must already hold every height a block names,
    so repair a read chain first."""
    _check_unlocked(path)
    promised = _promised(path, genesis)
    moved_to = f"{path}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    if os.path.exists(path):
        os.rename(path, moved_to)
    os.makedirs(moved_to, exist_ok=True)
    for name in PromiseFile(path, genesis.hash).paths + [damaged_marker(path)]:
        if os.path.exists(name):
            os.rename(name, os.path.join(moved_to, os.path.basename(name)))
    ledger = Ledger(path, genesis.chain_id, genesis.hash, create=True,
                    initial_state=genesis_state(genesis.chain_id, genesis.app_state, registry))
    try:
        checkpoints = _refetch(ledger, genesis, registry, source, progress, read_sources or {})
        if ledger.height < max(promised.height, promised.voted_seq):
            raise RepairError(
                f"the other nodes gave {ledger.height} blocks, but this node had promised height "
                f"{promised.height} and voted up to seq {promised.voted_seq}; wait until the network has "
                f"passed seq {max(promised.height, promised.voted_seq)} and run the repair again")
        # Never again enter a view at or below one this node entered before:
        # it may have signed messages there that it no longer remembers.
        ledger.persist_records([Write(key=VIEW_KEY, value=ViewRecord(view=promised.view, changing=False,
                                                                       floor=0))])
        promises = PromiseFile(path, genesis.hash)
        promises.create()
        ledger._promises = promises
        ledger.sync()
        return RepairResult(height=ledger.height, checkpoints=checkpoints, moved_to=moved_to, promised=promised)
    except BaseException:
        ledger.close()
        shutil.rmtree(path, ignore_errors=True)
        for name in PromiseFile(path, genesis.hash).paths:
            if os.path.exists(name):
                os.remove(name)
        raise
    finally:
        ledger.close()


def _refetch(ledger: Ledger, genesis: Genesis, registry: ContractRegistry, source: BlockSource,
             progress: Callable[[int], None], read_sources: Mapping[str, Ledger]) -> int:
    n = len(genesis.validators)
    verifier = Ed25519Verifier([v.public_key_bytes for v in genesis.validators])
    missing = sorted(set(genesis.reads) - set(read_sources))
    if missing:
        raise RepairError(f"chain {genesis.chain_id} reads {', '.join(missing)}: this node's store of "
                          f"{'each' if len(missing) > 1 else 'it'} is needed to re-execute its blocks")
    executor = Executor(genesis.chain_id, registry, ledger, reads=genesis.reads, read_sources=read_sources)
    checkpoints = 0
    for height in itertools.count(1):
        got = source(height)
        if got is None:
            return checkpoints
        block, checkpoint = got
        if block.seq != height or not valid_committed_block(block, genesis.chain_id, n, verifier):
            raise RepairError(f"block {height} from the other nodes has no valid commit certificate; "
                              f"try other nodes with --from")
        for chain, needed in executor.read_heights(block).items():
            if read_sources[chain].height < needed:
                raise RepairError(f"block {height} reads {chain} at height {needed}, but this node's {chain} "
                                  f"store has {read_sources[chain].height}; repair {chain} first (or start the "
                                  f"node so it catches up) and run this repair again")
        result = executor.execute_block(block, ledger.tip_header)  # our own header, state root, receipts
        if checkpoint is not None:
            problem = checkpoint_problem(checkpoint, result.header, n, verifier)
            if problem:
                raise RepairError(f"block {height}: {problem}")
        try:
            ledger.commit_block(block, result.header, result.receipts, result.state_writes, sync=False)
        except LedgerError as exc:  # e.g. a certified link over another history: the sources disagree
            raise RepairError(f"block {height}: {exc}; try other nodes with --from") from exc
        if checkpoint is not None:
            ledger.persist_records([Write(key=CHECKPOINT_RECORD_KEY, value=checkpoint)], sync=False)
            checkpoints += 1
        progress(height)
    return checkpoints
