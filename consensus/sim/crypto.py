"""Signers and verifiers for simulated replicas.

The default is a keyed BLAKE2b MAC: two orders of magnitude cheaper than
Ed25519 and still unforgeable without the secret, so a Byzantine node that
signs with its own key while claiming another replica's index is rejected
exactly as it would be with real signatures. `ed25519` uses PyNaCl (imported
lazily so the pure core never depends on it).
"""
from __future__ import annotations

import hashlib
import random


class HashSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=self._secret, digest_size=16).digest()


class HashVerifier:
    def __init__(self, secrets: list[bytes]) -> None:
        self._secrets = list(secrets)

    def verify(self, replica: int, data: bytes, signature: bytes) -> bool:
        if not 0 <= replica < len(self._secrets):
            return False
        return hashlib.blake2b(data, key=self._secrets[replica], digest_size=16).digest() == signature


class Ed25519Signer:
    def __init__(self, seed: bytes) -> None:
        from nacl.signing import SigningKey  # lazy: only the ed25519 option pays for it

        self._key = SigningKey(seed)
        self.verify_key = self._key.verify_key

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data).signature


class Ed25519Verifier:
    def __init__(self, verify_keys: list) -> None:
        from nacl.exceptions import BadSignatureError

        self._keys = list(verify_keys)
        self._bad = BadSignatureError

    def verify(self, replica: int, data: bytes, signature: bytes) -> bool:
        if not 0 <= replica < len(self._keys) or len(signature) != 64:
            return False
        try:
            self._keys[replica].verify(data, signature)
        except self._bad:
            return False
        return True


def make_keys(n: int, rng: random.Random, kind: str = "hash"):
    """Return (signers, verifier) for n replicas, keys derived from `rng`."""
    if kind == "hash":
        secrets = [rng.randbytes(32) for _ in range(n)]
        return [HashSigner(s) for s in secrets], HashVerifier(secrets)
    if kind == "ed25519":
        signers = [Ed25519Signer(rng.randbytes(32)) for _ in range(n)]
        return signers, Ed25519Verifier([s.verify_key for s in signers])
    raise ValueError(f"unknown crypto {kind!r}")


def wrong_key_signer(rng: random.Random, kind: str = "hash"):
    """A key that belongs to nobody: what a forger signs with."""
    return HashSigner(rng.randbytes(32)) if kind == "hash" else Ed25519Signer(rng.randbytes(32))
