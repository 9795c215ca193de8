"""The services of the client port, as a list the daemon walks
(docs/design.md, "Services").

Each entry is a function `register(host, server) -> str | None`: it adds its
servicer to the client port's gRPC server when the node's config enables it,
and returns the service's full gRPC name (for health and reflection), or None
when it is off. `host` is the daemon's Node: `config`, `chains`,
`bad_input` and `pusher` (notices over MQTT, None without [mqtt];
docs/design.md, "Push notices and offers") are what a service may use;
verify.register also sets `verify_stats`, which the metrics collector reads.
A new service is one module here and one entry below.
"""
from __future__ import annotations

from node.services import audit, cases, client_api, identity, verify

CLIENT_PORT_SERVICES = (client_api.register, identity.register, verify.register, cases.register, audit.register)
