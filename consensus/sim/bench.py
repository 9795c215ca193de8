"""`python -m consensus.sim --bench`: simulated committed blocks per
wall-clock second on a fault-free network with the cheap signer.

The only module of the simulator that reads a clock, and only to report the
speed of the simulator itself; the simulation never sees it. The machine is
shared, so next to wall time it reports the process's CPU time: blocks per
CPU second is the figure to compare between builds.
"""
from __future__ import annotations

from consensus.sim.runner import SimOptions, Simulation

SIZES = (4, 7, 16, 31)


def measure(nodes: int, blocks: int, requests_per_s: int = 2000, seed: int = 1) -> tuple[int, int, float, float]:
    """Run until `blocks` blocks are committed; return (blocks, requests, wall s, cpu s)."""
    import time  # lazily: wall clock for the report only

    opts = SimOptions(seed=seed, nodes=nodes, faults="none", overrides={"requests_per_s": requests_per_s},
                      safety_ms=10**9, max_blocks=blocks, trace=True)
    sim = Simulation(opts)
    for node in sim.nodes:
        node.start()
    start, cpu = time.perf_counter(), time.process_time()
    sim.safety_phase()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if sim.checker.commits == 0:
        raise RuntimeError("benchmark committed nothing")
    return sim.height(), len(sim.nodes[0].ledger.executed_ids), elapsed, cpu


def main() -> int:
    print("simulated PBFT, fault-free, keyed-BLAKE2b signer, checker and trace on, one process")
    print(f"{'n':>3} {'load req/s':>10} {'blocks':>7} {'tx/block':>8} {'wall s':>7} {'blocks/s':>9} {'tx/s':>8} "
          f"{'cpu s':>6} {'blocks/cpu-s':>12}")
    for n in SIZES:
        target = {4: 2000, 7: 800, 16: 200, 31: 60}[n]
        for load in (300, 2000):  # light and loaded blocks
            blocks, txs, secs, cpu = measure(n, target, requests_per_s=load)
            print(f"{n:>3} {load:>10} {blocks:>7} {txs / blocks:>8.1f} {secs:>7.2f} {blocks / secs:>9.0f} "
                  f"{txs / secs:>8.0f} {cpu:>6.2f} {blocks / cpu:>12.0f}", flush=True)
    return 0
