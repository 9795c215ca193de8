"""Ed25519 Signer/Verifier for the consensus core, and sealing to an Ed25519
key (PyNaCl)."""
from __future__ import annotations

from nacl.exceptions import BadSignatureError
from nacl.public import SealedBox
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


def seal_to_signing_key(verify_key: bytes, data: bytes) -> bytes:
    """SealedBox to the X25519 form of an Ed25519 public key: what a
    verification query seals to the provider and a notice to a citizen."""
    return SealedBox(VerifyKey(verify_key).to_curve25519_public_key()).encrypt(data)


def open_with_signing_key(signing_key: SigningKey, sealed: bytes) -> bytes:
    """Opens what seal_to_signing_key sealed to signing_key's public key. Raises CryptoError."""
    return SealedBox(signing_key.to_curve25519_private_key()).decrypt(sealed)
