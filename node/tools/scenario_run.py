"""Play seed scenarios (node/tools/scenarios.py) on a local network
(node/tools/localnet.py), step by step, in words a window clerk reads
(docs/design.md, "Scenarios"). Used by `scripts/cluster demo SCENARIO`, the
e2e test and `scripts/bench --cases`.

    net = create(root, scenarios, mqtt_port)   # once: departments, roles, data, config
    start(net)                                 # nodes up, catalog and service items registered
    report = Player(net, print).play(scenario) # raises ScenarioFailed when a step differs

The runner plays the citizens (their app keys, their notice subscriptions)
and the windows: it gets each citizen's subject tag from the identity
service on public-security's node, blinded, with the window certificate
WINDOW_CERT (so a citizen keeps one tag on a network, run after run), and
records the authentication events. Every other decision is made by the
nodes: the competent department's node asks the providers' nodes, evaluates
the rule and pushes the notice; a provider asks the identity service itself
for the tag of a query under a standing agreement ([verify] identity).
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from nacl.signing import SigningKey

from node.core import codec
from node.core.keys import generate_key_file, load_signing_key
from node.core.tx import sign_transaction
from node.identity import oprf
from node.tools import localnet
from node.tools.scenarios import IDENTITY_DEPARTMENT, Scenario, load_many

CHAINS = ("catalog", "item", "authn", "authz", "cert")
MANIFEST = "scenarios.json"
AGREEMENTS = "agreements.json"  # scenario agreement -> its catalog id on this network
NETWORK_FORMAT = 2  # in MANIFEST: 2 = the identity service on public-security's node, [[agreements]]
REMAKE = "`scripts/cluster down --dir {root}`, remove it, and run again (or choose another --dir)"
MIN_NODES = 4  # PBFT tolerates one faulty node from 4 on
WINDOW_CERT = "scenario-window"  # the runner's client certificate at the identity service (ROOT/tls/)
IDENTITY_RATE_PER_MINUTE = 6000  # per window: one call per citizen, and per agreement query (a provider)
WAIT_S = 60.0


class ScenarioFailed(Exception):
    """A step did not turn out as the scenario says."""


@dataclass
class Network:
    root: Path
    specs: list
    scenarios: list[Scenario]

    def spec(self, department: str):
        return next(s for s in self.specs if s.department == department)

    def home(self, department: str) -> Path:
        return Path(self.spec(department).home)

    def key(self, department: str, name: str = "app.key") -> SigningKey:
        return load_signing_key(self.home(department) / name)

    def stub(self, department: str):
        return localnet.client_stub(self.spec(department))

    @property
    def tls(self):
        return localnet.client_tls(self.root)


# ---- setting a network up ---------------------------------------------------------

def departments_for(scenarios: list[Scenario]) -> list[str]:
    wanted = set().union(*(s.departments for s in scenarios))
    for department, _ in localnet.DEPARTMENTS:  # pad to MIN_NODES in the usual order
        if len(wanted) >= MIN_NODES:
            break
        wanted.add(department)
    return sorted(wanted)


def create(root: Path, scenarios: list[Scenario], mqtt_port: int) -> Network:
    """A new network for `scenarios` in `root` (not started)."""
    root = Path(root).resolve()
    specs = localnet.create_network(root, departments=departments_for(scenarios), chains=CHAINS,
                                    mqtt_port=mqtt_port)
    net = Network(root, specs, scenarios)
    _roles(net)
    _identity_service(net)
    for spec in specs:
        with open(spec.config, "a") as f:
            f.write(_config(net, spec.department))
    manifest = {"format": NETWORK_FORMAT, "scenarios": [s.name for s in scenarios], "mqtt_port": mqtt_port}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return net


def open_network(root: Path) -> Network:
    root = Path(root).resolve()
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{root} holds no network made for scenarios ({MANIFEST})") from None
    if manifest.get("format") != NETWORK_FORMAT:
        raise ScenarioFailed(f"{root} was made by an older govchain (scenario networks now run the identity "
                             f"service and agreements): {REMAKE.format(root=root)}")
    specs, _ = localnet.load_network(root)
    return Network(root, specs, load_many(manifest["scenarios"]))


def _edit_genesis(net: Network, chain: str, change) -> None:
    path = net.root / "genesis" / f"{chain}.json"
    genesis = json.loads(path.read_text())
    change(genesis)
    path.write_text(json.dumps(genesis))
    localnet.reseal(net.specs, path)


def _roles(net: Network) -> None:
    """The roles localnet does not give: a window key (window.key) for each competent department, and
    role issuer on the app key of each department that issues certificates in a step."""
    competent = set().union(*(s.competent for s in net.scenarios))
    issuers = set().union(*(s.issuers for s in net.scenarios))
    windows = {d: bytes(generate_key_file(net.home(d) / "window.key").verify_key).hex() for d in sorted(competent)}

    def change(genesis: dict) -> None:
        for dept in genesis["app_state"]["catalog"]["departments"]:
            add = ({"window"} if dept["id"] in windows else set()) | ({"issuer"} if dept["id"] in issuers else set())
            dept["roles"] = sorted(set(dept["roles"]) | add)
            if dept["id"] in issuers:
                app = next(k for k in dept["keys"] if "governance" not in k["roles"])
                app["roles"] = sorted(set(app["roles"]) | {"issuer"})
            if dept["id"] in windows:
                dept["keys"].append({"key": windows[dept["id"]], "roles": ["window"]})

    _edit_genesis(net, "catalog", change)


def _identity_service(net: Network) -> None:
    """public-security's node serves the identity service (docs/design.md, "Subject tags"): its OPRF key,
    client certificates required on its client port (the tools' own certificate among them), and as windows
    the runner and each provider, which checks the tags of queries under a standing agreement."""
    from node.net import tls

    oprf.generate_key_file(net.home(IDENTITY_DEPARTMENT) / "oprf.key")
    tls.issue_cert(net.root / "tls", net.root / "tls" / WINDOW_CERT, WINDOW_CERT)
    windows = [WINDOW_CERT]
    for department in sorted({c.provider for s in net.scenarios for c in s.catalog_items}):
        windows.append(_provider_window(department))
        tls.issue_cert(net.root / "tls", net.home(department) / "tls" / windows[-1], windows[-1])
    config = net.spec(IDENTITY_DEPARTMENT).config
    text = config.read_text()
    if "require_client_cert = false" not in text:
        raise ValueError(f"{config}: the identity service needs TLS with client certificates; "
                         "scenario networks are made with TLS")
    config.write_text(text.replace("require_client_cert = false", "require_client_cert = true")
                      + f'\n[identity]\noprf_key_file = "oprf.key"\nwindows = {_toml(windows)}\n'
                      f"rate_per_minute = {IDENTITY_RATE_PER_MINUTE}\n")


def _provider_window(department: str) -> str:
    return f"{department}-verify"


def _toml(value) -> str:
    return json.dumps(value) if not isinstance(value, dict) else \
        "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"


def _config(net: Network, department: str) -> str:
    """The department's [[sources]], [verify], [cases] and [[offers]] for the scenarios."""
    lines = [""]
    home = net.home(department)
    items = [c for s in net.scenarios for c in s.catalog_items if c.provider == department]
    for item in items:
        data = home / "sources" / f"{item.item_id}.csv"
        data.parent.mkdir(exist_ok=True)
        shutil.copyfile(item.source, data)
        lines += ["[[sources]]", f"item = {_toml(item.item_id)}", 'kind = "csv"', f"path = {_toml(str(data))}",
                  f"key_column = {_toml(item.key_column)}", f"fields = {_toml(item.columns)}", ""]
    if items:
        window = Path("tls") / _provider_window(department)
        lines += ["[verify]", 'key_file = "app.key"', f"identity = {_toml(net.spec(IDENTITY_DEPARTMENT).client)}",
                  f'identity_cert = "{window}.crt"', f'identity_key = "{window}.key"', ""]
    if any(department in s.competent for s in net.scenarios):
        providers = {p: net.spec(p).client for s in net.scenarios for p in s.providers}
        lines += ["[cases]", 'key_file = "app.key"', f"providers = {_toml(dict(sorted(providers.items())))}", ""]
    for offer in (o for s in net.scenarios for o in s.offers if o.department == department):
        lines += ["[[offers]]"] + [f"{k} = {_toml(v)}" for k, v in offer.table.items()] + [""]
    return "\n".join(lines)


# ---- the network's own MQTT broker ----------------------------------------------------

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


def start_broker(root: Path, port: int | None = None) -> int:
    """A Mosquitto of the network's own in ROOT/mqtt (127.0.0.1, persistent sessions kept on disk), started
    unless it runs; its port is kept in ROOT/mqtt/port. Returns the port."""
    import subprocess

    directory = Path(root).resolve() / "mqtt"
    directory.mkdir(parents=True, exist_ok=True)
    if port is None:
        port = int((directory / "port").read_text())
    if broker_pid(root) is not None:
        return port
    binary = os.environ.get("MOSQUITTO") or shutil.which("mosquitto") or next(
        (p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)
    if binary is None:
        raise FileNotFoundError("the scenarios push notices over MQTT and mosquitto is not installed; "
                                "`scripts/dev demo` installs it (Debian: apt-get install mosquitto)")
    (directory / "port").write_text(str(port))
    (directory / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {directory}/\n" + ("user root\n" if os.geteuid() == 0 else "") + "log_dest stderr\n")
    with open(directory / "mosquitto.log", "ab") as log:
        proc = subprocess.Popen([binary, "-c", str(directory / "mosquitto.conf")], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True)
    _broker(root).pid_file.write_text(str(proc.pid))
    import socket

    def accepting() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with code {proc.returncode}; see {directory / 'mosquitto.log'}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    localnet.wait_until(accepting, 10, interval_s=0.05, what=f"mosquitto on 127.0.0.1:{port}")
    return port


def _broker(root: Path) -> localnet.NodeSpec:
    """The broker as localnet's process helpers see a node: its pid in ROOT/mqtt/node.pid."""
    return localnet.NodeSpec("mqtt", "Mosquitto", 0, 0, str(Path(root).resolve() / "mqtt"))


def broker_pid(root: Path) -> int | None:
    return localnet.pid_of(_broker(root))


def stop_broker(root: Path) -> str:
    return localnet.stop(_broker(root))


def is_scenario_network(root: Path) -> bool:
    return (Path(root) / MANIFEST).exists()


def start(net: Network, say=lambda text: None) -> None:
    """Start every node, wait until they see each other, register what the scenarios need (once)."""
    for spec in net.specs:
        localnet.start(spec)
    want = len(net.specs) - 1
    localnet.wait_until(lambda: all((st := localnet.status(s)) and all(c["peers"] >= want for c in st.values())
                                    for s in net.specs), WAIT_S, what="every node connected to every other")
    for scenario in net.scenarios:
        for item in scenario.catalog_items:
            found = _query(net, "catalog", "item", {"item_id": item.item_id})
            if found["found"]:
                _check_registered(net, item, found["item"])
            else:
                commit(net, item.provider, net.key(item.provider), "catalog", "register_item",
                       item.register_payload())
                say(f"{_name(net, item.provider)} lists what it can answer: catalog item {item.item_id} "
                    f"({', '.join(item.fields)})")
        for agreement in scenario.agreements:
            _ensure_agreement(net, agreement, say)
        for service in scenario.service_items:
            if _query(net, "item", "item", {"item_id": service.item_id}) is None:
                commit(net, service.department, net.key(service.department, "officer.key"), "item",
                       "register_item", service.payload)
                say(f"{_name(net, service.department)} publishes service item {service.item_id} with its rule "
                    f"`{service.payload['rule']}`")


def _check_registered(net: Network, item, record: dict) -> None:
    """A catalog item this network registered earlier must still be the scenario's: an edited scenario
    played on an old network would otherwise fail deep inside a provider."""
    wanted = item.register_payload()
    differs = [k for k in ("fields", "answer_modes", "consent_required")
               if (set(record[k]) != set(wanted[k]) if isinstance(wanted[k], list) else record[k] != wanted[k])]
    if record["status"] != "active":
        differs.append("retired")
    if record["department"] != item.provider or differs:
        raise ScenarioFailed(f"catalog item {item.item_id} on this network differs from the scenario's "
                             f"({', '.join(differs) or 'provider'}): {REMAKE.format(root=net.root)}")


def _agreement_key(agreement) -> str:
    return f"{agreement.provider}>{agreement.requester}:{','.join(agreement.items)}"


def agreement_id(net: Network, agreement) -> str:
    """The catalog id of a scenario's agreement on this network (start() made it; kept in ROOT/AGREEMENTS)."""
    return json.loads((net.root / AGREEMENTS).read_text())[_agreement_key(agreement)]


def _ensure_agreement(net: Network, agreement, say) -> None:
    """The provider's officer proposes, the requester's accepts. The id is kept as soon as it is proposed,
    so a start that stopped in between accepts that proposal next time; a revoked one is proposed anew."""
    path = net.root / AGREEMENTS
    known = json.loads(path.read_text()) if path.exists() else {}
    key = _agreement_key(agreement)
    record = _query(net, "catalog", "agreement", {"id": known[key]})["agreement"] if key in known else None
    if record is not None and record["status"] == "active":
        return
    if record is None or record["status"] == "revoked":
        proposed = commit(net, agreement.provider, net.key(agreement.provider, "officer.key"), "catalog",
                          "propose_agreement", {"department": agreement.requester, "items": list(agreement.items)})
        known[key] = json.loads(proposed.output)["agreement"]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=2) + "\n")
        tmp.replace(path)
    agreement_ref = known[key]
    accepted = commit(net, agreement.requester, net.key(agreement.requester, "officer.key"), "catalog",
                      "accept_agreement", {"id": agreement_ref})
    say(f"{_name(net, agreement.provider)} and {_name(net, agreement.requester)} sign a standing agreement: "
        f"{agreement.requester} may ask {', '.join(agreement.items)} without a consent (agreement "
        f"{agreement_ref[:12]}, catalog block {accepted.height})")


def stop(net: Network) -> None:
    for spec in net.specs:
        localnet.stop(spec)


def _name(net: Network, department: str) -> str:
    return dict(localnet.DEPARTMENTS)[department]


def _query(net: Network, chain: str, method: str, args: dict, department: str | None = None):
    from node.pb import client_pb2

    stub = net.stub(department or net.specs[0].department)
    reply = stub.Query(client_pb2.QueryRequest(chain_id=chain, contract=chain, method=method,
                                               args=json.dumps(args).encode()), timeout=10)
    return json.loads(reply.result)


def commit(net: Network, department: str, key: SigningKey, chain: str, method: str, payload: dict):
    """Submit on the department's node, wait for the commit there and for every node to have the block
    (the next step may read it through another chain). Returns the receipt."""
    from node.pb import client_pb2

    tx = sign_transaction(key, chain_id=chain, nonce=time.time_ns(), contract=chain, method=method,
                          payload=json.dumps(payload).encode())
    reply = net.stub(department).Submit(client_pb2.SubmitRequest(tx=codec.tx_to_proto(tx), wait_commit=True),
                                        timeout=WAIT_S)
    receipt = codec.receipt_from_proto(reply.receipt)
    if receipt.status != "OK":
        raise ScenarioFailed(f"the {chain} chain refused {method} from {department}: {receipt.message}")
    localnet.wait_until(lambda: all((localnet.status(s) or {}).get(chain, {}).get("height", 0) >= receipt.height
                                    for s in net.specs), WAIT_S, what=f"block {receipt.height} of {chain} everywhere")
    return receipt


# ---- the citizens' phones ------------------------------------------------------------

class Phones:
    """Each citizen's app: a persistent MQTT session on the tag's topic, from the first authentication
    on (so a notice pushed while the phone is off still arrives), opening every notice."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="phones")
        self._thread.start()
        self._lock = threading.Lock()
        self.received: dict[str, list[tuple[float, object]]] = {}  # tag -> [(monotonic time, OpenedNotice)]
        self._tasks: dict[str, asyncio.Future] = {}

    def subscribe(self, app_key: SigningKey, tag: str) -> None:
        if tag in self._tasks:
            return
        ready = threading.Event()
        self._tasks[tag] = asyncio.run_coroutine_threadsafe(self._listen(app_key, tag, ready), self._loop)
        if not ready.wait(WAIT_S):
            raise ScenarioFailed(f"the phone could not subscribe to its notices at {self.host}:{self.port}")

    async def _listen(self, app_key: SigningKey, tag: str, ready: threading.Event) -> None:
        import aiomqtt

        from node.services.push import NoticeError, client_id_for, notice_topic, open_notice

        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=client_id_for(bytes(app_key.verify_key)),
                                          clean_session=False, timeout=10) as client:
                    await client.subscribe(notice_topic("govchain", tag), qos=1)
                    ready.set()
                    async for message in client.messages:
                        try:
                            opened = open_notice(app_key, tag, bytes(message.payload))
                        except NoticeError:
                            continue
                        with self._lock:
                            got = self.received.setdefault(tag, [])
                            if all(n.digest != opened.digest for _, n in got):
                                got.append((time.monotonic(), opened))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def wait(self, tag: str, accept, timeout: float = WAIT_S):
        """(arrival time, notice) of the first notice on the tag that `accept`s."""
        def found():
            with self._lock:
                return next(((t, n) for t, n in self.received.get(tag, []) if accept(n)), None)
        return localnet.wait_until(found, timeout, interval_s=0.02, what="a notice on the citizen's phone")

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_all(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


# ---- playing ------------------------------------------------------------------------

@dataclass
class Citizen:
    name: str
    id_number: str
    tag: str
    oprf_output: bytes
    app_key: SigningKey
    events: Iterator[int] = field(default_factory=lambda: itertools.count(1))  # next() is atomic: windows share


@dataclass
class Report:
    scenario: str
    lines: list[str] = field(default_factory=list)
    cases: dict[str, dict] = field(default_factory=dict)  # case id in the scenario -> the case on chain
    notices: list[dict] = field(default_factory=list)  # {"person", "notice", "department", "digest"}
    audits: dict[str, list[dict]] = field(default_factory=dict)  # person -> access log entries shown
    latencies: dict[str, float] = field(default_factory=dict)  # case -> seconds from open to notice on the phone


def _identity_stub(net: Network):
    """The identity service on public-security's node, reached with the runner's window certificate."""
    from node.net.client import channel
    from node.net.tls import Material
    from node.pb import identity_pb2_grpc

    cert = net.root / "tls" / f"{WINDOW_CERT}.crt"
    tls = Material.load(net.root / "tls" / "ca.crt", cert, cert.with_suffix(".key"))
    return identity_pb2_grpc.IdentityStub(channel(net.spec(IDENTITY_DEPARTMENT).client, tls))


class Player:
    """Plays scenarios on a started network. `say` prints each step's line; `run` makes the case, event
    and certificate ids of this run unique, so a network plays a scenario again and again. A citizen
    has one tag on a network and one phone per Player: windows serving the same citizen at once share
    a Player (threads, each with its own Report), as the citizen's phone is one."""

    def __init__(self, net: Network, say=print, *, run: str | None = None, mqtt_host: str = "127.0.0.1",
                 mqtt_port: int | None = None) -> None:
        self.net, self.say = net, say
        self.run = run or os.urandom(3).hex()
        self._identity = _identity_stub(net)
        self._citizens_lock = threading.Lock()
        manifest = json.loads((net.root / MANIFEST).read_text())
        self.phones = Phones(mqtt_host, mqtt_port or manifest["mqtt_port"])
        self.citizens: dict[tuple[str, str], Citizen] = {}
        self._t0 = time.monotonic()
        self._last = self._t0

    def close(self) -> None:
        self.phones.close()

    def _line(self, report: Report, text: str) -> None:
        now = time.monotonic()
        line = f"[{now - self._t0:6.2f} s  +{now - self._last:5.2f}] {text}"
        self._last = now
        report.lines.append(line)
        self.say(line)

    def _id(self, raw: str) -> str:
        return f"{raw}-{self.run}"

    def citizen(self, scenario: Scenario, person: str) -> Citizen:
        """The person as a window sees them: their tag from the identity service, and their phone."""
        from node.services.identity import subject_tag

        key = (scenario.name, person)
        with self._citizens_lock:  # windows may play in parallel threads (scripts/bench --cases)
            if key in self.citizens:
                return self.citizens[key]
            p = scenario.people[person]
            try:  # the service sees a random element
                tag, n = subject_tag(self._identity, p.id_number, timeout=10)
            except grpc.RpcError as exc:
                raise ScenarioFailed(f"the identity service on {IDENTITY_DEPARTMENT}'s node gave no tag for "
                                     f"{p.name}: {exc.code().name}: {exc.details()}") from None
            app = SigningKey.generate()
            self.citizens[key] = Citizen(p.name, p.id_number, tag.hex(), n, app)
            self.phones.subscribe(app, self.citizens[key].tag)
            return self.citizens[key]

    def play(self, scenario: Scenario) -> Report:
        report = Report(scenario.name)
        self._t0 = self._last = time.monotonic()
        self._line(report, f"{scenario.title} (before: {scenario.before})")
        for step in scenario.steps:
            getattr(self, f"_{step.kind}")(scenario, step.data, report)
        self._line(report, f"done: {len(report.cases)} case(s), {len(report.notices)} notice(s) delivered")
        return report

    # ---- steps ----

    def _authenticate(self, scenario: Scenario, data: dict, report: Report) -> str:
        who = self.citizen(scenario, data["person"])
        event = self._id(f"{scenario.name}-{data['person']}-{next(who.events)}")
        receipt = commit(self.net, IDENTITY_DEPARTMENT, self.net.key(IDENTITY_DEPARTMENT), "authn", "record",
                         {"event_id": event, "tag": who.tag, "method": "face-window", "assurance": 4,
                          "app_key": bytes(who.app_key.verify_key).hex(),
                          "expires_at_ms": int(time.time() * 1000) + 20 * 60_000, "window": data["window"]})
        self._line(report, f"{who.name}: face and ID card checked at window {data['window']}; the identity "
                           f"service records the authentication (authn block {receipt.height})")
        return event

    def _certificate(self, scenario: Scenario, data: dict, report: Report) -> None:
        from node.identity.fields import make_certificate

        who = self.citizen(scenario, data["holder"])
        cert_id = self._id(data["cert_id"])
        cert = make_certificate(cert_id, "cert", data["fields"])
        now, sent = int(time.time() * 1000), time.monotonic()
        receipt = commit(self.net, data["department"], self.net.key(data["department"]), "cert", "issue",
                         {"cert_id": cert_id, "type": data["type"], "holder_tag": who.tag, "valid_from_ms": now,
                          "valid_until_ms": None, "field_root": cert["field_root"]})
        self._line(report, f"{_name(self.net, data['department'])} records the {data['type'].replace('-', ' ')} "
                           f"of {who.name} (cert block {receipt.height}; only a root over its fields is on chain)")
        for person in data.get("notify", []):
            self._notice(scenario, person, report, lambda n: n.get("kind") == "offer", "a proactive offer", sent)

    def _notice(self, scenario: Scenario, person: str, report: Report, accept, what: str, since: float):
        """Wait for the person's notice; `since`: when what triggers it was sent (for the line's time)."""
        who = self.citizen(scenario, person)
        seen = {n["digest"] for n in report.notices}
        try:
            at, notice = self.phones.wait(who.tag, lambda n: accept(n.notice) and n.digest not in seen)
        except TimeoutError:
            raise ScenarioFailed(f"{who.name} got no {what} notice within {WAIT_S:.0f} s") from None
        report.notices.append({"person": person, "notice": notice.notice, "department": notice.department,
                               "digest": notice.digest})
        text = notice.notice.get("notice") or f"case {notice.notice.get('case_id')}: {notice.notice.get('outcome')}"
        self._line(report, f"{who.name}'s phone shows a notice from {_name(self.net, notice.department)}: "
                           f"\"{text}\" ({what}, {at - since:.2f} s after it was sent for; only this phone's key opens it)")
        return at, notice

    def _case(self, scenario: Scenario, data: dict, report: Report) -> None:
        from node.net.client import channel
        from node.pb import cases_pb2, cases_pb2_grpc

        service = scenario.service_item(data["item"])
        department = service.department
        who = self.citizen(scenario, data["applicant"])
        event = self._authenticate(scenario, {"person": data["applicant"], "window": data["window"]}, report)
        case_id = self._id(data["case"])
        agreements = {spec["name"]: agreement_id(self.net, a) for spec in service.payload["inputs"]
                      if (a := scenario.agreement(spec["provider"], department, spec["catalog_item"]))}
        consents = {spec["name"]: f"consent-{case_id}-{spec['name']}" for spec in service.payload["inputs"]
                    if spec["name"] not in agreements}
        if consents:
            self._consent(scenario, data, service, who, event, case_id, consents, report)
        window = self.net.key(department, "window.key")
        tx = sign_transaction(window, chain_id="item", nonce=time.time_ns(), contract="item", method="open_case",
                              payload=json.dumps({"case_id": case_id, "item_id": service.item_id, "tag": who.tag,
                                                  "authn_event": event}, sort_keys=True).encode())
        stub = cases_pb2_grpc.CasesStub(channel(self.net.spec(department).client, self.net.tls))
        opened = time.monotonic()
        reply = stub.OpenCase(cases_pb2.OpenCaseRequest(
            open_case=codec.to_proto(tx), id_number=who.id_number, oprf_output=who.oprf_output,
            consent_ids=consents, agreement_ids=agreements, purpose=service.item_id), timeout=WAIT_S * 2)
        case = json.loads(reply.case_json)
        self._line(report, f"{who.name} applies for \"{service.payload['title']}\" at window {data['window']}: "
                           f"case {case_id} opened (item block {case['opened']['height']}, rule "
                           f"{case['rule_hash'][:12]})")
        for entry in (case.get("evidence") or {}).get("entries", []):
            spec = next(s for s in service.payload["inputs"] if s["name"] == entry["input"])
            basis = (f"under the standing agreement; {_name(self.net, spec['provider'])}'s node checked the tag "
                     "with the identity service" if entry["input"] in agreements else "under the consent")
            self._line(report, f"{_name(self.net, department)}'s node asks {_name(self.net, spec['provider'])}'s "
                               f"node \"{entry['input']}?\" ({spec['catalog_item']}, {basis}): answered yes/no "
                               f"only, PERMIT logged first (authz block {entry['log_height']})")
        decision = case["decision"]
        expected = {"review": "manual"}.get(data["expect"], data["expect"])
        if decision is None or decision["outcome"] != expected:
            raise ScenarioFailed(f"case {case_id}: expected {data['expect']}, the node decided "
                                 f"{decision and decision['outcome']} ({decision and decision['reason']})")
        self._line(report, f"the rule `{service.payload['rule']}` gives: {decision['outcome']} "
                           f"({decision['reason']}; item block {decision['height']}), {time.monotonic() - opened:.2f} s "
                           "after the application")
        _, notice = self._notice(scenario, data["applicant"], report,
                                 lambda n: n.get("case_id") == case_id, "the result", opened)
        if case["notice"] is None or case["notice"]["notice_digest"] != notice.digest:
            raise ScenarioFailed(f"case {case_id}: the notice on the phone ({notice.digest[:16]}) is not the one "
                                 f"the item chain records ({case['notice']})")
        report.latencies[data["case"]] = report_time = time.monotonic() - opened
        self._line(report, f"case {case_id}: {report_time:.2f} s from application to the notice on the phone; "
                           "the item chain records the notice's digest")
        if "review" in data:
            receipt = commit(self.net, department, self.net.key(department, "officer.key"), "item", "review",
                             {"case_id": case_id, "outcome": data["review"], "reason": "checked by an officer"})
            case = json.loads(receipt.output)
            self._line(report, f"an officer of {_name(self.net, department)} reviews case {case_id}: "
                               f"{case['status']} (item block {receipt.height})")
        report.cases[data["case"]] = case

    def _consent(self, scenario, data, service, who: Citizen, event: str, case_id: str, consents: dict,
                 report: Report) -> None:
        """A single-use consent per input named in `consents` (the others are asked under an agreement): the
        authz contract's grant, signed by the window's key citing the citizen's authn event (docs/design.md,
        "Consent and the access log (authz)")."""
        department = service.department
        now = int(time.time() * 1000)
        heights, specs = [], [s for s in service.payload["inputs"] if s["name"] in consents]
        for spec in specs:
            heights.append(commit(self.net, department, self.net.key(department, "window.key"), "authz", "grant",
                   {"consent_id": consents[spec["name"]], "tag": who.tag, "grantee": department,
                    "provider": spec["provider"], "item": spec["catalog_item"], "scope": {"predicate": True}
                    if "predicate" in spec else {"fields": [spec["field"]]}, "purpose": service.item_id,
                    "case_id": case_id, "not_before_ms": now - 60_000, "expires_at_ms": now + 30 * 60_000,
                    "max_uses": 1, "authn_event": event}).height)
        asked = ", ".join(f"{_name(self.net, s['provider'])} \"{s['name']}?\"" for s in specs)
        self._line(report, f"{who.name} consents, once, that {_name(self.net, department)} may ask {asked} for "
                           f"this case only (single-use consent{'s' if len(heights) > 1 else ''}, authz block "
                           f"{', '.join(map(str, heights))})")

    def _audit(self, scenario: Scenario, data: dict, report: Report) -> None:
        """The citizen's audit (govchain.v1.Audit, signed by their app key): every access to their data, each
        entry checked against its inclusion proof and the authz chain's genesis, and every query of their
        cases in this scenario among them."""
        from node.core.genesis import load_genesis
        from node.net.client import channel
        from node.pb import audit_pb2_grpc
        from node.services.audit import list_all
        from node.tools.audit_cli import basis_text, entry_problem

        who = self.citizen(scenario, data["person"])
        stub = audit_pb2_grpc.AuditStub(channel(self.net.specs[0].client, self.net.tls))
        pages, _ = list_all(stub, who.app_key, who.tag, timeout=10)  # a tag keeps its log from earlier runs
        genesis = load_genesis(self.net.root / "genesis" / "authz.json")
        entries = []
        for item in pages:
            entry, proof = json.loads(item.entry_json), json.loads(item.proof_json)
            problem = entry_problem(entry, proof, genesis)
            if problem:
                raise ScenarioFailed(f"{who.name}'s audit: entry {entry['request_digest'][:16]}: {problem}")
            entries.append(entry)
        asked = {e["request_digest"] for case in report.cases.values() if case["tag"] == who.tag
                 for e in (case.get("evidence") or {}).get("entries", [])}
        missing = asked - {e["request_digest"] for e in entries}
        if not asked or missing:
            raise ScenarioFailed(f"{who.name}'s audit lacks {len(missing) if asked else 'every'} query of their "
                                 "cases")
        report.audits[data["person"]] = entries
        for e in entries:
            self._line(report, f"{who.name}'s audit (signed by the phone's key): {e['requester']} asked "
                               f"{e['provider']} about {e['item']} for {e['purpose']}: {e['decision']}, "
                               f"{basis_text(e['basis'])} (authz block {e['height']}; "
                               "inclusion proof checked against the genesis)")
