"""The identity service's node serves the subject-tag endpoint on its client
port ([identity]), to listed windows only (docs/design.md, "Subject tags (OPRF)")."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.identity import oprf
from node.net import tls
from tests.e2e.conftest import run_cli
from tests.node.test_identity_service import _direct

pytestmark = pytest.mark.e2e
ID = "440524188001010014"


def _serve_identity(spec, root: Path, key_file: Path) -> None:
    config = Path(spec.config)
    text = config.read_text()
    assert "require_client_cert = false" in text
    config.write_text(text.replace("require_client_cert = false", "require_client_cert = true")
                      + f'\n[identity]\noprf_key_file = "{key_file}"\nwindows = ["civil-window-1"]\nburst = 5\n')


def test_a_listed_window_gets_the_tag_and_other_clients_are_refused(net_factory):
    net = net_factory(nodes=1, start=False)
    root, spec = net.root, net.specs[0]
    key_file = root / "oprf.key"
    run_cli("keys", "generate-oprf", "--out", str(key_file))
    tls.issue_cert(root / "tls", root / "tls" / "civil-window-1", "civil-window-1")
    _serve_identity(spec, root, key_file)
    net.start()
    net.wait_ready()

    def tag(cert: str):
        return run_cli("tag", "--identity", spec.client, "--id-number", ID, "--json", "--ca",
                       str(root / "tls" / "ca.crt"), "--cert", str(root / "tls" / f"{cert}.crt"),
                       "--cert-key", str(root / "tls" / f"{cert}.key"), check=False)

    ok = tag("civil-window-1")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["tag"] == _direct(oprf.load_key(key_file), ID).hex()
    refused = tag("client")  # the cluster's tools certificate: issued by the CA, not a listed window
    assert refused.returncode == 1
    assert "PERMISSION_DENIED: certificate 'cluster-client' is not a window" in refused.stderr


def test_a_node_whose_oprf_key_file_is_missing_does_not_start(net_factory):
    net = net_factory(nodes=1, start=False)
    spec = net.specs[0]
    _serve_identity(spec, net.root, net.root / "absent.key")
    result = run_cli("node", "run", "--config", str(spec.config), check=False, timeout=60)
    assert result.returncode == 2
    assert "[identity] oprf_key_file" in result.stderr and "govchain keys generate-oprf" in result.stderr
