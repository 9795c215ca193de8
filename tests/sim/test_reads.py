"""Proposal metadata in the simulator (docs/design.md, "Cross-chain reads";
consensus/sim/reads.py): every proposal names the primary's external height,
backups WAIT until they hold it; a Byzantine primary that names a height that
never exists (`future-reads`) is replaced by a view change and commits go on."""
from __future__ import annotations

import random

from consensus.sim.reads import FUTURE_HEIGHT, draw_future_reads
from consensus.sim.runner import SimOptions, Simulation


def _run(seed: int, **overrides):
    sim = Simulation(SimOptions(seed=seed, nodes=4, faults="none", overrides=overrides, safety_ms=3000,
                                liveness_ms=30_000))
    result = sim.run()
    assert result.status == "ok", f"{result.detail}\nreplay: {result.replay}"
    return sim, result


def test_sim_future_reads_primary_is_replaced_and_commits_continue_after_the_view_change():
    for seed in (1, 2, 3):
        sim, result = _run(seed, byzantine=1, byzantine_nodes=(0,), behaviours=("future-reads",))
        assert result.max_view >= 1
        for i in (1, 2, 3):  # the correct nodes
            blocks = [e.block for e in sim.nodes[i].ledger.entries]
            assert blocks and all(b.certificate.view >= 1 for b in blocks), "a future height committed in view 0"
            assert all(int.from_bytes(b.proposal.metadata, "big") < FUTURE_HEIGHT for b in blocks)
            assert len(blocks) > 10, "commits did not continue after the view change"


def test_sim_honest_proposals_carry_the_primarys_external_height():
    sim, result = _run(4)
    assert result.max_view == 0  # honest WAITs are short: no view change
    heights = [int.from_bytes(e.block.proposal.metadata, "big") for e in sim.nodes[1].ledger.entries
               if e.block.proposal.requests]
    assert heights and heights == sorted(heights) and heights[-1] > 0


def test_sim_future_reads_draw_leaves_silent_nodes_and_other_draws_alone():
    behaviours = ("silent", "forge", "equivocate+replay") * 20
    drawn = draw_future_reads(behaviours, random.Random(7))
    assert all(d == b or d == b + "+future-reads" for d, b in zip(drawn, behaviours))
    assert all(d == "silent" for d, b in zip(drawn, behaviours) if b == "silent")
    assert any(d.endswith("+future-reads") for d in drawn)
