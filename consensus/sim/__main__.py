"""Command line: `python -m consensus.sim --seed N`, `--seeds A..B`, `--bench`.

The long sweep (docs/simulator.md): `--seeds 1..10000 --nodes 4,7,10`
runs seed s with n = nodes[s % 3] and prints progress every 100 seeds.

Exit codes follow TigerBeetle's VOPR: 0 ok, 127 crash (exception),
128 liveness, 129 safety. Every failure prints the command that replays it.
"""
from __future__ import annotations

import argparse
import sys
import time

from consensus.sim.faults import BEHAVIOURS
from consensus.sim.reads import METADATA_BEHAVIOURS
from consensus.sim.runner import EXIT, SimOptions, run


def _seed_range(text: str) -> tuple[int, int]:
    a, sep, b = text.partition("..")
    if not sep:
        raise argparse.ArgumentTypeError("expected A..B, e.g. 1..500")
    lo, hi = int(a), int(b)
    if hi < lo:
        raise argparse.ArgumentTypeError("B must be >= A")
    return lo, hi


def _node_counts(text: str) -> tuple[int, ...]:
    counts = tuple(int(x) for x in text.split(","))
    if min(counts) < 1:
        raise argparse.ArgumentTypeError("node counts must be at least 1")
    return counts


def _behaviours(text: str) -> tuple[str, ...]:
    parts = tuple(text.split(","))
    for part in parts:
        for b in part.split("+"):
            if b not in BEHAVIOURS + METADATA_BEHAVIOURS:
                raise argparse.ArgumentTypeError(
                    f"unknown behaviour {b!r}; choose from {', '.join(BEHAVIOURS + METADATA_BEHAVIOURS)}")
    return parts


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m consensus.sim",
        description="Deterministic PBFT simulator: faults, Byzantine replicas, invariant checker. "
                    "Exit codes: 0 ok, 127 crash, 128 liveness, 129 safety.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--seed", type=int, help="run one simulation and print its fault profile")
    what.add_argument("--seeds", type=_seed_range, metavar="A..B", help="run seeds A..B, print one summary line")
    what.add_argument("--bench", action="store_true", help="blocks per wall-clock second, n = 4, 7, 16, 31")
    p.add_argument("--nodes", type=_node_counts, default=(4,), metavar="N[,N...]",
                   help="number of replicas (default 4); with --seeds a list, seed s runs with nodes[s %% len]")
    p.add_argument("--faults", choices=("swarm", "hostile", "none"), default="swarm",
                   help="swarm: the seed draws the fault profile (default); hostile: a swarm draw with f "
                        "Byzantine replicas, crashes and partitions always on; none: a clean network. "
                        "Options below override single fields of any.")
    p.add_argument("--safety-ms", type=int, default=SimOptions.safety_ms, help="virtual ms with faults")
    p.add_argument("--liveness-ms", type=int, default=SimOptions.liveness_ms,
                   help="virtual ms allowed to converge after faults stop")
    p.add_argument("--verbose", "-v", action="store_true", help="print per-seed lines in a batch")
    g = p.add_argument_group("explicit faults (override the profile)")
    g.add_argument("--loss", type=float, help="message loss probability")
    g.add_argument("--duplicate", type=float, help="message duplication probability")
    g.add_argument("--delay-ms-max", type=int, help="normal per-message delay upper bound")
    g.add_argument("--slow", type=float, help="fraction of messages delayed up to 2 s (reordering)")
    g.add_argument("--partitions", type=int, help="partition episodes that later heal")
    g.add_argument("--partition-kind", choices=("symmetric", "oneway", "isolate", "mixed"))
    g.add_argument("--crashes", type=int, help="crash+restart episodes (unsynced writes lost)")
    g.add_argument("--pauses", type=int, help="process pause episodes")
    g.add_argument("--skew-ms-max", type=int, help="per-node clock offset bound")
    g.add_argument("--requests-per-s", type=int, help="client load")
    g.add_argument("--payload-bytes", type=int,
                   help="request body size (large payloads: blocks cut by bytes, every message checked "
                        "against a message_bytes_max of about two blocks)")
    s = p.add_argument_group("storage faults (per synced batch; docs/simulator.md)")
    s.add_argument("--lost-writes", type=float, help="acknowledged batch never stored (a lost suffix at the crash)")
    s.add_argument("--torn-writes", type=float, help="a record of the batch half-written at the crash")
    s.add_argument("--misdirected-writes", type=float, help="a record lands under another key")
    s.add_argument("--no-storage-defence", action="store_true",
                   help="control: restart from whatever the store holds (no checksums, no promise record)")
    b = p.add_argument_group("Byzantine replicas")
    b.add_argument("--byzantine", type=int, help="number of Byzantine replicas (default: seed picks 0..f)")
    b.add_argument("--behaviours", type=_behaviours,
                   help=f"per node, comma separated, '+' combines: {', '.join(BEHAVIOURS + METADATA_BEHAVIOURS)}")
    b.add_argument("--byzantine-nodes", type=lambda s: tuple(int(x) for x in s.split(",")))
    b.add_argument("--collude", action="store_true", help="Byzantine nodes vote for whatever each target saw")
    b.add_argument("--byzantine-liveness", choices=("persist", "silent"))
    b.add_argument("--allow-over-f", action="store_true",
                   help="permit more than f Byzantine replicas (control experiments: the checker must fire)")
    return p


OVERRIDES = ("loss", "duplicate", "delay_ms_max", "slow", "partitions", "partition_kind", "crashes", "pauses",
             "skew_ms_max", "requests_per_s", "payload_bytes", "byzantine", "behaviours", "byzantine_nodes", "collude",
             "byzantine_liveness", "lost_writes", "torn_writes", "misdirected_writes")


def options(args, seed: int) -> SimOptions:
    overrides = {}
    for key in OVERRIDES:
        value = getattr(args, key)
        if value is not None and value is not False:
            overrides[key] = value
    return SimOptions(seed=seed, nodes=args.nodes[seed % len(args.nodes)], faults=args.faults,
                      overrides=overrides, safety_ms=args.safety_ms, liveness_ms=args.liveness_ms,
                      storage_defence=not args.no_storage_defence)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.bench:
        from consensus.sim.bench import main as bench_main
        return bench_main()
    f = (min(args.nodes) - 1) // 3
    if args.byzantine is not None and args.byzantine > f and not args.allow_over_f:
        parser().error(f"--byzantine {args.byzantine} exceeds f={f} for n={min(args.nodes)}; add --allow-over-f")
    if args.seed is not None:
        if len(args.nodes) > 1:
            parser().error("--seed runs one simulation: give one --nodes")
        opts = options(args, args.seed)
        result = run(opts)
        print(f"seed {args.seed}: n={opts.nodes} profile: {result.profile.describe()}")
        print(f"seed {args.seed}: {result.status} height={result.height} max_view={result.max_view} "
              f"virtual_ms={result.virtual_ms} trace={result.trace_digest[:16]} stats={result.stats}")
        if result.status != "ok":
            print(result.detail)
            print(f"replay: {result.replay}")
        return result.exit_code
    lo, hi = args.seeds
    counts = {"ok": 0, "safety": 0, "liveness": 0, "crash": 0}
    failures = []
    total = hi - lo + 1
    every = 10 if total < 1000 else 100
    started = time.monotonic()
    storage: dict[str, int] = {}
    for i, seed in enumerate(range(lo, hi + 1), 1):
        opts = options(args, seed)
        result = run(opts)
        counts[result.status] += 1
        for key, count in result.stats.get("storage", {}).items():
            storage[key] = storage.get(key, 0) + count
        if args.verbose:
            print(f"seed {seed}: n={opts.nodes} {result.status} height={result.height} "
                  f"{result.profile.describe()}")
        if result.status != "ok":
            failures.append(result)
            lines = result.detail.strip().splitlines()
            print(f"seed {seed}: {result.status}: {lines[-1] if result.status == 'crash' else lines[0]}")
            print(f"  profile: {result.profile.describe()}")
            print(f"  replay: {result.replay}", flush=True)
        if i % every == 0 or i == total:
            print(f"progress {i}/{total}: {counts['safety']} safety, {counts['liveness']} liveness, "
                  f"{counts['crash']} crash ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    if storage:
        print("storage faults (batches): " + ", ".join(f"{k} {v}" for k, v in storage.items()))
    print(f"seeds {lo}..{hi}: {total} run, {counts['safety']} safety, {counts['liveness']} liveness, "
          f"{counts['crash']} crash")
    worst = max((EXIT[r.status] for r in failures), default=0)
    return worst


if __name__ == "__main__":
    sys.exit(main())
