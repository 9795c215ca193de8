"""scripts/gen_proto.py: the committed node/pb/ matches proto/, and --check
notices when it does not (docs/design.md, Rule 5: committed generated code checked in CI)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gen_proto.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_gen_proto_committed_code_is_fresh():
    done = _run("--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout


def test_gen_proto_check_names_stale_missing_and_unexpected_files(tmp_path):
    out = tmp_path / "pb"
    shutil.copytree(REPO / "node" / "pb", out, ignore=shutil.ignore_patterns("__pycache__"))
    with open(out / "client_pb2.py", "a", encoding="utf-8") as f:
        f.write("# hand edit\n")
    (out / "peer_pb2_grpc.py").unlink()
    (out / "old_pb2.py").write_text("# from a deleted .proto\n", encoding="utf-8")

    done = _run("--check", "--out", str(out))

    assert done.returncode == 1
    assert "client_pb2.py" in done.stderr
    assert "peer_pb2_grpc.py" in done.stderr and "missing" in done.stderr
    assert "old_pb2.py" in done.stderr and "unexpected" in done.stderr
    assert "consensus_pb2.py" not in done.stderr  # untouched files are not blamed
    assert "python scripts/gen_proto.py" in done.stderr  # tells how to fix it


def test_gen_proto_help():
    done = _run("--help")
    assert done.returncode == 0
    assert "--check" in done.stdout and "--out" in done.stdout
