#!/usr/bin/env python3
"""Container health check: ask the node's grpc.health.v1 service.

    python healthcheck.py [--config /etc/govchain/node.toml] [--address HOST:PORT]
                          [--service NAME] [--timeout SECONDS]

Exit 0 when the node answers SERVING, 1 otherwise (Docker's HEALTHCHECK
convention). Without --address the port is client_listen from the node's own
config file, so the check always probes the port the node really listens on;
a wildcard listen host (0.0.0.0, ::) is dialled on loopback. It speaks TLS as
the config says ([tls]): it trusts the network CA, expects the node's own
certificate (by department name) and presents it, so require_client_cert
does not lock it out. Kubernetes probes use it because native gRPC probes
cannot speak TLS.

The node reports SERVING for "" (the whole server) once it has opened its
chains and started gRPC, and NOT_SERVING while it shuts down.
"""
from __future__ import annotations

import argparse
import sys

DEFAULT_CONFIG = "/etc/govchain/node.toml"
_WILDCARD = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}


def target_address(config_path: str) -> str:
    """host:port to dial for the node configured in config_path."""
    from node.core.config import load_config  # the installed govchain package

    listen = load_config(config_path).client_listen
    host = _WILDCARD.get(listen.host, listen.host)
    return f"[{host}]:{listen.port}" if ":" in host else f"{host}:{listen.port}"


def channel(config_path: str | None, address: str):
    """A channel as the node's [tls] says: plaintext only for insecure = true (or without a config)."""
    import grpc

    from node.core.config import load_config

    config = load_config(config_path) if config_path else None
    if config is None or config.tls.insecure:
        return grpc.insecure_channel(address)
    from node.net.tls import Material

    tls = Material.load(config.tls.ca, config.tls.cert, config.tls.key)
    return grpc.secure_channel(address, tls.channel_credentials(),
                               options=[("grpc.ssl_target_name_override", config.department)])


def check(address: str, service: str = "", timeout_s: float = 3.0, config_path: str | None = None
          ) -> tuple[bool, str]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with channel(config_path, address) as channel_:
            response = health_pb2_grpc.HealthStub(channel_).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    except grpc.RpcError as exc:
        return False, f"{address}: {exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, f"{address}: {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help=f"node.toml (default {DEFAULT_CONFIG} unless --address is given)")
    parser.add_argument("--address", help="HOST:PORT to check instead of client_listen from --config "
                                          "(plaintext unless --config is given too)")
    parser.add_argument("--service", default="", help='health service name (default "": the whole node)')
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    args = parser.parse_args(argv)
    config = args.config or (None if args.address else DEFAULT_CONFIG)
    try:
        address = args.address or target_address(config)
        ok, detail = check(address, args.service, args.timeout, config)
    except Exception as exc:  # ConfigError, TLS files, import errors: unhealthy, say why
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print(("healthy: " if ok else "unhealthy: ") + detail, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
