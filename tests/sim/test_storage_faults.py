"""Storage faults in the simulator (issue 8): lost, torn and misdirected
writes, and the shell's defence (promise record, repair, learner).
docs/simulator.md, "Storage faults"."""
from __future__ import annotations

import random

import pytest

from consensus import events as ev
from consensus.sim.__main__ import main
from consensus.sim.node import Promise, PromiseRecord
from consensus.sim.runner import SimOptions, run
from consensus.sim.storage import Storage, StorageFaults


def _w(key, value):
    return ev.Write(key=key, value=value)


def _disk(**faults) -> Storage:
    return Storage(StorageFaults(**faults), random.Random(1))


def test_lost_write_is_seen_only_after_a_crash_and_loses_the_suffix():
    s = _disk(lost=1.0)
    s.write([_w(("view",), 1)], sync=True)
    s.write([_w(("view",), 2), _w(("prepared", 3), "p")], sync=True)
    assert s.get(("view",)) == 2  # the page cache still serves it
    s.crash()
    # Log recovery stops at the first lost batch: everything after it is gone too.
    assert s.durable_records() == {} and s.durable_syncs() == 0
    assert s.injected["lost"] == 2


def test_torn_write_leaves_a_record_whose_checksum_fails():
    s = _disk(torn=1.0)
    s.write([_w(("view",), 1)], sync=True)
    assert s.damaged() == []
    s.crash()
    assert len(s.damaged()) == 1 and s.damaged()[0] not in s.durable_records()


def test_misdirected_write_damages_another_record_and_its_own_place():
    s = _disk()
    s.write([_w(("view",), 1)], sync=True)
    s.faults = StorageFaults(misdirected=1.0)
    s.write([_w(("view",), 2)], sync=True)
    # The only other key was the victim; the intended place no longer holds what the index expects.
    assert s.damaged() == [("view",), ("sync",)] and s.durable_syncs() == -1
    assert s.durable_records() == {}


def test_promise_record_survives_a_torn_copy():
    p = PromiseRecord()
    p.write(Promise(sync=1, view=1))
    p.write(Promise(sync=2, view=2))
    p.tear_last()
    assert p.read() == Promise(sync=1, view=1)


# Seeds where a crashed primary that lost its records proposes a second block
# at a sequence number it already proposed (found with the sweep below).
_CONTROL = dict(crashes=3, lost_writes=0.02, torn_writes=0.02, misdirected_writes=0.02)
_BITING_SEEDS = (9, 21, 25)


def _opts(seed: int, defence: bool) -> SimOptions:
    return SimOptions(seed=seed, faults="none", overrides=dict(_CONTROL), storage_defence=defence)


@pytest.mark.parametrize("seed", _BITING_SEEDS)
def test_control_without_the_defence_the_checker_catches_equivocation(seed):
    res = run(_opts(seed, defence=False))
    assert res.status == "safety" and "equivocation" in res.detail, (res.detail, res.replay)
    assert "--no-storage-defence" in res.replay


@pytest.mark.parametrize("seed", _BITING_SEEDS)
def test_with_the_defence_the_same_seeds_repair_rejoin_and_pass(seed):
    res = run(_opts(seed, defence=True))
    assert res.status == "ok", (res.detail, res.replay)
    storage = res.stats["storage"]
    assert storage["detected"] >= 1 and storage["rejoins"] >= 1, storage


def test_swarm_seeds_with_storage_faults_pass_and_faults_reach_a_restart():
    detected = 0
    for seed in range(60, 72):  # 69 repairs a store (after the merge of the hash-chain link)
        res = run(SimOptions(seed=seed, safety_ms=2500))
        assert res.status == "ok", (res.detail, res.replay)
        detected += res.stats.get("storage", {}).get("detected", 0)
    assert detected >= 1  # the swarm draw does put damaged stores in front of the defence


def test_cli_flags_and_the_replay_command(capsys):
    code = main(["--seed", "9", "--faults", "none", "--crashes", "3", "--lost-writes", "0.02", "--torn-writes",
                 "0.02", "--misdirected-writes", "0.02", "--no-storage-defence"])
    out = capsys.readouterr().out
    assert code == 129
    assert ("replay: python -m consensus.sim --seed 9 --nodes 4 --faults none --crashes 3 --lost-writes 0.02 "
            "--torn-writes 0.02 --misdirected-writes 0.02 --no-storage-defence") in out
