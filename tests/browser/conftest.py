"""Browser tests: the explorer of a real local network in headless Chromium
(Debian's `chromium`, driven by Playwright for Python; docs/design.md,
"Explorer and audit page"). One network for the whole browser suite and one
browser per module keep it fast; each test opens its own page.

GOVCHAIN_SCREENSHOTS=DIR saves the screenshots the README shows into DIR
(docs/img when refreshing them).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from node.tools import localnet
from tests.e2e.conftest import Net

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
