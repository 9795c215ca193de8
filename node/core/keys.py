"""Validator key files: one Ed25519 private key per department node.

File format (text, ASCII)::

    # govchain ed25519 private key v1 -- keep secret, mode 0600
    # public_key 3b6a27bc...   (informational; checked on load if present)
    9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60

The one non-comment line is the 32-byte seed of a PyNaCl ``SigningKey`` in
lowercase hex. The first line is a fixed header so a file of a different kind
(a TLS key, a genesis file) is rejected with a clear message instead of being
misread as a key.

Permissions: a key file that the group or other users may read, write or
execute is REFUSED, the way OpenSSH refuses an unprotected private key. A
leaked validator key lets anyone sign votes as that department (equivocate,
forge commit certificates), and a warning in a log nobody reads protects
nothing. The error message says how to fix it (``chmod 600``). On Kubernetes
mount the secret with ``defaultMode: 0400``. The check uses ``fstat`` on the
opened file, so it checks the file actually read (symlinks are followed, as
secret mounts use them).

Two layers. `write_private_file` and `read_private_file` hold the file rules
(0600, never overwrite, refuse group/other access, size cap) for a secret
file of any kind; node/net/tls.py uses them for its PEM keys. On top of them,
`write_key_file` and `read_key_file` hold the format above for any fixed-size
secret with a public counterpart, the header passed in: the Ed25519 functions
here and the identity service's OPRF key (node/identity/oprf.py) use them.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from nacl.signing import SigningKey

HEADER = "# govchain ed25519 private key v1 -- keep secret, mode 0600"
_PUBLIC_KEY_PREFIX = "# public_key "
_SEED_BYTES = 32
_FILE_BYTES_MAX = 4096


class KeyFileError(Exception):
    """A key file is missing, unreadable, malformed, unprotected, or would be overwritten."""


def public_key_hex(signing_key: SigningKey) -> str:
    """The 32-byte Ed25519 public key as 64 lowercase hex characters (as in genesis files)."""
    return bytes(signing_key.verify_key).hex()


def generate_key_file(path: str | os.PathLike[str]) -> SigningKey:
    """Create a new random key at `path` with mode 0600 and return it.

    Never overwrites: see write_private_file. The parent directory must exist.
    """
    signing_key = SigningKey.generate()
    write_key_file(path, header=HEADER, public_hex=public_key_hex(signing_key), secret=bytes(signing_key))
    return signing_key


def load_signing_key(path: str | os.PathLike[str], *, check_permissions: bool = True) -> SigningKey:
    """Read a key written by `generate_key_file`.

    Raises KeyFileError when the file is missing, not a regular file, readable
    or writable by group/others (unless ``check_permissions=False``, meant for
    filesystems without POSIX modes), or not in the expected format.
    """
    seed = read_key_file(
        path, header=HEADER, secret_bytes=_SEED_BYTES,
        public_of=lambda seed: public_key_hex(SigningKey(seed)),  # any 32 bytes is a seed
        check_permissions=check_permissions,
        create_hint=f"create one with `govchain keys generate --out {path}`",
    )
    return SigningKey(seed)


# The keyed format (header, public line, secret in hex) for any fixed-size secret.

def write_key_file(path: str | os.PathLike[str], *, header: str, public_hex: str, secret: bytes) -> None:
    """Write a new key file (`header`, the public line, the secret in hex) with mode 0600.

    Never overwrites: see write_private_file.
    """
    write_private_file(path, _render(header, public_hex, secret), "key file")


def read_key_file(
    path: str | os.PathLike[str],
    *,
    header: str,
    secret_bytes: int,
    public_of: Callable[[bytes], str],
    check_permissions: bool = True,
    create_hint: str | None = None,
) -> bytes:
    """The secret of a key file written by `write_key_file`, checked.

    `public_of` maps the secret to its public hex; a ``# public_key`` line that
    disagrees is an edited or corrupted file. A ValueError from `public_of`
    (a secret the key type refuses) becomes KeyFileError. `create_hint` says
    how to create the file when it does not exist (see read_private_file).
    """
    path = Path(path)
    raw = read_private_file(path, "key file", create_hint, check_permissions=check_permissions)
    return _parse(path, raw, header, secret_bytes, public_of)


# Secret files of any kind (also the PEM keys of node/net/tls.py): 0600, never overwritten.

def write_private_file(path: str | os.PathLike[str], data: bytes, what: str) -> None:
    """Write a new secret file with mode 0600 (a key of any kind).

    Never overwrites: the file is created with O_CREAT|O_EXCL, so an existing
    key (possibly the only copy of an identity) is left untouched and
    KeyFileError is raised.
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(
            f"{path}: {what} already exists; refusing to overwrite a private key "
            f"(move it away first if you really mean to replace it)"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create {what}: {exc.strerror}") from None
    try:
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        # Do not leave a truncated key behind for the next run to trip over.
        try:
            os.unlink(path)
        except OSError:
            pass
        raise KeyFileError(f"{path}: cannot write {what}: {exc.strerror}") from None


def read_private_file(path: str | os.PathLike[str], what: str, create_hint: str | None = None, *,
                      check_permissions: bool = True) -> bytes:
    """The bytes of a secret file, refused when group or others may access it.

    `create_hint` (such as "create one with `govchain ...`") is appended to
    the message when the file does not exist.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        hint = f"; {create_hint}" if create_hint else ""
        raise KeyFileError(f"{path}: {what} not found{hint}") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot open {what}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{path}: {what} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if check_permissions and mode & 0o077:
            raise KeyFileError(
                f"{path}: private {what} is accessible by group or others (mode {mode:04o}); "
                f"refusing to use it. Fix with: chmod 600 {path}"
            )
        raw = os.read(fd, _FILE_BYTES_MAX + 1)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read {what}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > _FILE_BYTES_MAX:
        raise KeyFileError(f"{path}: not a {what} (larger than {_FILE_BYTES_MAX} bytes)")
    return raw


def _render(header: str, public_hex: str, secret: bytes) -> bytes:
    return f"{header}\n{_PUBLIC_KEY_PREFIX}{public_hex}\n{secret.hex()}\n".encode("ascii")


def _parse(
    path: Path, raw: bytes, header: str, secret_bytes: int, public_of: Callable[[bytes], str]
) -> bytes:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not a govchain key file (not ASCII text)") from None
    lines = [line.strip() for line in text.splitlines()]
    if not lines or lines[0] != header:
        raise KeyFileError(f"{path}: not a govchain key file (first line must be {header!r})")
    expected_public: str | None = None
    secrets: list[str] = []
    for line in lines[1:]:
        if not line:
            continue
        if line.startswith(_PUBLIC_KEY_PREFIX):
            expected_public = line[len(_PUBLIC_KEY_PREFIX):].strip().lower()
        elif line.startswith("#"):
            continue
        else:
            secrets.append(line)
    if len(secrets) != 1:
        raise KeyFileError(f"{path}: key file must contain exactly one key line (found {len(secrets)})")
    secret_hex = secrets[0]
    try:
        secret = bytes.fromhex(secret_hex)
    except ValueError:
        raise KeyFileError(f"{path}: key line is not hex") from None
    if len(secret) != secret_bytes:
        raise KeyFileError(
            f"{path}: key line must be {2 * secret_bytes} hex characters ({secret_bytes} bytes), "
            f"got {len(secret_hex)} characters"
        )
    try:
        actual_public = public_of(secret)
    except ValueError as exc:
        raise KeyFileError(f"{path}: invalid key: {exc}") from None
    if expected_public is not None and expected_public != actual_public:
        raise KeyFileError(
            f"{path}: the '# public_key' line does not match the private key (file edited or corrupted)"
        )
    return secret
