"""Ed25519 Signer/Verifier for the consensus core (PyNaCl)."""
from __future__ import annotations

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey


class Ed25519Signer:
    def __init__(self, signing_key: SigningKey) -> None:
        self._key = signing_key

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data).signature


class Ed25519Verifier:
    """Checks signatures against the genesis validator keys, by replica index."""

    def __init__(self, public_keys: list[bytes]) -> None:
        self._keys = [VerifyKey(k) for k in public_keys]

    def verify(self, replica: int, data: bytes, signature: bytes) -> bool:
        if not 0 <= replica < len(self._keys) or len(signature) != 64:
            return False
        try:
            self._keys[replica].verify(data, signature)
            return True
        except BadSignatureError:
            return False
