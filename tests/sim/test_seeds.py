"""The fixed CI seed list: swarm-sampled fault profiles (docs/testing.md "per PR").

700 seeds split so pytest -n / the report shows which block failed: 200
swarm seeds at n = 4 and 100 at n = 7, then 200 hostile seeds (f Byzantine
replicas, crashes and partitions in every seed) each at n = 7 and n = 10.
Each failure message carries the replay command. Seeds are short (2.5
virtual seconds of faults + liveness phase) to fit the suite's budget on 2
cores; `python -m consensus.sim --seeds 1..10000 --nodes 4,7,10 --faults
hostile` is the long sweep (docs/simulator.md).
"""
from __future__ import annotations

import pytest

from consensus.sim.runner import SimOptions, run


def _sweep(nodes, seeds, faults="swarm"):
    bad = []
    for seed in seeds:
        res = run(SimOptions(seed=seed, nodes=nodes, faults=faults, safety_ms=2500))
        if res.status != "ok":
            bad.append(f"{res.status}: {res.detail.strip().splitlines()[0]}\n  replay: {res.replay}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("block", range(4))
def test_swarm_seeds_n4_stay_safe_and_live(block):
    _sweep(4, range(1000 + 50 * block, 1000 + 50 * (block + 1)))


@pytest.mark.parametrize("block", range(4))
def test_swarm_seeds_n7_stay_safe_and_live(block):
    _sweep(7, range(2000 + 25 * block, 2000 + 25 * (block + 1)))


@pytest.mark.parametrize("block", range(4))
def test_hostile_seeds_n7_stay_safe_and_live(block):
    _sweep(7, range(3000 + 50 * block, 3000 + 50 * (block + 1)), "hostile")


@pytest.mark.parametrize("block", range(4))
def test_hostile_seeds_n10_stay_safe_and_live(block):
    _sweep(10, range(4000 + 50 * block, 4000 + 50 * (block + 1)), "hostile")
