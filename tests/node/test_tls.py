"""TLS material (`govchain tls`) and the binding of a certificate to a validator key."""
from __future__ import annotations

import ipaddress
import json
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from nacl.signing import SigningKey

from node.tools import cli

from node.net import tls
from node.core.config import TlsConfig, config_template, load_config
from node.daemon import Node, StartupError
from node.core.keys import generate_key_file


@pytest.fixture
def ca_dir(tmp_path):
    tls.generate_ca(tmp_path / "ca")
    return tmp_path / "ca"


def _cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_ca_and_certificate_files(ca_dir, tmp_path):
    assert stat.S_IMODE(os.stat(ca_dir / "ca.key").st_mode) == 0o600
    node_key = SigningKey.generate()
    crt, key = tls.issue_cert(ca_dir, tmp_path / "housing", "housing-registry", ["10.0.0.7", "node1.gov"], node_key)
    assert (crt.name, key.name) == ("housing.crt", "housing.key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    cert = _cert(crt)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["housing-registry", "node1.gov"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]
    assert cert.issuer == _cert(ca_dir / "ca.crt").subject
    assert tls.bound_key(crt.read_bytes()) == bytes(node_key.verify_key)


def test_nothing_is_overwritten(ca_dir, tmp_path):
    before = (ca_dir / "ca.key").read_bytes()
    with pytest.raises(tls.TlsError, match="already exists; refusing to overwrite"):
        tls.generate_ca(ca_dir)
    assert (ca_dir / "ca.key").read_bytes() == before
    tls.issue_cert(ca_dir, tmp_path / "app", "app")
    key_before = (tmp_path / "app.key").read_bytes()
    with pytest.raises(tls.TlsError, match="app.crt already exists"):
        tls.issue_cert(ca_dir, tmp_path / "app", "app")
    assert (tmp_path / "app.key").read_bytes() == key_before


def test_binding_needs_the_validator_key_signature(ca_dir, tmp_path):
    tls.issue_cert(ca_dir, tmp_path / "app", "app")
    assert tls.bound_key((tmp_path / "app.crt").read_bytes()) is None  # a client certificate
    # A binding copied onto another certificate (another TLS key) does not verify.
    validator = SigningKey.generate()
    tls.issue_cert(ca_dir, tmp_path / "v", "v", node_key=validator)
    binding = _cert(tmp_path / "v.crt").extensions.get_extension_for_oid(tls.BINDING_OID).value
    app = _cert(tmp_path / "app.crt")
    ca_cert, ca_key = tls.load_ca(ca_dir)
    builder = (x509.CertificateBuilder().subject_name(app.subject).issuer_name(ca_cert.subject)
               .public_key(app.public_key()).serial_number(1).not_valid_before(app.not_valid_before_utc)
               .not_valid_after(app.not_valid_after_utc).add_extension(binding, critical=False))
    copied = builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    assert tls.bound_key(copied) is None
    assert tls.bound_key(b"not a certificate") is None


def test_node_refuses_a_certificate_of_another_key(ca_dir, tmp_path):
    generate_key_file(tmp_path / "node.key")
    tls.issue_cert(ca_dir, tmp_path / "tls", "housing-registry", node_key=SigningKey.generate())
    text = config_template("housing-registry", tls=TlsConfig(ca=ca_dir / "ca.crt", cert=tmp_path / "tls.crt",
                                                             key=tmp_path / "tls.key"))
    (tmp_path / "node.toml").write_text(text)
    with pytest.raises(StartupError, match=r"\[tls\]: the TLS certificate carries validator key [0-9a-f]{64}, "
                                           r"but key_file holds [0-9a-f]{64}; issue it with `govchain tls cert"):
        Node(load_config(tmp_path / "node.toml"))


def test_cli_tls_commands(tmp_path, capsys):
    generate_key_file(tmp_path / "node.key")
    assert cli.main(["tls", "ca", "--dir", str(tmp_path / "ca"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["key"] == str(tmp_path / "ca" / "ca.key")
    assert cli.main(["tls", "cert", "--ca-dir", str(tmp_path / "ca"), "--name", "housing-registry",
                     "--host", "127.0.0.1", "--node-key", str(tmp_path / "node.key"),
                     "--out", str(tmp_path / "tls"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["validator"] is True
    assert cli.main(["tls", "ca", "--dir", str(tmp_path / "ca")]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
