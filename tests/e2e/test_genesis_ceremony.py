"""The founding ceremony as operators run it (README, "Founding a network (four machines)"): every step
through the real `govchain` CLI, four validator departments and a non-validating school board; then four
real node processes start on the sealed genesis and commit a transaction on demo. A node refuses the
unsigned genesis (exit code 2, naming who did not sign)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from node.core.config import TlsConfig, config_template
from node.tools import localnet
from tests.e2e.conftest import GOVCHAIN, REPO, Net, run_cli

VALIDATORS = ("tax-bureau", "housing-registry", "public-security", "power-company")
CHAINS = ("catalog", "demo")


def test_four_departments_and_a_school_board_found_a_network_that_commits(tmp_path):
    root = tmp_path
    ports = localnet.free_ports(2 * len(VALIDATORS))
    run_cli("tls", "ca", "--dir", str(root / "tls"))
    run_cli("tls", "cert", "--ca-dir", str(root / "tls"), "--name", "operator", "--out", str(root / "tls" / "client"))
    coordinator = root / "coordinator"  # what travels: department files in, genesis out, signatures in
    coordinator.mkdir()
    peers = {}
    # 1. Each department, on its own machine: keys, a TLS certificate, its department file.
    for i, dept in enumerate(VALIDATORS):
        home = root / dept
        home.mkdir()
        peers[dept] = f"127.0.0.1:{ports[2 * i]}"
        run_cli("keys", "generate", "--out", str(home / "node.key"))
        run_cli("keys", "generate", "--out", str(home / "officer.key"))
        run_cli("tls", "cert", "--ca-dir", str(root / "tls"), "--name", dept, "--host", "127.0.0.1",
                "--node-key", str(home / "node.key"), "--out", str(home / "tls"))
        run_cli("genesis", "department", "--id", dept, "--name", dept.replace("-", " ").title(),
                "--roles", "governance,provider,requester", "--key", f"{home / 'officer.key'}:governance",
                "--validator", "--node-key", str(home / "node.key"), "--peer-address", peers[dept],
                "--tls-cert", str(home / "tls.crt"), "--out", str(home / f"{dept}.department.json"))
    school = root / "school-board"
    school.mkdir()
    run_cli("keys", "generate", "--out", str(school / "officer.key"))
    run_cli("keys", "generate", "--out", str(school / "window.key"))
    run_cli("genesis", "department", "--id", "school-board", "--name", "School Board",
            "--roles", "governance,requester,window", "--key", f"{school / 'officer.key'}:governance",
            "--key", f"{school / 'window.key'}:requester,window", "--out", str(school / "school-board.department.json"))
    homes = {**{d: root / d for d in VALIDATORS}, "school-board": school}
    for dept, home in homes.items():
        shutil.copy(home / f"{dept}.department.json", coordinator)
        assert "PRIVATE" not in (home / f"{dept}.department.json").read_text()

    # 2. The coordinator assembles.
    out = run_cli("genesis", "assemble", "--department", *map(str, sorted(coordinator.glob("*.department.json"))),
                  "--chains", ",".join(CHAINS), "--out-dir", str(coordinator / "genesis")).stdout
    assert "catalog    genesis hash" in out and "demo       genesis hash" in out
    shutil.copytree(coordinator / "genesis", root / "unsigned")

    # 3. Each department checks and signs what it received.
    for dept, home in homes.items():
        shutil.copytree(coordinator / "genesis", home / "genesis")
        summary = json.loads(run_cli("genesis", "sign", "--genesis-dir", str(home / "genesis"), "--department", dept,
                                     "--key", str(home / "officer.key"), "--department-file",
                                     str(home / f"{dept}.department.json"), "--out",
                                     str(home / f"{dept}.signatures.json"), "--json").stdout)
        assert [c["chain_id"] for c in summary["chains"]] == sorted(CHAINS)
        shutil.copy(home / f"{dept}.signatures.json", coordinator)

    # 4. The coordinator seals; anyone verifies.
    sealed = run_cli("genesis", "seal", "--genesis-dir", str(coordinator / "genesis"), "--signatures",
                     *map(str, sorted(coordinator.glob("*.signatures.json"))), "--json")
    assert json.loads(sealed.stdout)["complete"] is True
    for chain in CHAINS:
        report = json.loads(run_cli("genesis", "verify", "--genesis", str(coordinator / "genesis" / f"{chain}.json"),
                                    "--json").stdout)
        assert report["ok"] and [f["department"] for f in report["founders"]] == sorted(homes)
        assert [v["department"] for v in report["validators"]] == sorted(VALIDATORS)

    # 5. Each validator starts on the sealed files.
    specs = []
    for i, dept in enumerate(sorted(VALIDATORS)):
        home = root / dept
        shutil.copytree(coordinator / "genesis", home / "sealed")
        spec = localnet.NodeSpec(dept, dept, int(peers[dept].rsplit(":", 1)[1]), ports[2 * VALIDATORS.index(dept) + 1],
                                 str(home))
        spec.config.write_text(config_template(
            dept, peer_listen=spec.peer, client_listen=spec.client,
            tls=TlsConfig(ca=Path("../tls/ca.crt"), cert=Path("tls.crt"), key=Path("tls.key")),
            chains=[(c, f"sealed/{c}.json") for c in CHAINS]))
        specs.append(spec)

    # ... but not on the unsigned ones: exit code 2, naming who did not sign and how to fix it.
    refused = root / "refused.toml"
    refused.write_text(specs[0].config.read_text().replace("sealed/", str(root / "unsigned") + "/")
                       .replace('"tls.crt"', f'"{root / specs[0].department / "tls.crt"}"')
                       .replace('"tls.key"', f'"{root / specs[0].department / "tls.key"}"')
                       .replace('"node.key"', f'"{root / specs[0].department / "node.key"}"')
                       .replace('"../tls/ca.crt"', f'"{root / "tls" / "ca.crt"}"'))
    proc = subprocess.run([*GOVCHAIN, "node", "run", "--config", str(refused)], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stderr
    assert "not signed by founder(s) " + ", ".join(sorted(homes)) in proc.stderr
    assert "govchain genesis seal --genesis-dir DIR --signatures" in proc.stderr

    net = Net(root, specs, CHAINS)
    try:
        net.start()
        net.wait_ready()
        # The school board's window key sends a transaction on demo (the open kv store).
        submitted = json.loads(run_cli(
            "tx", "submit", "--node", specs[2].client, "--ca", str(root / "tls" / "ca.crt"), "--chain", "demo",
            "--key", str(school / "window.key"), "--method", "put", "--payload",
            '{"key": "certificate/verified", "value": "1"}', "--wait", "--json").stdout)
        receipt = submitted["receipt"]
        assert submitted["committed"] and receipt["status"] == "OK" and receipt["height"] >= 1, submitted
        net.wait_same_head("demo", range(len(specs)), at_least=receipt["height"])
    finally:
        net.kill_all()
