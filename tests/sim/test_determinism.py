"""Every run reproduces from its seed (docs/design.md, Rule 3)."""
from __future__ import annotations

import random

from consensus.sim.runner import SimOptions, run


def test_simulator_same_seed_gives_same_trace_digest():
    for seed in (11, 12):
        a = run(SimOptions(seed=seed, safety_ms=2000))
        b = run(SimOptions(seed=seed, safety_ms=2000))
        assert a.trace_digest == b.trace_digest and a.height == b.height and a.status == b.status
        assert a.profile == b.profile


def test_simulator_different_seeds_give_different_traces():
    a = run(SimOptions(seed=1, faults="none", safety_ms=500))
    b = run(SimOptions(seed=2, faults="none", safety_ms=500))
    assert a.trace_digest != b.trace_digest


def _ed25519_keys(n: int, rng: random.Random):
    """The node's real signature scheme, injected from the test: consensus/
    never imports nacl or node (docs/design.md, Rule 1)."""
    from nacl.signing import SigningKey

    from node.core.crypto import Ed25519Signer, Ed25519Verifier

    keys = [SigningKey(rng.randbytes(32)) for _ in range(n)]
    return [Ed25519Signer(k) for k in keys], Ed25519Verifier([bytes(k.verify_key) for k in keys])


def test_simulator_with_injected_ed25519_is_deterministic():
    # Ed25519 signatures are deterministic (RFC 8032), so the trace is too.
    opts = dict(seed=5, nodes=4, faults="none", safety_ms=500, liveness_ms=10_000)
    a = run(SimOptions(**opts), key_factory=_ed25519_keys)
    b = run(SimOptions(**opts), key_factory=_ed25519_keys)
    assert a.status == "ok" and a.height > 0, a.detail
    assert a.trace_digest == b.trace_digest
    assert a.trace_digest != run(SimOptions(**opts)).trace_digest  # really another signature scheme
