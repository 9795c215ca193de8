#!/usr/bin/env python3
"""Generate the Python protobuf/gRPC code for proto/govchain/v1/*.proto.

The generated modules are committed under node/pb/ (flat: node/pb/client_pb2.py,
node/pb/client_pb2_grpc.py, node/pb/client_pb2.pyi, ...) so the node runs
without protoc, and CI runs `--check` to prove they match the .proto sources:

    python scripts/gen_proto.py            # regenerate node/pb/
    python scripts/gen_proto.py --check    # exit 1 if node/pb/ is stale

protoc writes `from govchain.v1 import consensus_pb2`, following the .proto
package path; we rewrite that to `from node.pb import consensus_pb2` (`proto`
itself cannot be a Python package: it is another library's import name).
The protobuf descriptors keep their real names (govchain/v1/client.proto,
govchain.v1.Transaction), so the wire format and reflection are unaffected.

The output depends on the grpcio-tools version (it embeds the protobuf and
grpc versions it targets), so regenerate with the version in the venv.
`*_pb2_grpc.py` modules are written only for .proto files that define a
service.
"""
from __future__ import annotations

import argparse
import filecmp
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROTO_ROOT = REPO / "proto"
PROTO_PACKAGE_DIR = Path("govchain") / "v1"  # under PROTO_ROOT
DEFAULT_OUT = REPO / "node" / "pb"
PYTHON_PACKAGE = "node.pb"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")

INIT_PY = '''\
"""Generated protobuf and gRPC modules for proto/govchain/v1/. DO NOT EDIT.

Regenerate with `python scripts/gen_proto.py`; CI runs `--check`. Only
node/core/codec.py (and the gRPC edges) may import these modules: the rest of the
node works with the domain types in consensus/ and node/core/tx.py.
"""
'''

# `from govchain.v1 import x_pb2 as y` / `import govchain.v1.x_pb2`
_IMPORT_FROM = re.compile(r"^from govchain\.v1 import ", re.MULTILINE)
_IMPORT_PLAIN = re.compile(r"^import govchain\.v1\.(\w+)", re.MULTILINE)


def _is_generated(name: str) -> bool:
    return name.endswith(GENERATED_SUFFIXES)


def proto_files() -> list[Path]:
    """The .proto sources, relative to PROTO_ROOT, in a stable order."""
    files = sorted((PROTO_ROOT / PROTO_PACKAGE_DIR).glob("*.proto"))
    if not files:
        raise SystemExit(f"gen_proto: no .proto files under {PROTO_ROOT / PROTO_PACKAGE_DIR}")
    return [f.relative_to(PROTO_ROOT) for f in files]


def _rewrite_imports(text: str) -> str:
    text = _IMPORT_FROM.sub(f"from {PYTHON_PACKAGE} import ", text)
    return _IMPORT_PLAIN.sub(lambda m: f"import {PYTHON_PACKAGE}.{m.group(1)}", text)


def _defines_service(grpc_module: str) -> bool:
    return re.search(r"^class \w+Stub\b", grpc_module, re.MULTILINE) is not None


def generate(out_dir: Path) -> list[str]:
    """Run protoc into `out_dir` (flat layout) and return the file names written."""
    import grpc_tools  # the venv's grpcio-tools; its bundled protoc and includes

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    sources = proto_files()
    with tempfile.TemporaryDirectory(prefix="gen_proto_raw_") as raw:
        cmd = [
            sys.executable, "-m", "grpc_tools.protoc",
            f"--proto_path={PROTO_ROOT}",
            f"--proto_path={well_known}",
            f"--python_out={raw}",
            f"--grpc_python_out={raw}",
            f"--pyi_out={raw}",
            *[str(s) for s in sources],
        ]
        done = subprocess.run(cmd, cwd=PROTO_ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"gen_proto: protoc failed (exit {done.returncode})")

        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for path in sorted((Path(raw) / PROTO_PACKAGE_DIR).iterdir()):
            if not _is_generated(path.name):
                continue
            text = path.read_text(encoding="utf-8")
            if path.name.endswith("_pb2_grpc.py") and not _defines_service(text):
                continue  # e.g. consensus.proto: messages only, nothing to stub
            (out_dir / path.name).write_text(_rewrite_imports(text), encoding="utf-8")
            written.append(path.name)
    (out_dir / "__init__.py").write_text(INIT_PY, encoding="utf-8")
    written.append("__init__.py")
    return sorted(written)


def _committed_files(out_dir: Path) -> list[str]:
    if not out_dir.is_dir():
        return []
    return sorted(p.name for p in out_dir.iterdir()
                  if p.is_file() and (p.name == "__init__.py" or _is_generated(p.name)))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def check(out_dir: Path) -> int:
    """Regenerate into a temp dir and compare with `out_dir`. 0 fresh, 1 stale."""
    with tempfile.TemporaryDirectory(prefix="gen_proto_check_") as tmp:
        fresh_dir = Path(tmp)
        fresh = generate(fresh_dir)
        committed = _committed_files(out_dir)
        problems = []
        for name in fresh:
            if name not in committed:
                problems.append(f"missing:    {_display(out_dir / name)}")
            elif not filecmp.cmp(fresh_dir / name, out_dir / name, shallow=False):
                problems.append(f"out of date: {_display(out_dir / name)}")
        for name in committed:
            if name not in fresh:
                problems.append(f"unexpected: {_display(out_dir / name)} (no .proto generates it)")
    if not problems:
        print(f"gen_proto: {_display(out_dir)} is up to date with {_display(PROTO_ROOT)}/")
        return 0
    command = "python scripts/gen_proto.py"
    if out_dir.resolve() != DEFAULT_OUT.resolve():
        command += f" --out {out_dir}"
    print(f"gen_proto: generated code in {_display(out_dir)} does not match the .proto sources:",
          file=sys.stderr)
    for line in problems:
        print(f"  {line}", file=sys.stderr)
    print(f"Fix: run `{command}` (with grpcio-tools {_tools_version()}) and commit the result.",
          file=sys.stderr)
    return 1


def _tools_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("grpcio-tools")
    except PackageNotFoundError:
        return "?"


def write(out_dir: Path) -> int:
    before = _committed_files(out_dir)
    written = generate(out_dir)
    for name in before:
        if name not in written:  # generated by a .proto that no longer exists
            (out_dir / name).unlink()
            print(f"removed {_display(out_dir / name)}")
    for name in written:
        print(f"wrote {_display(out_dir / name)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Generate node/pb/ (protobuf + gRPC Python code) from proto/govchain/v1/*.proto.",
    )
    parser.add_argument(
        "--check", action="store_true",
        help="do not write: regenerate into a temp dir and exit 1 (naming the stale files) "
             "if the output directory differs, 0 if it is up to date",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
        help=f"output directory (default: {_display(DEFAULT_OUT)}); generated imports always "
             f"name the package {PYTHON_PACKAGE}",
    )
    args = parser.parse_args(argv)
    return check(args.out) if args.check else write(args.out)


if __name__ == "__main__":
    sys.exit(main())
