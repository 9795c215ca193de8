"""The ports a local network listens on (node/tools/localnet.py free_ports)."""
from __future__ import annotations

import socket

from node.tools import localnet


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    """Below the range the kernel hands out for outgoing connections, so no node's dialling can take a port
    another node is about to listen on."""
    ports = localnet.free_ports(64)
    assert len(set(ports)) == 64
    assert all(localnet.LISTEN_PORTS_FROM <= p < localnet._ephemeral_ports_start() for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))


def test_a_port_in_use_is_never_chosen(monkeypatch):
    busy, free = localnet.free_ports(2)
    with socket.socket() as held:
        held.bind(("127.0.0.1", busy))
        candidates = iter([busy, free])
        monkeypatch.setattr(localnet.random, "randrange", lambda *_: next(candidates))
        assert localnet.free_ports(1) == [free]
