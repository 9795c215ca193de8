from __future__ import annotations

import os
import stat

import pytest
from nacl.signing import SigningKey

from node.core.keys import HEADER, KeyFileError, generate_key_file, load_signing_key, public_key_hex


def test_keys_generate_creates_0600_file_that_loads_back(tmp_path) -> None:
    path = tmp_path / "node.key"
    key = generate_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = load_signing_key(path)
    assert bytes(loaded) == bytes(key)
    assert public_key_hex(loaded) == bytes(key.verify_key).hex()
    assert len(public_key_hex(loaded)) == 64
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER
    assert lines[1] == f"# public_key {public_key_hex(key)}"
    # the loaded key signs verifiably
    signed = loaded.sign(b"block")
    key.verify_key.verify(signed)


def test_keys_generate_mode_is_0600_even_with_permissive_umask(tmp_path) -> None:
    old = os.umask(0)
    try:
        generate_key_file(tmp_path / "node.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "node.key").st_mode) == 0o600


def test_keys_generate_refuses_to_overwrite(tmp_path) -> None:
    path = tmp_path / "node.key"
    first = generate_key_file(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists; refusing to overwrite"):
        generate_key_file(path)
    assert path.read_bytes() == before
    assert bytes(load_signing_key(path)) == bytes(first)


def test_keys_generate_missing_directory_is_clear_error(tmp_path) -> None:
    with pytest.raises(KeyFileError, match="cannot create key file"):
        generate_key_file(tmp_path / "nope" / "node.key")


def test_keys_load_missing_file(tmp_path) -> None:
    with pytest.raises(KeyFileError, match="key file not found"):
        load_signing_key(tmp_path / "absent.key")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o610])
def test_keys_load_refuses_group_or_world_access(tmp_path, mode) -> None:
    path = tmp_path / "node.key"
    generate_key_file(path)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match=rf"accessible by group or others \(mode {mode:04o}\).*chmod 600"):
        load_signing_key(path)
    load_signing_key(path, check_permissions=False)  # the escape hatch for filesystems without modes


def test_keys_load_accepts_0400(tmp_path) -> None:
    path = tmp_path / "node.key"
    generate_key_file(path)
    os.chmod(path, 0o400)
    load_signing_key(path)


def _write(path, text: str | bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(text.encode() if isinstance(text, str) else text)


SEED = "11" * 32


@pytest.mark.parametrize("content, message", [
    ("", "first line must be"),
    (f"{SEED}\n", "first line must be"),  # no header
    ("-----BEGIN PRIVATE KEY-----\nabc\n", "first line must be"),
    (f"{HEADER}\n", "exactly one key line \\(found 0\\)"),
    (f"{HEADER}\n{SEED}\n{SEED}\n", "exactly one key line \\(found 2\\)"),
    (f"{HEADER}\nzz{SEED[2:]}\n", "not hex"),
    (f"{HEADER}\n{SEED[:-2]}\n", "64 hex characters"),
    (f"{HEADER}\n# public_key {'22' * 32}\n{SEED}\n", "does not match the private key"),
    (b"\xff\xfe\x00", "not ASCII"),
    ("x" * 5000, "larger than"),
])
def test_keys_load_rejects_bad_content(tmp_path, content, message) -> None:
    path = tmp_path / "node.key"
    _write(path, content)
    with pytest.raises(KeyFileError, match=message):
        load_signing_key(path)


def test_keys_load_accepts_seed_without_public_key_line(tmp_path) -> None:
    path = tmp_path / "node.key"
    _write(path, f"{HEADER}\n\n{SEED}\n")
    assert bytes(load_signing_key(path)) == bytes(SigningKey(bytes.fromhex(SEED)))


def test_keys_load_rejects_directory(tmp_path) -> None:
    directory = tmp_path / "dir.key"
    directory.mkdir(mode=0o700)
    with pytest.raises(KeyFileError):
        load_signing_key(directory)
