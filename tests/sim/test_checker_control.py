"""Control experiment (docs/testing.md D1): with more than f colluding Byzantine
replicas the checker MUST report a safety violation, or it proves nothing."""
from __future__ import annotations

from consensus.sim.__main__ import main
from consensus.sim.runner import SimOptions, run


def test_checker_catches_agreement_violation_with_more_than_f_byzantine():
    statuses = []
    for seed in range(1, 6):
        res = run(SimOptions(seed=seed, nodes=4, faults="none", safety_ms=1000,
                             overrides=dict(byzantine=2, byzantine_nodes=(0, 1), collude=True,
                                            behaviours=("equivocate+double_vote",))))
        statuses.append(res.status)
        if res.status == "safety":
            # "diverged": a correct replica was handed valid certificates over
            # another history (docs/design.md, "Block binding"); only a fork does that.
            assert any(word in res.detail for word in ("agreement", "equivocation", "diverged")), res.detail
            assert "--allow-over-f" in res.replay
    assert "safety" in statuses


def test_cli_exits_129_on_safety_violation(capsys):
    code = main(["--seed", "2", "--faults", "none", "--byzantine", "2", "--allow-over-f", "--collude",
                 "--behaviours", "equivocate+double_vote", "--byzantine-nodes", "0,1", "--safety-ms", "500"])
    out = capsys.readouterr().out
    assert code == 129
    assert "replay: python -m consensus.sim --seed 2 --nodes 4" in out


def test_cli_batch_prints_one_summary_line(capsys):
    code = main(["--seeds", "1..3", "--safety-ms", "500"])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "seeds 1..3: 3 run, 0 safety, 0 liveness, 0 crash"
    assert code == 0
