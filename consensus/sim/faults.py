"""Fault profiles (what can go wrong in one run) and their schedules.

Swarm testing (Groce et al.; TigerBeetle's VOPR): instead of every fault at
a fixed low rate, each seed switches whole fault classes on or off and draws
their intensity, so some seeds hammer one mechanism hard. The profile is
printed for every run, so a failure says what was going on.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields

BEHAVIOURS = ("silent", "equivocate", "forge", "replay", "huge_view", "double_vote", "censor")


@dataclass
class FaultProfile:
    loss: float = 0.0
    duplicate: float = 0.0
    delay_ms_max: int = 5
    slow: float = 0.0  # fraction of messages delayed up to 2 s (reordering)
    partitions: int = 0  # partition episodes during the safety phase
    partition_kind: str = "symmetric"  # symmetric | oneway | isolate | mixed
    crashes: int = 0  # crash + restart episodes
    pauses: int = 0  # process pauses (SIGSTOP-like)
    skew_ms_max: int = 0  # per-node clock offset
    byzantine: int = 0
    behaviours: tuple = ()  # per Byzantine node: "a+b" strings
    byzantine_nodes: tuple = ()
    collude: bool = False  # Byzantine nodes coordinate (only meaningful with > f)
    byzantine_liveness: str = "persist"  # persist | silent, during the liveness phase
    requests_per_s: int = 200
    payload_bytes: int = 0  # request body size; 0: small bodies. Never drawn by swarm() (CI time)

    def describe(self) -> str:
        parts = []
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float):
                v = round(v, 3)
            if isinstance(v, tuple):
                v = ",".join(str(x) for x in v) or "-"
            parts.append(f"{f.name}={v}")
        return " ".join(parts)

    def as_dict(self) -> dict:
        return asdict(self)


def swarm(rng: random.Random, n: int, f: int) -> FaultProfile:
    """Draw a profile: each fault class on with probability ~1/2."""
    p = FaultProfile()
    on = lambda: rng.random() < 0.5  # noqa: E731
    if on():
        p.loss = rng.choice((0.01, 0.05, rng.uniform(0.0, 0.3)))
    if on():
        p.duplicate = rng.uniform(0.0, 0.3)
    p.delay_ms_max = rng.choice((2, 5, 20, 100))
    if on():
        p.slow = rng.uniform(0.0, 0.1)
    if on():
        p.partitions = rng.randint(1, 3)
        p.partition_kind = rng.choice(("symmetric", "oneway", "isolate", "mixed"))
    if on():
        p.crashes = rng.randint(1, 3)
    if on():
        p.pauses = rng.randint(1, 2)
    if on():
        p.skew_ms_max = rng.choice((50, 1000, 30_000))
    if f and on():
        p.byzantine = rng.randint(1, f)
    p.requests_per_s = rng.choice((50, 200, 1000))
    p.byzantine_liveness = rng.choice(("persist", "silent"))
    return p


def hostile(rng: random.Random, n: int, f: int) -> FaultProfile:
    """A swarm draw with the worst classes always on: f Byzantine replicas,
    crashes and partitions (issue 7: n >= 7 liveness bugs needed all three)."""
    p = swarm(rng, n, f)
    p.byzantine = f
    p.crashes = max(p.crashes, 1)
    if not p.partitions:
        p.partitions = rng.randint(1, 3)
        p.partition_kind = rng.choice(("symmetric", "oneway", "isolate", "mixed"))
    return p


PROFILES = {"swarm": swarm, "hostile": hostile}


def assign_byzantine(p: FaultProfile, rng: random.Random, n: int) -> None:
    """Choose which nodes are Byzantine and what each does (if not given)."""
    if p.byzantine and not p.byzantine_nodes:
        nodes = rng.sample(range(n), p.byzantine)
        if (p.collude or rng.random() < 0.5) and 0 not in nodes:
            nodes[0] = 0  # node 0 is the first primary: make equivocation bite early
        p.byzantine_nodes = tuple(sorted(nodes))
    if p.byzantine and not p.behaviours:
        p.behaviours = tuple(
            "+".join(sorted(rng.sample(BEHAVIOURS[1:], rng.randint(1, 3)))) if rng.random() < 0.85
            else "silent"
            for _ in p.byzantine_nodes)
    if p.byzantine and len(p.behaviours) == 1 and len(p.byzantine_nodes) > 1:
        p.behaviours = p.behaviours * len(p.byzantine_nodes)


@dataclass(order=True)
class FaultEvent:
    at_ms: int
    order: int
    action: str = field(compare=False)  # crash | restart | pause | resume | partition | heal
    args: tuple = field(compare=False, default=())


def schedule(p: FaultProfile, rng: random.Random, n: int, f: int, duration_ms: int,
             correct: list[int]) -> list[FaultEvent]:
    """Turn a profile into timed events inside the safety phase. Every fault
    ends before the phase does, except what the liveness phase heals."""
    events: list[FaultEvent] = []
    order = iter(range(1_000_000))

    def episode(start_action, end_action, args, min_ms=200, max_ms=None):
        max_ms = max_ms or max(min_ms + 1, duration_ms // 2)
        start = rng.randint(0, max(1, duration_ms - min_ms))
        end = min(duration_ms, start + rng.randint(min_ms, max_ms))
        events.append(FaultEvent(start, next(order), start_action, args))
        events.append(FaultEvent(end, next(order), end_action, args))

    for _ in range(p.partitions):
        kind = p.partition_kind if p.partition_kind != "mixed" else rng.choice(("symmetric", "oneway", "isolate"))
        nodes = list(range(n))
        rng.shuffle(nodes)
        if kind == "isolate":
            side_a, side_b = nodes[:1], nodes[1:]
        else:
            cut = rng.randint(1, n - 1)
            side_a, side_b = nodes[:cut], nodes[cut:]
        episode("partition", "heal", (tuple(side_a), tuple(side_b), kind == "oneway"), 300)
    for _ in range(p.crashes):
        node = rng.choice(correct) if correct else rng.randrange(n)
        episode("crash", "restart", (node,), 50, 3000)
    for _ in range(p.pauses):
        episode("pause", "resume", (rng.randrange(n),), 100, 3000)
    events.sort()
    return events
