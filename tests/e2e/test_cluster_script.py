"""scripts/cluster as a user runs it: the `status --json` and `load --json`
contracts from the issue, perturbation commands, and `up` on an existing
directory restarting the same network with its data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.tools import localnet

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def cluster(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "cluster"), "--dir", str(root), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture
def network_dir(tmp_path):
    root = tmp_path / "net"
    yield root
    if (root / "network.json").exists():
        specs, _ = localnet.load_network(root)
        for spec in specs:
            localnet.kill(spec)


def status(root: Path) -> dict:
    out = cluster(root, "status", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_cluster_script_up_status_load_perturb_down_and_restart(network_dir):
    up = cluster(network_dir, "up", "--nodes", "4", "--chains", "demo,catalog")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "first block committed on demo" in up.stdout
    for dept in ("housing-registry", "power-company", "public-security", "market-regulation"):
        assert dept in up.stdout  # the table names every department

    data = status(network_dir)
    assert len(data["nodes"]) == 4
    for node in data["nodes"]:
        assert node["up"] is True and node["pid"] > 0 and node["client"].startswith("127.0.0.1:")
        assert set(node["chains"]) == {"demo", "catalog"}
        demo = node["chains"]["demo"]
        assert {"height", "view", "primary", "peers", "mempool", "head"} <= set(demo)
        assert demo["height"] >= 1 and len(demo["head"]) == 64
    assert len({n["chains"]["demo"]["head"] for n in data["nodes"]}) == 1

    load = cluster(network_dir, "load", "--rate", "100", "--duration", "2", "--json")
    assert load.returncode == 0, load.stderr
    result = json.loads(load.stdout)
    assert set(result) == {"offered_rate", "submitted", "committed", "rejected", "committed_tps",
                           "latency_ms", "duration_s"}
    assert result["committed"] == result["submitted"] > 0 and result["rejected"] == 0
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p95"] <= result["latency_ms"]["p99"]

    assert "killed" in cluster(network_dir, "kill", "market-regulation").stdout
    down_node = next(n for n in status(network_dir)["nodes"] if n["department"] == "market-regulation")
    assert down_node["up"] is False
    assert "started" in cluster(network_dir, "start", "market-regulation").stdout
    assert "stopped" in cluster(network_dir, "restart", "3").stdout
    localnet.wait_until(lambda: all(n["up"] for n in status(network_dir)["nodes"]), 30, what="node back")
    logs = cluster(network_dir, "logs", "market-regulation")
    assert "ready" in logs.stdout

    before = {n["department"]: n["chains"]["demo"]["height"] for n in status(network_dir)["nodes"]}
    down = cluster(network_dir, "down")
    assert down.stdout.count("stopped") == 4, down.stdout

    again = cluster(network_dir, "up")
    assert again.returncode == 0 and "restarting the network" in again.stdout, again.stdout + again.stderr
    after = status(network_dir)["nodes"]
    assert all(n["chains"]["demo"]["height"] >= before[n["department"]] for n in after)
    assert cluster(network_dir, "logs", "nobody").returncode != 0


def test_cluster_script_takes_dir_before_or_after_the_command(network_dir):
    """Its own error messages suggest `up --dir X`: that must parse, and run."""
    run = [sys.executable, str(REPO / "scripts" / "cluster")]
    for argv in (["--dir", str(network_dir), "status"], ["status", "--dir", str(network_dir)],
                 ["--dir", "/nonexistent", "status", "--dir", str(network_dir)]):  # the later one wins
        out = subprocess.run([*run, *argv], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert out.returncode == 1, out.stderr
        assert f"no network at {network_dir}; create one with `scripts/cluster up --dir {network_dir}`" in out.stderr
    up = subprocess.run([*run, "up", "--dir", str(network_dir), "--nodes", "1", "--chains", "demo"],
                        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert up.returncode == 0, up.stderr
    assert status(network_dir)["nodes"][0]["chains"]["demo"]["height"] >= 1
    down = subprocess.run([*run, "down", "--dir", str(network_dir)], capture_output=True, text=True, timeout=60,
                          cwd=REPO)
    assert down.returncode == 0 and "stopped" in down.stdout, down.stderr


def test_cluster_script_runs_from_a_python_without_the_dependencies():
    """`scripts/cluster status` from a plain shell: the system python3 lacks
    grpc, so the script re-runs itself under the repository's .venv."""
    base = Path(sys.base_prefix) / "bin" / "python3"
    proc = subprocess.run([str(base), str(REPO / "scripts" / "cluster"), "--help"], capture_output=True, text=True,
                          timeout=60, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr
    assert "usage: scripts/cluster" in proc.stdout
