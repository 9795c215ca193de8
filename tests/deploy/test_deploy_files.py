"""deploy/ must carry configuration the daemon accepts, and agree with itself.

Every file under deploy/ is parsed; every node.toml goes through
node.core.config.parse_config; ports, paths and service names in compose.yaml,
the Kubernetes manifests, the systemd unit and the Dockerfile are checked
against the node.toml they run. deploy/compose/init.py is run into a temp
directory and its genesis files are loaded with node.core.genesis.load_genesis.
A failure names the file and what to change.

Needs PyYAML (pip install pyyaml).
"""
from __future__ import annotations

import configparser
import importlib.util
import json
import os
import posixpath
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml

from node.core.config import NodeConfig, parse_config
from node.core.genesis import load_genesis
from node.core.keys import load_signing_key, public_key_hex

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
K8S_DIR = DEPLOY / "kubernetes"
DEPARTMENTS = ("housing-registry", "power-company", "public-security", "market-regulation")
CHAINS = ("catalog", "item", "authn", "authz", "cert", "demo")
NODE_COMMAND = ["govchain", "node", "run", "--config"]
IMAGE_CONFIG = "/etc/govchain/node.toml"
NODE_UID = 10001


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def load_toml(path: Path) -> dict:
    with open(path, "rb") as file:
        return tomllib.load(file)


def node_config(path: Path, base_dir: Path | PurePosixPath | None = None) -> NodeConfig:
    """parse_config as load_config would, optionally as if the file lived in base_dir."""
    return parse_config(load_toml(path), source=rel(path), base_dir=Path(base_dir or path.parent))


def norm(path: Path | PurePosixPath | str) -> str:
    """A container/host path with ".." resolved lexically (the file need not exist)."""
    return posixpath.normpath(str(path))


def under(path: Path | str, directory: str) -> bool:
    return PurePosixPath(norm(path)).is_relative_to(PurePosixPath(directory))


def init_module():
    spec = importlib.util.spec_from_file_location("deploy_compose_init", COMPOSE_DIR / "init.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def healthcheck_module():
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", DEPLOY / "docker" / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- every file parses

def deploy_files(*suffixes: str) -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.name.endswith(suffixes))


@pytest.mark.parametrize("path", deploy_files(".yaml", ".yml"), ids=rel)
def test_yaml_parses(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{rel(path)}: no YAML documents"


@pytest.mark.parametrize("path", deploy_files(".toml"), ids=rel)
def test_every_node_toml_is_accepted_by_the_daemon(path):
    # parse_config raises ConfigError naming the key and the fix; files need not exist.
    config = node_config(path)
    assert config.department in DEPARTMENTS, f"{rel(path)}: unexpected department {config.department!r}"
    assert [c.id for c in config.chains] == list(CHAINS), \
        f"{rel(path)}: chains must be {', '.join(CHAINS)} (got {[c.id for c in config.chains]})"


def test_json_parses():
    # None are committed today (genesis files are made by init.py); any that appear must parse.
    for path in deploy_files(".json"):
        json.loads(path.read_text())


def test_no_private_keys_committed():
    tracked = subprocess.run(["git", "ls-files", "--", ":(glob)deploy/**/*.key"], cwd=REPO,
                             capture_output=True, text=True).stdout
    assert not tracked.strip(), f"private keys are tracked by git: {tracked.split()}; git rm --cached them"
    for ignore in (COMPOSE_DIR / ".gitignore", K8S_DIR / "config" / ".gitignore"):
        assert "*/node.key" in ignore.read_text().split(), f"{rel(ignore)}: must ignore */node.key"


# --------------------------------------------------------------------------- systemd

def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive
    parser.read(DEPLOY / "systemd" / "govchain-node.service")
    return parser


def test_systemd_execstart_runs_the_example_config():
    service = unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/govchain/.venv/bin/govchain" and argv[1:4] == NODE_COMMAND[1:], \
        f"deploy/systemd/govchain-node.service: ExecStart must be " \
        f"/opt/govchain/.venv/bin/govchain node run --config <path> (got {argv})"
    assert argv[4:] == ["/etc/govchain/node.toml"], \
        "deploy/systemd/govchain-node.service: ExecStart --config must be /etc/govchain/node.toml, " \
        "where README.md installs deploy/systemd/node.toml"
    config = node_config(DEPLOY / "systemd" / "node.toml", base_dir=PurePosixPath("/etc/govchain"))
    assert under(config.key_file, "/etc/govchain"), "deploy/systemd/node.toml: key_file belongs in /etc/govchain"
    assert all(under(c.genesis, "/etc/govchain/genesis") for c in config.chains), \
        "deploy/systemd/node.toml: genesis files belong in /etc/govchain/genesis/"
    # ProtectSystem=strict: only ReadWritePaths/StateDirectory are writable.
    assert service["StateDirectory"] == "govchain" and service["ReadWritePaths"] == "/var/lib/govchain"
    assert under(config.data_dir, "/var/lib/govchain"), \
        "deploy/systemd/node.toml: data_dir must be under /var/lib/govchain (the only writable path)"


def test_systemd_hardening():
    service = unit()["Service"]
    expected = {
        "User": "govchain", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "", "LockPersonality": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "Restart": "on-failure", "KillSignal": "SIGTERM",
        "MemoryDenyWriteExecute": "yes",  # see test_node_runs_under_memory_deny_write_execute
    }
    for key, value in expected.items():
        assert service.get(key) == value, \
            f"deploy/systemd/govchain-node.service: set {key}={value} (got {service.get(key)!r})"
    for key in ("RestartSec", "TimeoutStopSec", "LimitNOFILE", "SystemCallFilter"):
        assert service.get(key), f"deploy/systemd/govchain-node.service: {key}= is missing"
    text = (DEPLOY / "systemd" / "govchain-node.service").read_text()
    assert "SystemCallFilter=@system-service" in text


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify():
    result = subprocess.run(["systemd-analyze", "verify", str(DEPLOY / "systemd" / "govchain-node.service")],
                            capture_output=True, text=True)
    # The venv does not exist on the test machine; any other complaint is a real problem.
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "/opt/govchain/.venv/bin/govchain" not in line]
    assert not problems, "deploy/systemd/govchain-node.service: systemd-analyze verify:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- Dockerfile

def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """[(INSTRUCTION, arguments)] per stage; comments dropped, continuations joined."""
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    logical, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            logical.append(current.strip())
        current = ""
    stages: list[list[tuple[str, str]]] = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), args.strip()))
    return stages


def test_dockerfile_runs_the_node_as_non_root_on_python_311_slim():
    final = dockerfile_stages()[-1]
    where = "deploy/docker/Dockerfile (final stage)"
    get = lambda name: [args for instr, args in final if instr == name]  # noqa: E731
    assert get("FROM")[0].split()[0] == "python:3.11-slim", f"{where}: FROM python:3.11-slim"
    users = get("USER")
    assert users, f"{where}: add USER 10001:10001 (non-root)"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"{where}: USER must not be root (got {users[-1]})"
    assert user.isdigit(), f"{where}: use a numeric USER so Kubernetes runAsNonRoot can verify it"
    command = json.loads(get("ENTRYPOINT")[-1]) + json.loads((get("CMD") or ["[]"])[-1])
    assert command == NODE_COMMAND + [IMAGE_CONFIG], \
        f"{where}: ENTRYPOINT + CMD must run {' '.join(NODE_COMMAND)} {IMAGE_CONFIG} (got {command})"
    assert "/var/lib/govchain" in json.loads(get("VOLUME")[-1]), f"{where}: VOLUME [\"/var/lib/govchain\"]"
    exposed = {int(p.split("/")[0]) for args in get("EXPOSE") for p in args.split()}
    assert {7001, 7101} <= exposed, f"{where}: EXPOSE 7001 7101 (peer, client) (got {sorted(exposed)})"
    health = get("HEALTHCHECK")[-1]
    check = json.loads(health[health.index("CMD") + 3:].strip())
    assert check[1].endswith("healthcheck.py") and check[check.index("--config") + 1] == IMAGE_CONFIG, \
        f"{where}: HEALTHCHECK must run healthcheck.py --config {IMAGE_CONFIG} (got {check})"
    assert get("STOPSIGNAL") == ["SIGTERM"]


def test_dockerfile_copies_existing_sources():
    for stage in dockerfile_stages():
        for instr, args in stage:
            if instr != "COPY" or args.startswith("--from"):
                continue
            *sources, _dest = args.split()
            for source in sources:
                if "[" in source:  # optional glob such as README.m[d]
                    continue
                assert (REPO / source).exists(), \
                    f"deploy/docker/Dockerfile: COPY {source}: not in the repository (the build context)"


def test_healthcheck_targets_client_listen():
    module = healthcheck_module()  # imports grpc_health.v1 lazily; check it is installed too
    import grpc_health.v1.health_pb2  # noqa: F401
    for department in DEPARTMENTS:
        path = COMPOSE_DIR / department / "node.toml"
        port = node_config(path).client_listen.port
        assert module.target_address(str(path)) == f"127.0.0.1:{port}", \
            f"deploy/docker/healthcheck.py: must dial the client_listen port {port} of {rel(path)}"
    assert module.main(["--address", "127.0.0.1:1", "--timeout", "0.5"]) == 1


# --------------------------------------------------------------------------- compose

def compose() -> dict:
    return yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())


def mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """container path -> (source, read_only) for short-syntax volumes."""
    out = {}
    for entry in service.get("volumes", []):
        source, target, *mode = entry.split(":")
        out[target] = (source, "ro" in mode)
    return out


@pytest.mark.parametrize("department", DEPARTMENTS)
def test_compose_node_matches_its_config(department):
    doc = compose()
    services, where = doc["services"], f"deploy/compose/compose.yaml services.{department}"
    assert department in services, f"deploy/compose/compose.yaml: add a service named {department}"
    service = services[department]
    config_dir = f"/etc/govchain/{department}"
    assert service["command"] == ["--config", f"{config_dir}/node.toml"], \
        f"{where}: command must be [\"--config\", \"{config_dir}/node.toml\"]"
    # The config as the node sees it inside the container.
    config = node_config(COMPOSE_DIR / department / "node.toml", base_dir=PurePosixPath(config_dir))
    assert config.department == department
    m = mounts(service)
    assert m.get(config_dir) == (f"{department}-etc", True), \
        f"{where}: mount the {department}-etc volume (filled by config-init) read-only at {config_dir}"
    assert m.get("/etc/govchain/genesis") == ("./genesis", True), \
        f"{where}: mount ./genesis read-only at /etc/govchain/genesis"
    assert norm(config.key_file) == f"{config_dir}/node.key", \
        f"deploy/compose/{department}/node.toml: key_file must be ./node.key (config-init puts it there)"
    for chain in config.chains:
        assert norm(chain.genesis) == f"/etc/govchain/genesis/{chain.id}.json", \
            f"deploy/compose/{department}/node.toml: genesis for {chain.id} must be ../genesis/{chain.id}.json"
    data_mounts = [t for t, (s, ro) in m.items() if s == f"{department}-data" and not ro]
    assert data_mounts and under(config.data_dir, data_mounts[0]), \
        f"{where}: data_dir {config.data_dir} must be inside the named volume {department}-data"
    assert f"{department}-data" in doc["volumes"], f"deploy/compose/compose.yaml: declare volume {department}-data"
    # Ports: clients published on the client_listen port, peers exposed on the peer port.
    published = [p.split(":") for p in service.get("ports", [])]
    assert [int(p[-1]) for p in published] == [config.client_listen.port], \
        f"{where}: ports must publish the client_listen port {config.client_listen.port} " \
        f"(got {service.get('ports')})"
    assert all(p[0] == "127.0.0.1" for p in published), f"{where}: publish client ports on 127.0.0.1 only"
    metrics_port = [config.metrics.listen.port] if config.metrics else []
    assert [int(p) for p in service.get("expose", [])] == [config.peer_listen.port, *metrics_port], \
        f"{where}: expose must list the peer_listen port {config.peer_listen.port} and the [metrics] port"
    check = service["healthcheck"]["test"]
    assert check[check.index("--config") + 1] == f"{config_dir}/node.toml", \
        f"{where}: healthcheck must use --config {config_dir}/node.toml so it probes this node's client port"
    assert config.mqtt is not None and config.mqtt.host in services, \
        f"deploy/compose/{department}/node.toml: [mqtt] host must be a compose service (mosquitto)"
    assert doc["services"]["mosquitto"]["image"].startswith("eclipse-mosquitto")
    for key in ("read_only", "cap_drop", "security_opt"):
        assert key in service, f"{where}: missing hardening key {key}"


def test_compose_config_init_installs_keys_0400_for_the_node_user():
    service = compose()["services"]["config-init"]
    script = service["command"][0]
    for key in ("node.key", "tls.key"):
        key_line = next(line for line in script.splitlines() if f"{key} /etc/govchain" in line)
        assert f"-o {NODE_UID} -g {NODE_UID} -m 0400" in key_line, \
            f"deploy/compose/compose.yaml config-init: install {key} with -o 10001 -g 10001 -m 0400 " \
            "(the node refuses group/world-readable keys)"
    certs = next(line for line in script.splitlines() if "tls.crt" in line and "install" in line)
    assert "ca.crt" in certs and "-m 0644" in certs, "config-init: install tls.crt and ca.crt (0644)"
    for department in DEPARTMENTS:
        assert department in script.split("\n")[0], f"config-init: loop must include {department}"
        assert mounts(service).get(f"/etc/govchain/{department}") == (f"{department}-etc", False)
    subprocess.run(["sh", "-n", "-c", script.replace("$$", "$")], check=True)


def copy_configs(source: Path, target: Path) -> None:
    for department in DEPARTMENTS:
        (target / department).mkdir(parents=True)
        shutil.copy(source / department / "node.toml", target / department / "node.toml")


def check_generated(directory: Path, keys: dict[str, str], hosts: dict[str, list[str]]) -> dict[str, object]:
    """Genesis files name each node.key; each tls.crt is bound to it, names `hosts`, and
    chains to the network CA copied next to it."""
    from cryptography import x509

    from node.net.tls import bound_key

    ca = (directory / "tls" / "ca.crt").read_bytes()
    for department in DEPARTMENTS:
        crt = (directory / department / "tls.crt").read_bytes()
        assert bound_key(crt).hex() == keys[department], f"init.py: {department}/tls.crt is not bound to node.key"
        assert (directory / department / "ca.crt").read_bytes() == ca
        assert os.stat(directory / department / "tls.key").st_mode & 0o077 == 0
        cert = x509.load_pem_x509_certificate(crt)
        assert cert.issuer == x509.load_pem_x509_certificate(ca).subject
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(hosts[department]) <= {str(n.value) for n in names}, \
            f"init.py: {department}/tls.crt must name {hosts[department]}"
    genesis = {}
    for chain in CHAINS:
        g = load_genesis(directory / "genesis" / f"{chain}.json")
        assert g.chain_id == chain
        assert [v.department for v in g.validators] == sorted(DEPARTMENTS)  # `genesis assemble` sorts by id
        # load_genesis checked that every department signed it, with the officer key init.py made for it.
        assert {f.department: f.key for f in g.founders} == {
            d: public_key_hex(load_signing_key(directory / "ceremony" / d / "officer.key")) for d in DEPARTMENTS}
        for v in g.validators:
            key = load_signing_key(directory / v.department / "node.key")  # also checks mode 0600
            assert v.public_key == public_key_hex(key) == keys[v.department], \
                f"init.py: genesis {chain} key for {v.department} does not match its node.key"
        genesis[chain] = g
    return genesis


def test_compose_init_creates_matching_keys_and_genesis(tmp_path):
    copy_configs(COMPOSE_DIR, tmp_path)
    result = subprocess.run([sys.executable, str(COMPOSE_DIR / "init.py"), "--dir", str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    keys = dict(line.split() for line in result.stdout.splitlines() if line.split()[0] in DEPARTMENTS)
    genesis = check_generated(tmp_path, keys, {d: [d, "localhost", "127.0.0.1"] for d in DEPARTMENTS})
    services = compose()["services"]
    for v in genesis["catalog"].validators:
        host, port = v.address.rsplit(":", 1)
        assert host in services, f"genesis address {v.address}: {host} is not a compose service"
        peer = node_config(COMPOSE_DIR / host / "node.toml").peer_listen.port
        assert int(port) == peer, f"genesis address {v.address}: {host} listens for peers on {peer}"
    # Re-running keeps keys and genesis; a changed genesis is refused, not overwritten.
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert subprocess.run([sys.executable, str(COMPOSE_DIR / "init.py"), "--dir", str(tmp_path)],
                          capture_output=True, cwd=REPO).returncode == 0
    assert before == {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    (tmp_path / "genesis" / "demo.json").write_text(
        (tmp_path / "genesis" / "demo.json").read_text().replace('"batch_txs_max": 1000', '"batch_txs_max": 999'))
    rerun = subprocess.run([sys.executable, str(COMPOSE_DIR / "init.py"), "--dir", str(tmp_path)],
                           capture_output=True, text=True, cwd=REPO)
    assert rerun.returncode == 2 and "demo.json exists and differs" in rerun.stderr


# --------------------------------------------------------------------------- Kubernetes

def k8s_objects() -> list[dict]:
    objects = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc["_file"] = f"deploy/kubernetes/{path.name}"
                objects.append(doc)
    return objects


def kustomization() -> dict:
    return yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())


def generator_files(kind: str, name: str) -> dict[str, str]:
    """key -> file of a configMapGenerator/secretGenerator entry."""
    entry = next((g for g in kustomization().get(kind, []) if g["name"] == name), None)
    assert entry, f"deploy/kubernetes/kustomization.yaml: no {kind} named {name}"
    out = {}
    for item in entry["files"]:
        key, _, file = item.rpartition("=")
        out[key or PurePosixPath(file).name] = file
    return out


def test_kustomization_lists_every_manifest():
    listed = set(kustomization()["resources"])
    present = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present, f"deploy/kubernetes/kustomization.yaml resources {sorted(listed)} " \
                              f"must list exactly {sorted(present)}"


@pytest.mark.parametrize("department", DEPARTMENTS)
def test_k8s_statefulset_matches_its_config(department):
    objects = k8s_objects()
    by_kind = lambda kind: {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}  # noqa: E731
    sts = by_kind("StatefulSet").get(department)
    assert sts, f"deploy/kubernetes/{department}.yaml: add a StatefulSet named {department}"
    where = sts["_file"]
    pod = sts["spec"]["template"]["spec"]
    assert sts["spec"]["replicas"] == 1, f"{where}: replicas must be 1 (one validator key per department)"
    (node,) = [c for c in pod["containers"] if c["name"] == "node"]
    config_file = generator_files("configMapGenerator", f"{department}-config")["node.toml"]
    config = node_config(K8S_DIR / config_file, base_dir=PurePosixPath("/etc/govchain"))
    assert config.department == department

    assert node["image"] == "govchain-node" and \
        any(i["name"] == "govchain-node" for i in kustomization().get("images", [])), \
        f"{where}: image govchain-node (the tag is set in kustomization.yaml images)"
    assert node.get("args") == ["--config", IMAGE_CONFIG] and "command" not in node, \
        f"{where}: keep the image entrypoint and pass args [\"--config\", \"{IMAGE_CONFIG}\"]"

    # Ports: container, Services and probes all follow node.toml.
    ports = {p["name"]: p["containerPort"] for p in node["ports"]}
    assert config.metrics is not None, f"{config_file}: add [metrics] listen (scraped through the pod annotations)"
    assert ports == {"peer": config.peer_listen.port, "client": config.client_listen.port,
                     "metrics": config.metrics.listen.port}, \
        f"{where}: containerPorts must be peer {config.peer_listen.port}, client {config.client_listen.port} " \
        f"and metrics {config.metrics.listen.port} as in {config_file} (got {ports})"
    annotations = sts["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/scrape") == "true" and \
        annotations.get("prometheus.io/port") == str(config.metrics.listen.port), \
        f"{where}: pod annotations prometheus.io/scrape \"true\" and prometheus.io/port \"{config.metrics.listen.port}\""
    # Native grpc probes cannot speak TLS: healthcheck.py reads client_listen and [tls] from node.toml.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert node[probe].get("exec", {}).get("command") == \
            ["python", "/opt/govchain/healthcheck.py", "--config", IMAGE_CONFIG], \
            f"{where}: {probe} must exec python /opt/govchain/healthcheck.py --config {IMAGE_CONFIG}"
    services = by_kind("Service")
    headless = services.get(sts["spec"]["serviceName"])
    assert headless and headless["spec"].get("clusterIP") == "None", \
        f"{where}: serviceName must name a headless Service (clusterIP: None)"
    assert [p["port"] for p in headless["spec"]["ports"]] == [config.peer_listen.port], \
        f"{headless['_file']}: Service {headless['metadata']['name']} port must be {config.peer_listen.port}"
    client = services.get(department)
    assert client and client["spec"].get("type", "ClusterIP") == "ClusterIP", \
        f"{where}: add a ClusterIP Service named {department} for clients"
    assert [p["port"] for p in client["spec"]["ports"]] == [config.client_listen.port], \
        f"{client['_file']}: Service {department} port must be {config.client_listen.port}"
    for service in (headless, client):
        assert service["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items(), \
            f"{service['_file']}: Service {service['metadata']['name']} selector does not match the pod labels"
        for p in service["spec"]["ports"]:
            assert p["targetPort"] in ports, f"{service['_file']}: targetPort {p['targetPort']} is not a port name"

    # Volumes: which path of the config lands on which volume.
    volumes = {v["name"]: v for v in pod["volumes"]}
    node_mounts = {m["mountPath"]: m for m in node["volumeMounts"]}

    def volume_at(path) -> tuple[str, dict]:
        best = max((m for m in node_mounts if under(path, m)), key=len, default=None)
        assert best, f"{where}: nothing is mounted at {path} (named in {config_file})"
        return best, node_mounts[best]

    _, config_mount = volume_at(IMAGE_CONFIG)
    assert volumes[config_mount["name"]]["configMap"]["name"] == f"{department}-config"
    for chain in config.chains:
        mount_path, mount = volume_at(chain.genesis)
        source = volumes[mount["name"]].get("configMap", {}).get("name")
        key = str(PurePosixPath(norm(chain.genesis)).relative_to(mount_path))
        assert source and key in generator_files("configMapGenerator", source), \
            f"{where}: genesis {chain.genesis} must come from a ConfigMap that has the key {key}"
    data_path, data_mount = volume_at(config.data_dir)
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    assert data_mount["name"] in claims and data_path == "/var/lib/govchain", \
        f"{where}: data_dir {config.data_dir} must be on a volumeClaimTemplate mounted at /var/lib/govchain"

    # Key: Secret 0400 -> (fsGroup adds g+r, kubernetes#57923) -> init container copy 0400.
    secret_volumes = [v for v in volumes.values() if "secret" in v]
    assert [v["secret"]["secretName"] for v in secret_volumes] == [f"{department}-key"]
    for v in secret_volumes:
        assert v["secret"].get("defaultMode") in (0o400, 0o600), \
            f"{where}: volume {v['name']}: set defaultMode: 0400 (the node refuses group/world-readable keys)"
    secret_files = generator_files("secretGenerator", f"{department}-key")
    assert {"node.key", "tls.key", "tls.crt", "ca.crt"} <= set(secret_files), \
        f"deploy/kubernetes/kustomization.yaml: secret {department}-key needs node.key, tls.key, tls.crt, ca.crt"
    for cert in (config.tls.ca, config.tls.cert):
        _, cert_mount = volume_at(cert)
        assert cert_mount["name"] in {v["name"] for v in secret_volumes} and \
            cert_mount.get("subPath") == PurePosixPath(cert).name, \
            f"{where}: mount {cert} from the Secret (subPath {PurePosixPath(cert).name})"
    key_mount_path, key_mount = volume_at(config.key_file)
    fs_group = pod.get("securityContext", {}).get("fsGroup")
    if "secret" in volumes[key_mount["name"]]:
        assert fs_group is None, \
            f"{where}: key_file {config.key_file} is read straight from a Secret while fsGroup is set: " \
            f"kubelet makes it 0440 and the node refuses it; copy it with an init container"
    else:
        assert volumes[key_mount["name"]].get("emptyDir", {}).get("medium") == "Memory", \
            f"{where}: the key copy must live in an emptyDir with medium: Memory"
        copiers = [c for c in pod.get("initContainers", [])
                   if any(m["name"] == key_mount["name"] for m in c["volumeMounts"])]
        assert copiers, f"{where}: an init container must put the key into volume {key_mount['name']}"
        command = copiers[0]["command"]
        key_dir = norm(PurePosixPath(config.key_file).parent)
        assert command[:3] == ["install", "-m", "0400"] and norm(command[-1]) == key_dir and \
            [PurePosixPath(c).name for c in command[3:-1]] == ["node.key", "tls.key"] and \
            norm(config.tls.key) == f"{key_dir}/tls.key", \
            f"{where}: init container must run install -m 0400 <secret>/node.key <secret>/tls.key {key_dir}/"
    assert key_mount.get("readOnly"), f"{where}: mount the key volume readOnly in the node container"

    # Security context and lifecycle.
    psc, csc = pod["securityContext"], node["securityContext"]
    assert psc.get("runAsNonRoot") and psc.get("runAsUser") == NODE_UID and fs_group == NODE_UID, \
        f"{where}: pod securityContext needs runAsNonRoot, runAsUser/fsGroup {NODE_UID}"
    for container in [node, *pod.get("initContainers", [])]:
        sc = container["securityContext"]
        assert sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False and \
            sc.get("capabilities", {}).get("drop") == ["ALL"], \
            f"{where}: container {container['name']}: readOnlyRootFilesystem, no privilege escalation, drop ALL"
        assert container["resources"]["requests"] and container["resources"]["limits"], \
            f"{where}: container {container['name']}: set resource requests and limits"
    assert csc is not None
    assert 10 <= pod.get("terminationGracePeriodSeconds", 0) <= 120, \
        f"{where}: set terminationGracePeriodSeconds (the node needs a few seconds to close LevelDB)"


def test_k8s_genesis_configmap_lists_every_chain():
    files = generator_files("configMapGenerator", "govchain-genesis")
    assert sorted(files) == sorted(f"{c}.json" for c in CHAINS)


@pytest.fixture
def k8s_tree(tmp_path):
    """A copy of deploy/kubernetes with init.py's keys and genesis files."""
    tree = tmp_path / "kubernetes"
    shutil.copytree(K8S_DIR, tree, ignore=shutil.ignore_patterns("node.key", "*.json"))
    keys = init_module().init(tree / "config", "kubernetes", log=lambda *_: None)
    return tree, keys


def test_k8s_init_creates_matching_keys_and_genesis(k8s_tree):
    tree, keys = k8s_tree
    genesis = check_generated(tree / "config", keys, {
        d: [d, f"{d}-0.{d}-peer", f"{d}.govchain.svc", "127.0.0.1"] for d in DEPARTMENTS})
    objects = k8s_objects()
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    sets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "StatefulSet"}
    for v in genesis["demo"].validators:
        host, port = v.address.rsplit(":", 1)
        pod_name, service_name = host.split(".")
        sts = sets[v.department]
        assert pod_name == f"{v.department}-0" and service_name == sts["spec"]["serviceName"], \
            f"genesis address {v.address}: must be <statefulset>-0.<its headless service>"
        assert int(port) == services[service_name]["spec"]["ports"][0]["port"]


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl not installed")
def test_kubectl_kustomize_renders(k8s_tree):
    tree, _ = k8s_tree
    result = subprocess.run(["kubectl", "kustomize", str(tree)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize deploy/kubernetes: {result.stderr}"
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    names = {(d["kind"], d["metadata"]["name"].rsplit("-", 1)[0]) for d in docs}
    assert ("Secret", "housing-registry-key") in names and ("ConfigMap", "govchain-genesis") in names
    assert all(d["metadata"].get("namespace") == "govchain" for d in docs if d["kind"] != "Namespace")


# --------------------------------------------------------------------------- MemoryDenyWriteExecute

def test_node_runs_under_memory_deny_write_execute(tmp_path):
    """The systemd unit sets MemoryDenyWriteExecute=yes. Start a real one-node network under
    an equivalent seccomp filter, pass the Docker health check, commit a transaction."""
    from tests.deploy import seccomp_mdwe

    if not seccomp_mdwe.supported():
        pytest.skip("seccomp emulation is x86_64 Linux only")
    from node.tools.localnet import create_network, status, wait_until

    (spec,) = create_network(tmp_path / "net", nodes=1, chains=("demo",))
    log = open(spec.log, "wb")
    proc = subprocess.Popen(
        [sys.executable, str(Path(seccomp_mdwe.__file__)), sys.executable, "-m", "node", "node", "run",
         "--config", str(spec.config)],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    log.close()
    try:
        healthcheck = healthcheck_module()
        wait_until(lambda: proc.poll() is not None or healthcheck.check(spec.client, timeout_s=1,
                                                                       config_path=str(spec.config))[0], 30,
                   what="node health")
        assert proc.poll() is None, f"node died under MemoryDenyWriteExecute:\n{spec.log.read_text()}"
        assert healthcheck.main(["--config", str(spec.config)]) == 0
        # Signing (PyNaCl), consensus and LevelDB commit, under the filter.
        client_key = tmp_path / "client.key"
        cli = [sys.executable, "-m", "node", "tx", "submit", "--node", spec.client, "--chain", "demo",
               "--key", str(client_key), "--method", "put", "--payload", '{"key": "k", "value": "v"}', "--wait",
               "--ca", str(tmp_path / "net" / "tls" / "ca.crt")]
        subprocess.run([sys.executable, "-m", "node", "keys", "generate", "--out", str(client_key)],
                       check=True, cwd=REPO, capture_output=True)
        result = subprocess.run(cli, cwd=REPO, capture_output=True, text=True, timeout=30)
        assert "committed at height" in result.stdout, result.stdout + result.stderr + spec.log.read_text()
        assert status(spec)["demo"]["height"] >= 1
        assert "MemoryError" not in spec.log.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_seccomp_emulation_really_blocks_write_execute_memory():
    """Guard for the test above: the filter must deny what systemd denies."""
    from tests.deploy import seccomp_mdwe

    if not seccomp_mdwe.supported():
        pytest.skip("seccomp emulation is x86_64 Linux only")
    code = ("import mmap\n"
            "try:\n"
            "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
            "    print('allowed')\n"
            "except OSError:\n"
            "    print('denied')\n")
    result = subprocess.run([sys.executable, str(Path(seccomp_mdwe.__file__)), sys.executable, "-c", code],
                            capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "denied", result.stdout + result.stderr
