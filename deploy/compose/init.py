#!/usr/bin/env python3
"""Create the secrets, TLS material and genesis files for a four-department network.

    python deploy/compose/init.py                       # for compose.yaml (this directory)
    python deploy/compose/init.py --platform kubernetes # for deploy/kubernetes/config/

Layout of DIR (committed: <department>/node.toml; created here: the rest)::

    <department>/node.toml   the node config (read: department, peer port, chains)
    <department>/node.key    Ed25519 private key, mode 0600 (never overwritten)
    <department>/tls.crt     its TLS certificate, bound to node.key (`govchain tls cert`)
    <department>/tls.key     its TLS key, mode 0600
    <department>/ca.crt      a copy of the network CA certificate
    tls/ca.crt, tls/ca.key   the network CA (keep ca.key offline once the certificates exist)
    tls/client.crt, .key     a client certificate for operators' tools
    genesis/<chain>.json     one genesis per chain, sealed: signed by every department
    ceremony/<department>/   officer.key (governance, 0600), app.key (its other roles, 0600),
                             <department>.department.json, <department>.signatures.json

This does what `govchain keys generate --out <department>/node.key` per
department followed by the founding ceremony would do (README, "Founding a
network"; node/tools/ceremony.py): `govchain genesis department` per
department, `genesis assemble`, `genesis sign` per department, `genesis
seal`. The officer keys sign the genesis and never reach a node (no volume
mounts ceremony/). Each validator's address is where the other nodes dial it:

    compose     <department>:<peer port>                  (compose service name)
    kubernetes  <department>-0.<department>-peer:<peer port>  (StatefulSet pod
                behind the headless Service <department>-peer)

Each certificate names the department, the host names it is reached at
(PLATFORMS below, plus localhost and 127.0.0.1 for published or forwarded
client ports).

Re-running is safe: existing keys and certificates are reused, and an existing genesis file is
kept (and signed again, to the same bytes) when it is the same genesis and
refused when it differs (a genesis is the identity of a chain: changing it means a new chain, so delete the old file and
the nodes' data volumes deliberately). Needs the govchain package (run it
with the project's venv).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parent
# The departments; `genesis assemble` orders the validators by id (the replica order).
DEPARTMENTS = ("housing-registry", "power-company", "public-security", "market-regulation")
PLATFORMS = {
    "compose": (HERE, "{department}:{port}"),
    "kubernetes": (DEPLOY / "kubernetes" / "config", "{department}-0.{department}-peer:{port}"),
}
CLIENT_HOSTS = {  # names clients reach a node's client port by, besides localhost
    "compose": (),
    "kubernetes": ("{department}", "{department}.govchain.svc"),
}


class InitError(Exception):
    pass


def peer_address(platform: str, department: str, port: int) -> str:
    return PLATFORMS[platform][1].format(department=department, port=port)


def init(directory: Path, platform: str, departments: tuple[str, ...] = DEPARTMENTS,
         log=print) -> dict[str, str]:
    """Create keys and genesis files under `directory`; returns {department: public key hex}."""
    from node.core.config import ConfigError, load_config
    from node.core.keys import KeyFileError, generate_key_file, load_signing_key, public_key_hex

    directory = Path(directory)
    configs = {}
    for department in departments:
        try:
            config = load_config(directory / department / "node.toml")
        except ConfigError as exc:
            raise InitError(str(exc)) from None
        if config.department != department:
            raise InitError(f"{config.path}: department is {config.department!r}, expected {department!r} "
                            f"(the directory name)")
        configs[department] = config

    chains = [chain.id for chain in configs[departments[0]].chains]
    for department, config in configs.items():
        if [chain.id for chain in config.chains] != chains:
            raise InitError(f"{config.path}: chains {[c.id for c in config.chains]} differ from "
                            f"{departments[0]}'s {chains}; every node must list the same chains")

    keys: dict[str, str] = {}
    signing_keys = {}
    for department in departments:
        key_path = directory / department / "node.key"
        try:
            if key_path.exists():
                key = load_signing_key(key_path)
                log(f"{key_path}: kept existing key")
            else:
                key = generate_key_file(key_path)
                log(f"{key_path}: new key (mode 0600)")
        except KeyFileError as exc:
            raise InitError(str(exc)) from None
        keys[department] = public_key_hex(key)
        signing_keys[department] = key
    tls_material(directory, platform, signing_keys, configs, log)
    found(directory, platform, departments, configs, chains, log)
    return keys


def found(directory: Path, platform: str, departments: tuple[str, ...], configs: dict, chains: list[str],
          log) -> None:
    """The founding ceremony, every department's part played here: department files, assemble, sign, seal."""
    from node.core.genesis import GenesisError
    from node.tools import ceremony
    from node.tools.localnet import department_file, sign_and_seal

    homes = {d: directory / "ceremony" / d for d in departments}
    try:
        files = [department_file(d, configs[d].display_name, homes[d], directory / d / "node.key",
                                 peer_address(platform, d, configs[d].peer_listen.port), directory / d / "tls.crt")
                 for d in departments]
        geneses, warnings = ceremony.assemble([ceremony.read_department(f) for f in files], chains)
        for note in [*ceremony.write_assembled(geneses, directory / "genesis"), *warnings]:
            log(note)
        for chain, genesis in sign_and_seal(directory / "genesis", homes).items():
            log(f"genesis/{chain}.json: sealed by {len(genesis.signatures)} departments "
                f"(hash {genesis.hash_hex[:16]}...)")
    except GenesisError as exc:
        raise InitError(str(exc)) from None


def tls_material(directory: Path, platform: str, signing_keys: dict, configs: dict, log) -> None:
    """The network CA, a client certificate for the tools, and one certificate per department."""
    import shutil

    from node.net.tls import bound_key, generate_ca, issue_cert

    ca_dir = directory / "tls"
    if not (ca_dir / "ca.crt").exists():
        generate_ca(ca_dir)
        issue_cert(ca_dir, ca_dir / "client", "operator")
        log(f"{ca_dir}: new network CA and operator client certificate")
    for department, key in signing_keys.items():
        out = directory / department / "tls"
        crt = out.with_name("tls.crt")
        if crt.exists():
            if bound_key(crt.read_bytes()) != bytes(key.verify_key):
                raise InitError(f"{crt} is not bound to {department}'s node.key; delete {crt} and "
                                f"{out.with_name('tls.key')} to issue a new one")
            log(f"{crt}: kept existing certificate")
        else:
            peer_host = peer_address(platform, department, configs[department].peer_listen.port).rpartition(":")[0]
            hosts = [peer_host, *(h.format(department=department) for h in CLIENT_HOSTS[platform]),
                     "localhost", "127.0.0.1"]
            issue_cert(ca_dir, out, department, hosts, key)
            log(f"{crt}: new certificate for {', '.join(dict.fromkeys([department, *hosts]))}")
        shutil.copyfile(ca_dir / "ca.crt", directory / department / "ca.crt")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create node keys and genesis files for compose or Kubernetes.")
    parser.add_argument("--platform", choices=sorted(PLATFORMS), default="compose",
                        help="how nodes address each other (default: compose)")
    parser.add_argument("--dir", type=Path,
                        help="directory with <department>/node.toml (default: this directory for compose, "
                             "deploy/kubernetes/config for kubernetes)")
    args = parser.parse_args(argv)
    directory = args.dir or PLATFORMS[args.platform][0]
    try:
        keys = init(directory, args.platform)
    except InitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for department, public_key in keys.items():
        print(f"{department:<18} {public_key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
