#!/usr/bin/env python3
"""Create the secrets and genesis files for a four-department network.

    python deploy/compose/init.py                       # for compose.yaml (this directory)
    python deploy/compose/init.py --platform kubernetes # for deploy/kubernetes/config/

Layout of DIR (committed: <department>/node.toml; created here: the rest)::

    <department>/node.toml   the node config (read: department, peer port, chains)
    <department>/node.key    Ed25519 private key, mode 0600 (never overwritten)
    genesis/<chain>.json     one genesis per chain, validators in DEPARTMENTS order

This does what `govchain keys generate --out <department>/node.key` per
department followed by node.genesis.make_genesis with the printed public keys
would do. Each validator's address is where the other nodes dial it:

    compose     <department>:<peer port>                  (compose service name)
    kubernetes  <department>-0.<department>-peer:<peer port>  (StatefulSet pod
                behind the headless Service <department>-peer)

Re-running is safe: existing keys are reused, and an existing genesis file is
left alone when it is identical and refused when it differs (a genesis is the
identity of a chain: changing it means a new chain, so delete the old file and
the nodes' data volumes deliberately). Needs the govchain package (run it
with the project's venv).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parent
# Replica order = order of validators in every genesis; part of the chain identity.
DEPARTMENTS = ("housing-registry", "power-company", "public-security", "market-regulation")
PLATFORMS = {
    "compose": (HERE, "{department}:{port}"),
    "kubernetes": (DEPLOY / "kubernetes" / "config", "{department}-0.{department}-peer:{port}"),
}


class InitError(Exception):
    pass


def peer_address(platform: str, department: str, port: int) -> str:
    return PLATFORMS[platform][1].format(department=department, port=port)


def init(directory: Path, platform: str, departments: tuple[str, ...] = DEPARTMENTS,
         log=print) -> dict[str, str]:
    """Create keys and genesis files under `directory`; returns {department: public key hex}."""
    from node.config import ConfigError, load_config
    from node.genesis import GenesisError, load_genesis, make_genesis, write_genesis
    from node.keys import KeyFileError, generate_key_file, load_signing_key, public_key_hex

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

    genesis_dir = directory / "genesis"
    genesis_dir.mkdir(parents=True, exist_ok=True)
    validators = [(d, keys[d], peer_address(platform, d, configs[d].peer_listen.port)) for d in departments]
    for chain_id in chains:
        genesis = make_genesis(chain_id, validators)
        path = genesis_dir / f"{chain_id}.json"
        if path.exists():
            try:
                existing = load_genesis(path)
            except GenesisError as exc:
                raise InitError(f"{exc}; delete it to create a new one") from None
            if existing.hash != genesis.hash:
                raise InitError(f"{path} exists and differs from the one these keys and addresses give; "
                                f"a new genesis is a new chain: delete {path} (and the nodes' data) "
                                f"to start over")
            log(f"{path}: unchanged")
            continue
        write_genesis(path, genesis)
        log(f"{path}: written (hash {genesis.hash_hex[:16]}...)")
    return keys


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
