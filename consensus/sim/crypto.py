"""Signers and verifiers for simulated replicas.

A keyed BLAKE2b MAC: two orders of magnitude cheaper than Ed25519 and still
unforgeable without the secret, so a Byzantine node that signs with its own
key while claiming another replica's index is rejected exactly as it would be
with real signatures. Real Ed25519 (node.core.crypto, PyNaCl) is exercised by the
node tests; consensus/ never imports nacl (docs/design.md, Rule 1). A test may
still run the simulator with Ed25519 by passing its own `key_factory` to
`runner.Simulation` (see tests/sim/test_determinism.py).
"""
from __future__ import annotations

import hashlib
import random


def _keyed(secret: bytes):
    # Copying a keyed state is about twice as fast as keying a new one per call.
    return hashlib.blake2b(key=secret, digest_size=16)


class HashSigner:
    def __init__(self, secret: bytes) -> None:
        self._keyed = _keyed(secret)

    def sign(self, data: bytes) -> bytes:
        h = self._keyed.copy()
        h.update(data)
        return h.digest()


class HashVerifier:
    def __init__(self, secrets: list[bytes]) -> None:
        self._keyed = [_keyed(s) for s in secrets]

    def verify(self, replica: int, data: bytes, signature: bytes) -> bool:
        if not 0 <= replica < len(self._keyed):
            return False
        h = self._keyed[replica].copy()
        h.update(data)
        return h.digest() == signature


def make_keys(n: int, rng: random.Random):
    """Return (signers, verifier) for n replicas, keys derived from `rng`.

    This is the default key factory of the simulator; any callable with the
    same signature (n, rng) -> (signers, verifier) can replace it."""
    secrets = [rng.randbytes(32) for _ in range(n)]
    return [HashSigner(s) for s in secrets], HashVerifier(secrets)


def wrong_key_signer(rng: random.Random) -> HashSigner:
    """A key that belongs to nobody: what a forger signs with."""
    return make_keys(1, rng)[0][0]
