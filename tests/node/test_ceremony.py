"""`govchain genesis`: the founding ceremony (node/tools/ceremony.py), each command and each refusal,
run in-process through the CLI's main(). The e2e test (tests/e2e/test_genesis_ceremony.py) runs it as
real processes and starts nodes on the result."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from node.core.genesis import GenesisError, load_genesis, make_genesis, read_genesis, write_genesis
from node.core.keys import generate_key_file, public_key_hex
from node.net import tls
from node.tools import ceremony, cli

VALIDATORS = ("tax-bureau", "housing-registry", "public-security", "power-company")  # not sorted, on purpose
CHAINS = "catalog,demo"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["genesis", *args])
    out, err = capsys.readouterr()
    return code, out, err


class Founding:
    """Keys and department files of four validator departments and a school board (non-validating)."""

    def __init__(self, root: Path, capsys) -> None:
        self.root, self.capsys = root, capsys
        self.officers, self.nodes, self.files = {}, {}, {}
        for i, dept in enumerate(VALIDATORS):
            self.department(dept, validator=True, port=7001 + i)
        self.department("school-board", roles="governance,requester,window")

    def department(self, dept: str, *, validator: bool = False, port: int = 0, roles: str = "governance,provider",
                   extra: tuple[str, ...] = ()) -> Path:
        home = self.root / dept
        home.mkdir(exist_ok=True)
        self.officers[dept] = generate_key_file(home / "officer.key")
        args = ["department", "--id", dept, "--name", dept.title(), "--roles", roles,
                "--key", f"{home / 'officer.key'}:governance", *extra, "--out", str(home / "d.json")]
        if validator:
            self.nodes[dept] = generate_key_file(home / "node.key")
            args += ["--validator", "--node-key", str(home / "node.key"), "--peer-address", f"10.0.0.{port % 100}:{port}"]
        code, _, err = run(self.capsys, *args)
        assert code == 0, err
        self.files[dept] = home / "d.json"
        return home / "d.json"

    def assemble(self, out: str = "genesis", *extra: str, files=None) -> tuple[int, str, str]:
        return run(self.capsys, "assemble", "--department", *map(str, files or self.files.values()),
                   "--chains", CHAINS, "--out-dir", str(self.root / out), *extra)

    def sign(self, dept: str, out: str = "genesis", key: Path | None = None) -> Path:
        path = self.root / f"{dept}.{out}.signatures.json"
        code, _, err = run(self.capsys, "sign", "--genesis-dir", str(self.root / out), "--department", dept,
                           "--key", str(key or self.root / dept / "officer.key"),
                           "--department-file", str(self.files[dept]), "--out", str(path))
        assert code == 0, err
        return path

    def seal(self, *paths: Path, out: str = "genesis") -> tuple[int, str, str]:
        return run(self.capsys, "seal", "--genesis-dir", str(self.root / out), "--signatures", *map(str, paths))


@pytest.fixture
def founding(tmp_path, capsys) -> Founding:
    return Founding(tmp_path, capsys)


def test_a_department_file_holds_public_material_only(founding, tmp_path):
    for dept, path in founding.files.items():
        text = path.read_text()
        secrets = [bytes(founding.officers[dept]).hex()] + ([bytes(founding.nodes[dept]).hex()]
                                                             if dept in founding.nodes else [])
        assert not any(secret in text for secret in secrets), f"{path} holds a private key"
        obj = json.loads(text)
        assert obj["keys"] == [{"key": public_key_hex(founding.officers[dept]), "roles": ["governance"]}]
        assert (obj["validator"] is None) == (dept == "school-board")
    obj = json.loads(founding.files["tax-bureau"].read_text())
    assert obj["validator"]["node_key"] == public_key_hex(founding.nodes["tax-bureau"])


def test_a_department_records_its_tls_certificate_fingerprint_and_refuses_an_unbound_one(tmp_path, capsys):
    tls.generate_ca(tmp_path / "ca")
    node_key = generate_key_file(tmp_path / "node.key")
    generate_key_file(tmp_path / "officer.key")
    crt, _ = tls.issue_cert(tmp_path / "ca", tmp_path / "peer", "tax-bureau", ["10.0.0.1"], node_key)
    base = ["department", "--id", "tax-bureau", "--name", "Tax Bureau", "--roles", "governance",
            "--key", f"{tmp_path / 'officer.key'}:governance", "--validator", "--node-key",
            str(tmp_path / "node.key"), "--peer-address", "10.0.0.1:7001", "--out", str(tmp_path / "d.json")]
    assert run(capsys, *base, "--tls-cert", str(crt))[0] == 0
    der = x509.load_pem_x509_certificate(crt.read_bytes()).public_bytes(Encoding.DER)
    assert json.loads((tmp_path / "d.json").read_text())["validator"]["tls_cert_sha256"] == \
        hashlib.sha256(der).hexdigest()
    other, _ = tls.issue_cert(tmp_path / "ca", tmp_path / "other", "tax-bureau", ["10.0.0.1"],
                              generate_key_file(tmp_path / "other-node.key"))
    code, _, err = run(capsys, *base, "--tls-cert", str(other))
    assert code == 2 and "is not bound to --node-key" in err


@pytest.mark.parametrize("args, message", [
    (["--roles", "provider", "--key", "{k}:provider"], "roles must include governance"),
    (["--roles", "governance", "--key", "{k}:governance,issuer"], r"keys\[0\]\.roles: 'issuer' not in governance"),
    (["--roles", "governance,provider", "--key", "{k}:provider"], "no key has the governance role"),
    (["--roles", "governance,mayor", "--key", "{k}:governance"], "'mayor' not in governance, provider"),
    (["--roles", "governance", "--key", "{k}"], "must be FILE:ROLE"),
    (["--roles", "governance", "--key", "{k}:governance", "--validator"], "--validator needs --node-key"),
    (["--roles", "governance", "--key", "{k}:governance", "--peer-address", "h:1"], "add --validator"),
    (["--roles", "governance", "--key", "{k}:governance", "--validator", "--node-key", "{k}", "--peer-address",
      "h:1"], "validator.node_key is also a role key"),
])
def test_department_refusals(tmp_path, capsys, args, message):
    generate_key_file(tmp_path / "k")
    args = [a.replace("{k}", str(tmp_path / "k")) for a in args]
    code, _, err = run(capsys, "department", "--id", "d", "--name", "D", *args, "--out", str(tmp_path / "d.json"))
    assert code == 2 and re.search(message, err), err
    assert not (tmp_path / "d.json").exists()


def test_assemble_builds_one_genesis_per_chain_with_sorted_validators_and_all_founders(founding, monkeypatch):
    # The catalog contract is engineer "catalog"'s; a chain that names it gets the initial registry.
    monkeypatch.setattr(ceremony, "platform_contracts", lambda chain: (("catalog", 1),) if chain == "catalog" else ())
    code, out, err = founding.assemble()
    assert code == 0, err
    catalog, demo = (read_genesis(founding.root / "genesis" / f"{c}.json") for c in ("catalog", "demo"))
    assert f"catalog    genesis hash {catalog.hash_hex}" in out and demo.hash_hex in out
    assert [v.department for v in demo.validators] == sorted(VALIDATORS)
    assert {f.department: f.key for f in demo.founders} == {d: public_key_hex(k) for d, k in founding.officers.items()}
    assert demo.signatures == () and demo.app_state is None
    registry = catalog.app_state["catalog"]
    assert registry["governance"] == {"approvals": 3}  # a majority of 5 departments
    assert [d["id"] for d in registry["departments"]] == sorted(founding.officers)
    school = next(d for d in registry["departments"] if d["id"] == "school-board")
    assert school == {"id": "school-board", "name": "School-Board", "validator": False,
                      "roles": ["governance", "requester", "window"],
                      "keys": [{"key": public_key_hex(founding.officers["school-board"]), "roles": ["governance"]}]}
    # The order of the department files does not matter: the same genesis.
    code, _, _ = founding.assemble("again", files=reversed(list(founding.files.values())))
    assert read_genesis(founding.root / "again" / "catalog.json").hash == catalog.hash


def test_assemble_takes_consensus_parameters_and_approvals_and_warns_when_n_is_not_3f_plus_1(founding, tmp_path):
    founding.department("civil-affairs", validator=True, port=7009)
    (tmp_path / "params.json").write_text('{"batch_wait_ms": 5}')
    code, _, err = founding.assemble("g", "--consensus", str(tmp_path / "params.json"), "--param",
                                     "window_blocks=128", "--approvals", "6")
    assert code == 0, err
    assert "warning: 5 validators tolerate 1 faulty one(s), as 4 would; 7 would tolerate 2" in err
    demo = read_genesis(tmp_path / "g" / "demo.json")
    assert (demo.consensus.batch_wait_ms, demo.consensus.window_blocks) == (5, 128)
    for extra, message in [(("--approvals", "7"), "--approvals must be between 1 and the number of departments (6)"),
                           (("--param", "batch_wait=5"), "unknown consensus parameter"),
                           (("--param", "batch_bytes_max=100000000"), "lower consensus.batch_bytes_max")]:
        code, _, err = founding.assemble("h", *extra)
        assert code == 2 and message in err, err


def test_assemble_refuses_duplicates_and_a_network_without_validators(founding, tmp_path, capsys):
    files = list(founding.files.values())
    code, _, err = founding.assemble("g", files=[*files, files[0]])
    assert code == 2 and "department id 'tax-bureau' of a department file is also" in err
    copy = json.loads(files[1].read_text())
    copy["id"] = "impostor"
    (tmp_path / "impostor.json").write_text(json.dumps(copy))
    code, _, err = founding.assemble("g", files=[*files, tmp_path / "impostor.json"])
    assert code == 2 and "of impostor is also housing-registry's" in err
    code, _, err = founding.assemble("g", files=[founding.files["school-board"]])
    assert code == 2 and "no validator department" in err
    bad = json.loads(files[0].read_text())
    bad["keys"][0]["roles"] = ["governance", "issuer"]  # a key role the department does not have
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    code, _, err = founding.assemble("g", files=[tmp_path / "bad.json"])
    assert code == 2 and "keys[0].roles: 'issuer' not in governance, provider" in err
    assert not (tmp_path / "g").exists() or not list((tmp_path / "g").glob("*.json"))


def test_sign_seal_verify_and_the_node_loads_only_the_fully_signed_genesis(founding, capsys):
    assert founding.assemble()[0] == 0
    signatures = {d: founding.sign(d) for d in founding.files}
    code, out, _ = founding.seal(*[signatures[d] for d in VALIDATORS])
    assert code == 1 and "missing school-board" in out
    path = founding.root / "genesis" / "demo.json"
    with pytest.raises(GenesisError) as info:
        load_genesis(path)
    assert str(info.value).startswith(f"{path}: not signed by founder(s) school-board: ")
    assert "govchain genesis sign --genesis-dir DIR --department ID --key officer.key" in str(info.value)
    code, out, _ = run(capsys, "verify", "--genesis", str(path))
    assert code == 3 and "BAD:" in out and "school-board" in out
    code, out, _ = founding.seal(signatures["school-board"])
    assert code == 0 and "sealed: every founder signed" in out
    genesis = load_genesis(path)
    assert [s.department for s in genesis.signatures] == [f.department for f in genesis.founders]
    code, out, _ = run(capsys, "verify", "--genesis", str(path), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["genesis_hash"] == genesis.hash_hex
    assert {f["signature"] for f in report["founders"]} == {"valid"}


def test_seal_refuses_a_bad_signature_and_writes_nothing(founding):
    assert founding.assemble()[0] == 0
    path = founding.sign("tax-bureau")
    doc = json.loads(path.read_text())
    sig = doc["signatures"][0]["signature"]
    doc["signatures"][0]["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    path.write_text(json.dumps(doc))
    before = (founding.root / "genesis" / "catalog.json").read_bytes()
    code, _, err = founding.seal(path)
    assert code == 2 and "tax-bureau's signature of chain catalog does not verify against its governance key" in err
    assert (founding.root / "genesis" / "catalog.json").read_bytes() == before


def test_seal_refuses_a_signature_over_another_genesis(founding):
    assert founding.assemble("first")[0] == 0
    assert founding.assemble("second", "--param", "batch_wait_ms=20")[0] == 0
    old = founding.sign("tax-bureau", out="first")
    code, _, err = founding.seal(old, out="second")
    assert code == 2 and "tax-bureau signed another genesis of chain catalog" in err


def test_sign_refuses_a_key_that_is_not_the_founders_and_a_changed_department(founding, tmp_path, capsys):
    assert founding.assemble()[0] == 0
    code, _, err = run(capsys, "sign", "--genesis-dir", str(tmp_path / "genesis"), "--department", "tax-bureau",
                       "--key", str(tmp_path / "housing-registry" / "officer.key"), "--out", str(tmp_path / "s.json"))
    assert code == 2 and "sign with the department's governance key" in err
    # The coordinator moved tax-bureau's address: the department's own file catches it.
    genesis = read_genesis(tmp_path / "genesis" / "demo.json")
    obj = genesis.to_json_obj()
    obj["validators"][-1]["address"] = "10.6.6.6:7001"
    (tmp_path / "genesis" / "demo.json").write_text(json.dumps(obj))
    code, _, err = run(capsys, "sign", "--genesis-dir", str(tmp_path / "genesis"), "--department", "tax-bureau",
                       "--key", str(tmp_path / "tax-bureau" / "officer.key"), "--department-file",
                       str(founding.files["tax-bureau"]), "--out", str(tmp_path / "s.json"))
    assert code == 2 and "chain demo: the validator entry of tax-bureau differs from its department file" in err
    assert not (tmp_path / "s.json").exists()


def test_a_genesis_changed_after_sealing_has_another_hash_and_every_signature_fails(founding, capsys):
    assert founding.assemble()[0] == 0
    assert founding.seal(*[founding.sign(d) for d in founding.files])[0] == 0
    path = founding.root / "genesis" / "demo.json"
    sealed = load_genesis(path)
    path.write_text(path.read_text().replace('"batch_txs_max": 1000', '"batch_txs_max": 999'))
    tampered = read_genesis(path)
    assert tampered.hash != sealed.hash and tampered.signatures == sealed.signatures
    with pytest.raises(GenesisError, match=f"the signature\\(s\\) of {', '.join(sorted(founding.files))} do not "
                                           f"verify .* for genesis hash {tampered.hash_hex}"):
        load_genesis(path)
    assert run(capsys, "verify", "--genesis", str(path))[0] == 3


def test_a_genesis_without_founders_is_refused_and_make_genesis_can_sign(tmp_path):
    key = generate_key_file(tmp_path / "node.key")
    officer = generate_key_file(tmp_path / "officer.key")
    write_genesis(tmp_path / "unsigned.json", make_genesis("demo", [("tax-bureau", key.verify_key, "h:1")]))
    with pytest.raises(GenesisError, match="names no founders, so nobody vouches for it"):
        load_genesis(tmp_path / "unsigned.json")
    signed = make_genesis("demo", [("tax-bureau", key.verify_key, "h:1")], founders={"tax-bureau": officer})
    write_genesis(tmp_path / "signed.json", signed)
    assert load_genesis(tmp_path / "signed.json") == signed
