"""Every run reproduces from its seed (DESIGN.md rule 3)."""
from __future__ import annotations

from consensus.sim.runner import SimOptions, run


def test_simulator_same_seed_gives_same_trace_digest():
    for seed in (11, 12):
        a = run(SimOptions(seed=seed, workarounds=True, safety_ms=2000))
        b = run(SimOptions(seed=seed, workarounds=True, safety_ms=2000))
        assert a.trace_digest == b.trace_digest and a.height == b.height and a.status == b.status
        assert a.profile == b.profile


def test_simulator_different_seeds_give_different_traces():
    a = run(SimOptions(seed=1, faults="none", safety_ms=500))
    b = run(SimOptions(seed=2, faults="none", safety_ms=500))
    assert a.trace_digest != b.trace_digest


def test_simulator_with_ed25519_is_deterministic():
    a = run(SimOptions(seed=5, nodes=4, crypto="ed25519", faults="none", safety_ms=500, workarounds=True))
    b = run(SimOptions(seed=5, nodes=4, crypto="ed25519", faults="none", safety_ms=500, workarounds=True))
    assert a.status == "ok" and a.height > 0
    assert a.trace_digest == b.trace_digest
