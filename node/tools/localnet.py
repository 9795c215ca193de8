"""A local multi-department network on 127.0.0.1: layout and processes.

Used by scripts/cluster, the end-to-end tests and the benchmark, so that all
three start exactly the same thing. Layout under a root directory:

    network.json            manifest: nodes, ports, chains (stable contract)
    genesis/<chain>.json    one genesis per chain, shared by all nodes
    tls/ca.crt, ca.key      the network CA (absent with insecure=True)
    tls/client.crt, .key    a client certificate for the tools (scripts/cluster, govchain, tests)
    <department>/node.key   Ed25519 key (0600)
    <department>/officer.key  its governance key (0600): founds the network, signs the genesis
    <department>/app.key    its application key (0600): the department's other roles (LOCAL_ROLES)
    <department>/<department>.department.json, .signatures.json  its part of the founding ceremony
    <department>/tls.crt    its TLS certificate (127.0.0.1, localhost), bound to node.key
    <department>/tls.key
    <department>/node.toml  node config
    <department>/data/      one LevelDB per chain
    <department>/node.log   stdout and stderr of the daemon
    <department>/node.pid
"""
from __future__ import annotations

import functools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import grpc

from node.net import tls
from node.core.config import MqttConfig, TlsConfig, config_template
from node.core.genesis import read_genesis, sign_genesis, write_genesis, write_json_file
from node.core.keys import generate_key_file, load_signing_key
from node.tools import ceremony

DEPARTMENTS = (
    ("housing-registry", "Housing Registry"),
    ("power-company", "Power Company"),
    ("public-security", "Public Security Bureau"),
    ("market-regulation", "Market Regulation Administration"),
    ("human-resources", "Human Resources and Social Security"),
    ("tax-bureau", "Tax Bureau"),
    ("civil-affairs", "Civil Affairs Bureau"),
    ("education", "Education Commission"),
    ("health-commission", "Health Commission"),
    ("natural-resources", "Natural Resources Bureau"),
    ("culture-tourism", "Culture and Tourism Bureau"),
)
SUBCHAINS = ("catalog", "item", "authn", "authz", "cert")
DEFAULT_CHAINS = (*SUBCHAINS, "demo")
REPO = Path(__file__).resolve().parents[2]  # node/tools/localnet.py -> the repository
LISTEN_PORTS_FROM = 20_000  # local networks listen on free ports from here up to the ephemeral range
DEFAULT_DIR = Path(os.environ.get("GOVCHAIN_CLUSTER_DIR", REPO / ".cluster"))
HOSTS = ("127.0.0.1", "localhost")
# The roles of each local department (others: governance, provider, requester); docs/design.md, "Genesis".
LOCAL_ROLES = {
    "public-security": ("governance", "identity", "provider", "requester"),
    "market-regulation": ("governance", "issuer", "provider", "requester"),
}


@dataclass(frozen=True)
class NodeSpec:
    department: str
    display_name: str
    peer_port: int
    client_port: int
    home: str  # the department's directory
    metrics_port: int = 0  # Prometheus metrics over HTTP (0: off, or a network from before metrics)
    explorer_port: int = 0  # the web explorer over HTTP (0: off, or a network from before it)

    @property
    def metrics(self) -> str:
        """Where Prometheus scrapes this node, or "" when metrics are off."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics" if self.metrics_port else ""

    @property
    def explorer(self) -> str:
        """The explorer's address for a browser, or "" when it is off."""
        return f"http://127.0.0.1:{self.explorer_port}/" if self.explorer_port else ""

    @property
    def client(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer(self) -> str:
        return f"127.0.0.1:{self.peer_port}"

    @property
    def config(self) -> Path:
        return Path(self.home) / "node.toml"

    @property
    def key(self) -> Path:
        return Path(self.home) / "node.key"

    @property
    def data_dir(self) -> Path:
        return Path(self.home) / "data"

    @property
    def log(self) -> Path:
        return Path(self.home) / "node.log"

    @property
    def pid_file(self) -> Path:
        return Path(self.home) / "node.pid"

    @property
    def client_tls(self) -> tls.Material | None:
        """What a client needs to reach this node (None: the network is plaintext)."""
        return client_tls(Path(self.home).parent)


def client_tls(root: Path) -> tls.Material | None:
    """The CA and client certificate the tools use (None: a plaintext network)."""
    ca = Path(root).resolve() / "tls" / "ca.crt"
    try:
        return _client_tls(ca, ca.stat().st_mtime_ns)
    except FileNotFoundError:
        return None


@functools.lru_cache(maxsize=16)
def _client_tls(ca: Path, _mtime_ns: int) -> tls.Material:
    """Cached: one Material, so one credentials object, per network (see tls.Material)."""
    return tls.Material.load(ca, ca.with_name("client.crt"), ca.with_name("client.key"))


def free_ports(count: int) -> list[int]:
    """Ports free now, below the kernel's ephemeral range (all bound at once
    so they differ). A port from that range, which binding port 0 would give,
    can be taken as the source port of an outgoing connection before the node
    that is meant to listen on it starts: the nodes' own dialling made a
    scenario network fail to start that way."""
    low = _ephemeral_ports_start()
    socks: list[socket.socket] = []
    tries = 0
    try:
        while len(socks) < count:
            tries += 1
            if tries > 100 * count:
                raise OSError(f"found {len(socks)} free ports of {count} below {low} in {tries} tries")
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", random.randrange(LISTEN_PORTS_FROM, low)))
            except OSError:
                s.close()
                continue
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ephemeral_ports_start() -> int:
    """The first port the kernel hands out for outgoing connections (Linux; else the IANA 49152, capped so that
    LISTEN_PORTS_FROM leaves room)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 49152
    return max(low, LISTEN_PORTS_FROM + 1000)


def create_network(root: Path, *, nodes: int = 4, chains=DEFAULT_CHAINS, mqtt_port: int | None = None,
                   tick_ms: int = 10, insecure: bool = False, metrics: bool = True, departments=None,
                   **consensus) -> list[NodeSpec]:
    """`departments` (ids from DEPARTMENTS) picks the nodes; else the first `nodes` of DEPARTMENTS."""
    names = dict(DEPARTMENTS)
    if departments is not None:
        unknown = [d for d in departments if d not in names]
        if unknown:
            raise ValueError(f"no local department {unknown[0]!r}; departments: {', '.join(names)}")
        chosen = [(d, names[d]) for d in dict.fromkeys(departments)]
    elif not 1 <= nodes <= len(DEPARTMENTS):
        raise ValueError(f"--nodes must be between 1 and {len(DEPARTMENTS)}")
    else:
        chosen = list(DEPARTMENTS[:nodes])
    nodes = len(chosen)
    root = Path(root).resolve()
    if (root / "network.json").exists():
        raise FileExistsError(f"{root} already holds a network; use it as is or choose another --dir")
    ports = free_ports(4 * nodes)
    # Sorted by id, as `genesis assemble` orders validators: specs[i] is replica i.
    specs = [NodeSpec(dept, name, ports[2 * i], ports[2 * i + 1], str(root / dept),
                      ports[2 * nodes + i] if metrics else 0, ports[3 * nodes + i] if metrics else 0)
             for i, (dept, name) in enumerate(sorted(chosen))]
    if not insecure:
        tls.generate_ca(root / "tls")
        tls.issue_cert(root / "tls", root / "tls" / "client", "cluster-client")
    for spec in specs:
        Path(spec.home).mkdir(parents=True, exist_ok=True)
        key = generate_key_file(spec.key)
        if not insecure:
            tls.issue_cert(root / "tls", Path(spec.home) / "tls", spec.department, HOSTS, node_key=key)
    found_network(root, specs, chains, insecure, **consensus)
    security = TlsConfig(insecure=True) if insecure else TlsConfig(ca=Path("../tls/ca.crt"), cert=Path("tls.crt"),
                                                                    key=Path("tls.key"))
    mqtt = MqttConfig(host="127.0.0.1", port=mqtt_port) if mqtt_port else None
    for spec in specs:
        text = config_template(spec.department, display_name=spec.display_name, key_file="node.key",
                               data_dir="data", peer_listen=spec.peer, client_listen=spec.client, tls=security,
                               chains=[(c, f"../genesis/{c}.json") for c in chains], tick_ms=tick_ms, mqtt=mqtt,
                               metrics_listen=f"127.0.0.1:{spec.metrics_port}" if spec.metrics_port else None,
                               explorer_listen=f"127.0.0.1:{spec.explorer_port}" if spec.explorer_port else None)
        spec.config.write_text(text)
    manifest = {"chains": list(chains), "nodes": [asdict(s) for s in specs]}
    (root / "network.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return specs


def found_network(root: Path, specs: list[NodeSpec], chains, insecure: bool, **consensus) -> None:
    """The founding ceremony (node/tools/ceremony.py), played by every department of the cluster: each writes
    its department file, a coordinator assembles root/genesis/, each signs, the coordinator seals."""
    homes = {s.department: Path(s.home) for s in specs}
    files = [department_file(s.department, s.display_name, Path(s.home), s.key, s.peer,
                             None if insecure else Path(s.home) / "tls.crt") for s in specs]
    geneses, _warnings = ceremony.assemble([ceremony.read_department(f) for f in files], list(chains),
                                           params=consensus)
    ceremony.write_assembled(geneses, root / "genesis")
    sign_and_seal(root / "genesis", homes)


def department_file(department: str, name: str, home: Path, node_key: Path, peer: str,
                    tls_cert: Path | None) -> Path:
    """`genesis department` for one local department: HOME/officer.key (governance) and HOME/app.key (its
    other LOCAL_ROLES), made if absent, and HOME/<department>.department.json."""
    roles = LOCAL_ROLES.get(department, ("governance", "provider", "requester"))
    for key in ("officer.key", "app.key"):
        if not (home / key).exists():
            home.mkdir(parents=True, exist_ok=True)
            generate_key_file(home / key)
    others = ",".join(r for r in roles if r != "governance")
    made = ceremony.make_department(department, name, list(roles),
                                    [f"{home / 'officer.key'}:governance", f"{home / 'app.key'}:{others}"],
                                    node_key=str(node_key), peer_address=peer,
                                    tls_cert=None if tls_cert is None else str(tls_cert))
    path = home / f"{department}.department.json"
    write_json_file(path, made.to_json_obj())
    return path


def sign_and_seal(genesis_dir: Path, homes: dict[str, Path]) -> dict:
    """`genesis sign` by each department (HOME/officer.key, checked against its department file), then
    `genesis seal`. Returns the sealed geneses by chain."""
    signatures = []
    for department, home in homes.items():
        doc, _ = ceremony.sign(genesis_dir, department, load_signing_key(home / "officer.key"),
                               ceremony.read_department(home / f"{department}.department.json"))
        signatures.append((str(home / f"{department}.signatures.json"), doc))
        write_json_file(signatures[-1][0], doc)
    return ceremony.seal(genesis_dir, signatures)


def reseal(specs: list[NodeSpec], path: Path) -> None:
    """Sign a genesis file again with every department's officer key, after a test changed it (a change
    makes a new genesis hash, which the old signatures do not cover)."""
    genesis = read_genesis(path)
    keys = {s.department: load_signing_key(Path(s.home) / "officer.key") for s in specs}
    write_genesis(path, sign_genesis(replace(genesis, signatures=()), keys))


def load_network(root: Path) -> tuple[list[NodeSpec], list[str]]:
    path = Path(root) / "network.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no network at {root}; create one with `scripts/cluster up --dir {root}`") from None
    return [NodeSpec(**n) for n in manifest["nodes"]], manifest["chains"]


# ---- processes -----------------------------------------------------------------

def pid_of(spec: NodeSpec) -> int | None:
    """The pid of the node's daemon if it is running."""
    try:
        pid = int(spec.pid_file.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        return pid
    try:  # a zombie child is not running
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ")[-1].startswith("Z"):
                return None
    except OSError:
        pass
    return pid


def start(spec: NodeSpec, env: dict | None = None) -> int:
    pid = pid_of(spec)
    if pid is not None:
        return pid
    log = open(spec.log, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "node", "node", "run", "--config", str(spec.config)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, start_new_session=True)
    log.close()
    spec.pid_file.write_text(str(proc.pid))
    return proc.pid


def signal_node(spec: NodeSpec, sig: int) -> int | None:
    pid = pid_of(spec)
    if pid is not None:
        os.kill(pid, sig)
    return pid


def stop(spec: NodeSpec, timeout_s: float = 10.0) -> str:
    """SIGTERM, wait, SIGKILL if it hangs. Returns what happened."""
    pid = signal_node(spec, signal.SIGTERM)
    if pid is None:
        return "not running"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _reap(pid):
            return "stopped"
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    _reap(pid, block=True)
    return f"killed after {timeout_s:.0f}s"


def kill(spec: NodeSpec) -> str:
    pid = signal_node(spec, signal.SIGKILL)
    if pid is None:
        return "not running"
    _reap(pid, block=True)
    return "killed"


def _reap(pid: int, block: bool = False) -> bool:
    """True once pid is gone (reaping it if it is our child)."""
    for _ in range(200 if block else 1):
        try:
            done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
            if done:
                return True
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        if not block:
            return False
        time.sleep(0.05)
    return False


def status(spec: NodeSpec, timeout_s: float = 2.0) -> dict | None:
    """The node's Status as a dict, or None when it does not answer."""
    from node.pb import client_pb2

    try:
        r = client_stub(spec).Status(client_pb2.StatusRequest(), timeout=timeout_s)
    except grpc.RpcError:
        return None
    return {c.chain_id: {"height": c.height, "view": c.view, "primary": c.primary, "view_changing": c.view_changing,
                         "peers": len(c.peers_connected), "mempool": c.mempool, "head": c.head_hash.hex(),
                         "dropped": dict(c.dropped)}
            for c in r.chains}


def client_stub(spec: NodeSpec):
    from node.net.client import stub

    return stub(spec.client, spec.client_tls)


def wait_until(predicate, timeout_s: float, interval_s: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)
