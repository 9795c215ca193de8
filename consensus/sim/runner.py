"""One simulation run: build the cluster from a seed, run the safety phase
with faults, then the liveness phase without them, and report.

Determinism: one master random.Random(seed); every subsystem gets its own
RNG derived from it in a fixed order, so adding draws in one subsystem does
not shift another's. No wall clock, no set iteration over str/bytes.
"""
from __future__ import annotations

import hashlib
import random
import traceback
from dataclasses import dataclass, field

from consensus import events as ev
from consensus import messages as m
from consensus.config import ReplicaConfig
from consensus.quorum import max_faulty
from consensus.sim.byzantine import Byzantine, Collusion
from consensus.sim.checker import Checker, LivenessViolation, SafetyViolation
from consensus.sim.clients import Clients
from consensus.sim.crypto import make_keys
from consensus.sim.faults import (PROFILES, FaultEvent, FaultProfile, assign_byzantine, draw_storage_faults,
                                  schedule)
from consensus.sim.network import LinkFaults, Network
from consensus.sim.node import SimNode
from consensus.sim.reads import ExternalChain, draw_future_reads
from consensus.sim.storage import Storage, StorageFaults

EXIT = {"ok": 0, "crash": 127, "liveness": 128, "safety": 129}

# Small timeouts and checkpoint intervals: a few virtual seconds then cover
# view changes, checkpoints, garbage collection and state transfer.
SIM_CONFIG = dict(
    batch_txs_max=64,
    checkpoint_interval_blocks=4,
    window_blocks=16,
    in_flight_blocks_max=4,
    request_timeout_ticks=60,
    view_change_timeout_ticks=60,
    view_change_timeout_max_ticks=480,
    status_interval_ticks=20,
    retransmit_interval_ticks=20,
    fetch_blocks_max=16,
)


def large_payload_config(payload_bytes: int) -> tuple[dict, int]:
    """Replica parameters and the message_bytes_max the checker enforces for
    runs with large request bodies: blocks are cut by bytes (about eight
    requests), and no message a correct replica builds may exceed about two
    full blocks, which a ViewChange or NewView with bodies would."""
    batch_bytes_max = 8 * (payload_bytes + 64)
    return dict(batch_bytes_max=batch_bytes_max), 2 * batch_bytes_max + (64 << 10)


@dataclass
class SimOptions:
    seed: int
    nodes: int = 4
    faults: str = "swarm"  # swarm | hostile | none
    overrides: dict = field(default_factory=dict)  # FaultProfile field -> value (explicit CLI options)
    safety_ms: int = 4000
    liveness_ms: int = 60_000
    tick_ms: int = 10
    config: dict = field(default_factory=dict)  # ReplicaConfig overrides
    script: list | None = None  # explicit FaultEvents instead of the drawn schedule (scenario tests)
    max_blocks: int = 0  # stop the safety phase early at this height (bench)
    trace: bool = True
    storage_defence: bool = True  # False: the control, nodes restart from whatever their store holds

    def replay_command(self) -> str:
        cmd = f"python -m consensus.sim --seed {self.seed} --nodes {self.nodes}"
        if self.faults != "swarm":
            cmd += f" --faults {self.faults}"
        for key, value in self.overrides.items():
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                cmd += f" {flag}" if value else ""
            elif isinstance(value, tuple):
                cmd += f" {flag} {','.join(str(v) for v in value)}"
            else:
                cmd += f" {flag} {value}"
        if self.safety_ms != SimOptions.safety_ms:
            cmd += f" --safety-ms {self.safety_ms}"
        if self.liveness_ms != SimOptions.liveness_ms:
            cmd += f" --liveness-ms {self.liveness_ms}"
        if not self.storage_defence:
            cmd += " --no-storage-defence"
        if self.overrides.get("byzantine", 0) > (self.nodes - 1) // 3:
            cmd += " --allow-over-f"
        if self.script is not None:
            cmd += "  # plus the scripted faults of the test that ran it"
        return cmd


@dataclass
class Result:
    seed: int
    status: str  # ok | safety | liveness | crash
    detail: str
    trace_digest: str
    profile: FaultProfile
    replay: str
    height: int = 0
    commits: int = 0
    max_view: int = 0
    virtual_ms: int = 0
    stats: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT[self.status]


def _default_factory(config, signer, verifier, validate, restored, is_committed, **metadata):
    from consensus.replica import Replica  # lazily: the lead's module, and cheap to swap in tests

    return Replica(config, signer, verifier, validate_request=validate, is_committed=is_committed,
                   restored=restored, **metadata)


_HEADS: dict = {}


def fingerprint(src: int, dst: int, msg) -> bytes:
    """Cheap, content-identifying bytes of a delivered message for the trace."""
    key = (src, dst, type(msg))
    head = _HEADS.get(key)
    if head is None:
        head = _HEADS[key] = b"%d>%d:" % (src, dst) + type(msg).__name__.encode()
    if type(msg) is m.BlocksReply:
        return head + b"".join(b.certificate.digest for b in msg.blocks)
    return head + msg.signature


class Simulation:
    """One cluster. `replica_factory` swaps the Replica (tests); `key_factory`
    (n, rng) -> (signers, verifier) swaps the signature scheme (default: the
    keyed-BLAKE2b `crypto.make_keys`; a test may inject Ed25519 from node.core.crypto,
    which consensus/ itself must never import). The forger's key is one more
    key from the same factory, drawn from the Byzantine RNG."""

    def __init__(self, opts: SimOptions, replica_factory=None, key_factory=None) -> None:
        self.opts = opts
        n = self.n = opts.nodes
        f = max_faulty(n)
        master = random.Random(opts.seed)
        derive = lambda: random.Random(master.getrandbits(64))  # noqa: E731
        rng_faults, rng_keys, rng_net, rng_clients, rng_byz, rng_clock = (derive() for _ in range(6))
        rng_store = derive()  # drawn last: the six above are as before storage faults existed
        rng_reads = derive()  # after rng_store: proposal metadata (reads.py) shifts no other subsystem

        p = FaultProfile() if opts.faults == "none" else PROFILES[opts.faults](rng_faults, n, f)
        if opts.faults != "none":
            draw_storage_faults(p, rng_store)
        for key, value in opts.overrides.items():
            setattr(p, key, value)
        assign_byzantine(p, rng_faults, n)
        external = ExternalChain(n, rng_reads, lambda: self.now)
        if "behaviours" not in opts.overrides:
            p.behaviours = draw_future_reads(p.behaviours, rng_reads)
        self.profile = p
        byz_nodes = list(p.byzantine_nodes)
        self.correct = [i not in byz_nodes for i in range(n)]

        keys = key_factory or make_keys
        signers, self.verifier = keys(n, rng_keys)
        self.net = Network(n, rng_net, LinkFaults(loss=p.loss, duplicate=p.duplicate,
                                                  delay_ms_max=p.delay_ms_max, slow=p.slow))
        self.clients = Clients(rng_clients, n, p.requests_per_s, payload_bytes=p.payload_bytes)
        cfg, bytes_max = {**SIM_CONFIG, **opts.config}, 0
        if p.payload_bytes:
            large, bytes_max = large_payload_config(p.payload_bytes)
            cfg = {**SIM_CONFIG, **large, **opts.config}
        self.checker = Checker(n=n, chain_id="sim", verifier=self.verifier, correct=self.correct,
                               registry=self.clients.registry, message_bytes_max=bytes_max)
        self.trace = _Trace() if opts.trace else _NoTrace()
        factory = replica_factory or _default_factory
        # A replica that lost its promises is faulty until it has re-synced
        # (Castro's BFT-PR counts recovering replicas in f): bad disks only
        # on correct nodes, at most f minus the Byzantine ones.
        faults = StorageFaults(p.lost_writes, p.torn_writes, p.misdirected_writes)
        budget = max(0, f - len(byz_nodes)) if faults else 0
        faulty_disks = rng_store.sample([i for i in range(n) if self.correct[i]], budget)
        self.nodes = [
            SimNode(i, config=ReplicaConfig(chain_id="sim", validators=n, replica=i, **cfg),
                    signer=signers[i], verifier=self.verifier, validate_request=self.clients.validate,
                    replica_factory=factory, send=self._send, checker=self.checker, trace=self.trace,
                    serve_bytes_max=bytes_max // 2, defence=opts.storage_defence,
                    storage=Storage(faults if i in faulty_disks else None, random.Random(rng_store.getrandbits(64))))
            for i in range(n)
        ]
        for node in self.nodes:
            node.metadata = dict(propose_metadata=external.propose(node.index, self._lies_about_reads(node.index)),
                                 check_metadata=external.check(node.index))
        self.skew = [rng_clock.randint(-p.skew_ms_max, p.skew_ms_max) if p.skew_ms_max else 0
                     for _ in range(n)]
        collusion = Collusion() if p.collude else None
        self.byzantine: dict[int, Byzantine] = {}
        for idx, behaviour in zip(byz_nodes, p.behaviours):
            self.byzantine[idx] = Byzantine(
                self.nodes[idx], tuple(behaviour.split("+")), rng=random.Random(rng_byz.getrandbits(64)),
                n=n, chain_id="sim", forger=keys(1, rng_byz)[0][0],
                collusion=collusion, send_raw=self._send_raw)
        correct_idx = [i for i in range(n) if self.correct[i]]
        self.events: list[FaultEvent] = (list(opts.script) if opts.script is not None
                                         else schedule(p, rng_faults, n, f, opts.safety_ms, correct_idx))
        self.events.sort()
        self.now = 0
        self.delivered = 0

    def _lies_about_reads(self, index: int):
        def lying() -> bool:
            b = self.byzantine.get(index)
            return b is not None and b.active and "future-reads" in b.behaviours
        return lying

    # ---- plumbing --------------------------------------------------------

    def _send(self, src: int, to, msg) -> None:
        self.checker.on_send(src, msg)
        self._send_raw(src, to, msg)

    def _send_raw(self, src: int, to, msg) -> None:
        if to is None:
            for dst in range(self.n):
                if dst != src:
                    self.net.send(self.now, src, dst, msg)
        else:
            self.net.send(self.now, src, to, msg)

    def _apply(self, e: FaultEvent) -> None:
        nodes = self.nodes
        if e.action == "crash" and nodes[e.args[0]].up:
            nodes[e.args[0]].crash()
        elif e.action == "restart" and not nodes[e.args[0]].up:
            nodes[e.args[0]].start()
        elif e.action == "pause" and nodes[e.args[0]].up:
            nodes[e.args[0]].paused = True
        elif e.action == "resume":
            nodes[e.args[0]].resume()
        elif e.action in ("partition", "heal"):
            a, b, one_way = e.args
            self.net.partition(a, b, one_way, undo=e.action == "heal")

    def submit(self, requests, targets) -> None:
        for t in targets:
            node = self.nodes[t]
            if node.up and not node.paused:
                node.step(ev.RequestsSubmitted(requests=requests))

    def _executed_anywhere(self, rid: bytes) -> bool:
        return any(self.correct[i] and rid in self.nodes[i].ledger.executed_ids for i in range(self.n))

    def step_time(self, new_requests: bool = True) -> None:
        now, tick_ms = self.now, self.opts.tick_ms
        events = self.events
        while events and events[0].at_ms <= now:
            self._apply(events.pop(0))
        if new_requests:
            k = self.clients.arrivals(tick_ms)
            if k:
                self.submit(self.clients.new_requests(k), self.clients.targets())
        retry = self.clients.due_retries(now, self._executed_anywhere)
        if retry:
            self.submit(retry, list(range(self.n)))
        trace, nodes, byz = self.trace, self.nodes, self.byzantine
        for src, dst, msg in self.net.due(now):
            self.delivered += 1
            trace.update(fingerprint(src, dst, msg))
            if byz and dst in byz:
                byz[dst].observe(msg)
            nodes[dst].deliver(msg)
        for node in nodes:
            if node.up and not node.paused:
                node.step(ev.Tick(now_ms=max(0, now + self.skew[node.index])))
                b = byz.get(node.index) if byz else None
                if b is not None:
                    b.on_tick()
        trace.flush()
        self.now = now + tick_ms

    # ---- phases ----------------------------------------------------------

    def height(self) -> int:
        return max(self.nodes[i].ledger.height for i in range(self.n) if self.correct[i])

    def safety_phase(self) -> None:
        end, cap = self.opts.safety_ms, self.opts.max_blocks
        while self.now < end:
            self.step_time()
            if cap and self.height() >= cap:
                break

    def liveness_phase(self) -> None:
        """Faults stop: heal, restart, resume; Byzantine nodes keep misbehaving
        or go silent. Every correct replica must then execute every request."""
        self.events.clear()
        self.net.calm()
        for node in self.nodes:
            if not node.up:
                node.start()
            node.resume()
        for b in self.byzantine.values():
            if self.profile.byzantine_liveness == "silent":
                b.go_silent()
        self.clients._next_retry = self.now
        deadline = self.now + self.opts.liveness_ms
        while True:
            for _ in range(50):
                self.step_time(new_requests=False)
            reason = self.checker.converged([nd.ledger for nd in self.nodes])
            if reason is None:
                return
            if self.now >= deadline:
                raise LivenessViolation(f"after {self.opts.liveness_ms} ms of calm: {reason}\n"
                                        + self.describe_nodes())

    def describe_nodes(self) -> str:
        lines = []
        for nd in self.nodes:
            r = nd.replica
            role = "byzantine" if not self.correct[nd.index] else "correct"
            if r is None:
                lines.append(f"  node {nd.index} ({role}): down, ledger {nd.ledger.height}")
                continue
            lines.append(
                f"  node {nd.index} ({role}): ledger {nd.ledger.height} view {r.view} changing {r.view_changing} "
                f"stable {r.stable.seq} pending {r.pending_count} dropped {dict(sorted(nd.dropped.items()))}")
        return "\n".join(lines)

    def run(self) -> Result:
        status, detail = "ok", ""
        try:
            for node in self.nodes:
                node.start()
            self.safety_phase()
            self.liveness_phase()
        except SafetyViolation as e:
            status, detail = "safety", str(e)
        except LivenessViolation as e:
            status, detail = "liveness", str(e)
        except Exception:  # noqa: BLE001 - any exception is a finding, reported with its seed
            status, detail = "crash", traceback.format_exc()
        return self._result(status, detail)

    def _result(self, status: str, detail: str) -> Result:
        stats: dict = {"delivered": self.delivered, "sent": self.net.sent, "net_dropped": self.net.dropped,
                       "crashes": sum(nd.crashes for nd in self.nodes),
                       "lost_writes": sum(nd.lost_writes for nd in self.nodes)}
        dropped: dict[str, int] = {}
        for nd in self.nodes:
            if self.correct[nd.index]:
                for reason, count in nd.dropped.items():
                    dropped[reason] = dropped.get(reason, 0) + count
        stats["replica_dropped"] = dict(sorted(dropped.items()))
        storage = {"lost": 0, "torn": 0, "misdirected": 0, "detected": 0, "repairs": 0, "rejoins": 0, "held": 0}
        for nd in self.nodes:
            for key, count in (*nd.storage.injected.items(), *nd.storage_stats.items()):
                storage[key] += count
        if any(storage.values()):
            stats["storage"] = storage
        views = [nd.replica.view for nd in self.nodes if nd.replica is not None and self.correct[nd.index]]
        return Result(seed=self.opts.seed, status=status, detail=detail, trace_digest=self.trace.hexdigest(),
                      profile=self.profile, replay=self.opts.replay_command(), height=self.height(),
                      commits=self.checker.commits, max_view=max(views, default=0), virtual_ms=self.now,
                      stats=stats)


class _Trace:
    """sha256 over every delivery and commit, in order. Parts are buffered and
    hashed once per virtual tick: the digest is the same as one update() per
    part (sha256 is a stream), for far fewer calls into hashlib."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._parts: list[bytes] = []
        self.update = self._parts.append

    def flush(self) -> None:
        if self._parts:
            self._sha.update(b"".join(self._parts))
            self._parts.clear()

    def hexdigest(self) -> str:
        self.flush()
        return self._sha.hexdigest()


class _NoTrace:
    def update(self, data: bytes) -> None:
        pass

    def flush(self) -> None:
        pass

    def hexdigest(self) -> str:
        return "-"


def run(opts: SimOptions, replica_factory=None, key_factory=None) -> Result:
    return Simulation(opts, replica_factory, key_factory).run()
