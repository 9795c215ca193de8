"""The fixed CI seed list: swarm-sampled fault profiles (TESTING.md "per PR").

300 seeds split so pytest -n / the report shows which block failed. Each
failure message carries the replay command. Seeds are short (2.5 virtual
seconds of faults + liveness phase) to fit the ~3 minute budget on 2 cores;
`python -m consensus.sim --seeds 1..20000` is the nightly sweep.
"""
from __future__ import annotations

import pytest

from consensus.sim.runner import SimOptions, run


def _sweep(nodes, seeds):
    bad = []
    for seed in seeds:
        res = run(SimOptions(seed=seed, nodes=nodes, safety_ms=2500))
        if res.status != "ok":
            bad.append(f"{res.status}: {res.detail.strip().splitlines()[0]}\n  replay: {res.replay}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("block", range(4))
def test_swarm_seeds_n4_stay_safe_and_live(block):
    _sweep(4, range(1000 + 50 * block, 1000 + 50 * (block + 1)))


@pytest.mark.parametrize("block", range(4))
def test_swarm_seeds_n7_stay_safe_and_live(block):
    _sweep(7, range(2000 + 25 * block, 2000 + 25 * (block + 1)))
