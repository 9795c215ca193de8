"""Browser tests: the explorer of a real local network in headless Chromium
(Debian's `chromium`, driven by Playwright for Python; docs/design.md,
"Explorer and audit page"). One network for the whole browser suite and one
browser per module keep it fast; each test opens its own page.

GOVCHAIN_SCREENSHOTS=DIR saves the screenshots the README shows into DIR
(docs/img when refreshing them).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from playwright.sync_api import sync_playwright

from node.core.keys import load_signing_key
from node.core.tx import sign_transaction
from node.pb import client_pb2
from node.tools import localnet
from tests.e2e.conftest import Net, submit_batch

CHAINS = ("catalog", "item", "authn", "authz", "demo")  # the explorer's and the audit page's
CHROMIUM = os.environ.get("GOVCHAIN_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser") / "net"
    specs = localnet.create_network(root, nodes=4, chains=CHAINS)
    network = Net(root, specs, CHAINS)
    try:
        network.start()
        network.wait_ready()
        yield network
    finally:
        network.kill_all()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="zh-CN")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"the page raised: {errors}"


def screenshot(page, name: str) -> None:
    directory = os.environ.get("GOVCHAIN_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / name), full_page=True)


def department_key(net, department: str, name: str = "app.key") -> SigningKey:
    """A department's key from its node home: app.key (its services) or officer.key (governance)."""
    return load_signing_key(Path(next(s for s in net.specs if s.department == department).home) / name)


def commit(net, key, chain: str, method: str, payload: dict) -> bytes:
    """Submit on node 0, expect OK, and wait until all four nodes hold the block; the receipt's output."""
    tx = sign_transaction(key, chain_id=chain, nonce=time.time_ns(), contract=chain, method=method,
                          payload=json.dumps(payload).encode())
    result = submit_batch(net.client(0), [tx]).results[0]
    assert result.committed and result.receipt.status == client_pb2.Receipt.OK, result
    net.wait_same_head(chain, range(4), at_least=result.receipt.height)
    return result.receipt.output
