"""TLS material for both ports, and the binding of a TLS certificate to a
genesis validator key.

One network CA issues one certificate per department (`govchain tls ca`,
`govchain tls cert`): subject alternative names = the department id and the
host names and IPs it is reached at, key type EC P-256 (gRPC's TLS stack does
not sign handshakes with Ed25519). A validator's certificate also carries a
binding extension: its Ed25519 node key (the one its genesis entries name)
and that key's signature over the certificate's public key. A peer is a
validator only through that binding, so holding the CA key alone is not
enough to speak as a validator; a certificate without it (a department
application's client certificate) is never accepted on the peer port.
See docs/security.md.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from node.core.keys import read_private_file, write_private_file

# An OID derived from a UUID (ITU-T X.667, arc 2.25): needs no registration.
BINDING_OID = x509.ObjectIdentifier("2.25.262909536994931744328624939773519465807")
_BINDING_DOMAIN = b"govchain/v1/tls-binding\x00"
_PUBLIC_KEY_BYTES = 32
_SIGNATURE_BYTES = 64
CA_DAYS = 3650
CERT_DAYS = 825
CA_FILES = ("ca.crt", "ca.key")


class TlsError(ValueError):
    """TLS material is missing, malformed, or does not fit this node."""


# ---- generation -------------------------------------------------------------------

def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    try:
        with open(path, "xb") as file:
            file.write(_pem_cert(cert))
    except FileExistsError:
        raise TlsError(f"{path} already exists; refusing to overwrite it (move it away first)") from None


def _free(*paths: Path) -> None:
    """Fail before writing anything if any output exists (no half-written sets)."""
    for path in paths:
        if path.exists():
            raise TlsError(f"{path} already exists; refusing to overwrite it (move it away first)")


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)


def generate_ca(directory: str | os.PathLike[str], name: str = "govchain network CA") -> tuple[Path, Path]:
    """Write DIR/ca.crt and DIR/ca.key (0600); never overwrites."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    crt, key_path = (directory / f for f in CA_FILES)
    _free(crt, key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start, end = _validity(CA_DAYS)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    write_private_file(key_path, _pem_key(key), "CA key file")
    _write_cert(crt, cert)
    return crt, key_path


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _binding_message(spki: bytes) -> bytes:
    return _BINDING_DOMAIN + hashlib.sha256(spki).digest()


def _san(name: str, hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys((name, *hosts)):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue_cert(ca_dir: str | os.PathLike[str], out: str | os.PathLike[str], name: str, hosts: Iterable[str] = (),
               node_key: SigningKey | None = None) -> tuple[Path, Path]:
    """Write OUT.crt and OUT.key (0600) for `name`, signed by the CA in ca_dir;
    never overwrites. With node_key the certificate is bound to that validator
    key (see the module doc); without, it is a client certificate only."""
    ca_cert, ca_key = load_ca(ca_dir)
    out = Path(out)
    crt, key_path = out.with_name(out.name + ".crt"), out.with_name(out.name + ".key")
    _free(crt, key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(CERT_DAYS)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                     ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(_san(name, hosts), critical=False))
    if node_key is not None:
        signature = node_key.sign(_binding_message(_spki(key.public_key()))).signature
        value = bytes(node_key.verify_key) + signature
        # DER OCTET STRING of the 96 bytes: public key, then signature.
        builder = builder.add_extension(
            x509.UnrecognizedExtension(BINDING_OID, b"\x04" + bytes([len(value)]) + value), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    out.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(key_path, _pem_key(key), "TLS key file")
    _write_cert(crt, cert)
    return crt, key_path


def load_ca(ca_dir: str | os.PathLike[str]):
    crt, key_path = (Path(ca_dir) / f for f in CA_FILES)
    cert = _load_cert(read_file(crt))
    key = serialization.load_pem_private_key(
        read_private_file(key_path, "CA key file", f"create one with `govchain tls ca --dir {ca_dir}`"), None)
    return cert, key


# ---- reading ----------------------------------------------------------------------

def read_file(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise TlsError(f"{path}: file not found; create TLS material with `govchain tls ca` "
                       f"and `govchain tls cert`") from None
    except OSError as exc:
        raise TlsError(f"{path}: cannot read: {exc.strerror}") from None


def _load_cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise TlsError(f"not a PEM certificate: {exc}") from None


def bound_key(cert_pem: bytes) -> bytes | None:
    """The Ed25519 validator key a certificate is bound to, or None when it
    has no valid binding. The certificate chain is the TLS stack's check."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        raw = cert.extensions.get_extension_for_oid(BINDING_OID).value.value
    except (ValueError, x509.ExtensionNotFound):
        return None
    size = _PUBLIC_KEY_BYTES + _SIGNATURE_BYTES
    if len(raw) != 2 + size or raw[:2] != b"\x04" + bytes([size]):
        return None
    public_key, signature = raw[2:2 + _PUBLIC_KEY_BYTES], raw[2 + _PUBLIC_KEY_BYTES:]
    try:
        VerifyKey(public_key).verify(_binding_message(_spki(cert.public_key())), signature)
    except (BadSignatureError, ValueError, TypeError):
        return None
    return public_key


@dataclass(frozen=True)
class Material:
    """PEM bytes a node or client presents and trusts."""

    ca: bytes
    cert: bytes | None = None
    key: bytes | None = None

    @classmethod
    def load(cls, ca: Path, cert: Path | None = None, key: Path | None = None) -> "Material":
        if (cert is None) != (key is None):
            raise TlsError("a client certificate needs both the certificate and its key")
        material = cls(ca=read_file(ca), cert=read_file(cert) if cert else None,
                       key=read_private_file(key, "TLS key file", "create one with `govchain tls cert`")
                       if key else None)
        for what, pem in (("ca", material.ca), ("cert", material.cert)):
            if pem is not None:
                try:
                    _load_cert(pem)
                except TlsError as exc:
                    raise TlsError(f"{ca if what == 'ca' else cert}: {exc}") from None
        return material

    def server_credentials(self, require_client_cert: bool) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.key, self.cert)], root_certificates=self.ca,
                                           require_client_auth=require_client_cert)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return self._channel_credentials

    @functools.cached_property
    def _channel_credentials(self) -> grpc.ChannelCredentials:
        # One object per Material: gRPC shares connections only between channels with the
        # same credentials object, so a channel in reconnect backoff recovers when another
        # one to the same node connects (as plaintext channels do).
        return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)


def check_own_cert(material: Material, public_key: bytes) -> None:
    """A node's certificate must be bound to its own validator key."""
    bound = bound_key(material.cert)
    if bound != public_key:
        found = "no validator binding" if bound is None else f"validator key {bound.hex()}"
        raise TlsError(f"the TLS certificate carries {found}, but key_file holds {public_key.hex()}; "
                       f"issue it with `govchain tls cert --node-key KEY_FILE`")


def peer_cert(context) -> bytes | None:
    """The PEM certificate the TLS client presented on this RPC, if any."""
    certs = context.auth_context().get("x509_pem_cert")
    return certs[0] if certs else None
