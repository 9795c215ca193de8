"""Run a command under a seccomp filter equal to systemd's MemoryDenyWriteExecute=yes.

    python tests/deploy/seccomp_mdwe.py PROGRAM [ARGS...]

systemd implements MemoryDenyWriteExecute= with seccomp: mmap() with both
PROT_WRITE and PROT_EXEC, mprotect()/pkey_mprotect() adding PROT_EXEC and
shmat(SHM_EXEC) fail (here with EPERM). This installs the same rules
(x86_64 only, plus no_new_privs, which an unprivileged filter requires) and
execs PROGRAM, so a test can show the node works under the unit's setting
without systemd.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys

_LD_ABS_W, _JEQ, _JSET, _AND, _RET = 0x20, 0x15, 0x45, 0x54, 0x06
_ALLOW, _EPERM = 0x7FFF0000, 0x00050000 | 1
_AUDIT_ARCH_X86_64 = 0xC000003E
_NR_MMAP, _NR_MPROTECT, _NR_SHMAT, _NR_PKEY_MPROTECT = 9, 10, 30, 329
_PROT_WRITE, _PROT_EXEC, _SHM_EXEC = 2, 4, 0o100000
_ARG2 = 16 + 8 * 2  # offsetof(struct seccomp_data, args[2]), low 32 bits on little-endian


def supported() -> bool:
    return sys.platform == "linux" and platform.machine() == "x86_64"


def _program() -> list[tuple[int, int, int, int]]:
    prog: list[list] = []
    labels: dict[str, int] = {}

    def ins(code, k, jt=None, jf=None):
        prog.append([code, jt, jf, k])

    ins(_LD_ABS_W, 4)
    ins(_JEQ, _AUDIT_ARCH_X86_64, None, "allow")
    ins(_LD_ABS_W, 0)
    ins(_JEQ, _NR_MMAP, "mmap")
    ins(_JEQ, _NR_MPROTECT, "mprotect")
    ins(_JEQ, _NR_PKEY_MPROTECT, "mprotect")
    ins(_JEQ, _NR_SHMAT, "shmat")
    ins(_RET, _ALLOW)
    labels["mmap"] = len(prog)
    ins(_LD_ABS_W, _ARG2)
    ins(_AND, _PROT_WRITE | _PROT_EXEC)
    ins(_JEQ, _PROT_WRITE | _PROT_EXEC, "deny", "allow")
    labels["mprotect"] = len(prog)
    ins(_LD_ABS_W, _ARG2)
    ins(_JSET, _PROT_EXEC, "deny", "allow")
    labels["shmat"] = len(prog)
    ins(_LD_ABS_W, _ARG2)
    ins(_JSET, _SHM_EXEC, "deny", "allow")
    labels["deny"] = len(prog)
    ins(_RET, _EPERM)
    labels["allow"] = len(prog)
    ins(_RET, _ALLOW)
    out = []
    for i, (code, jt, jf, k) in enumerate(prog):
        rel = (lambda label: 0 if label is None else labels[label] - i - 1)
        out.append((code, rel(jt), rel(jf), k))
    return out


def install() -> None:
    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    insns = _program()
    array = (Filter * len(insns))(*[Filter(*i) for i in insns])
    prog = Prog(len(insns), array)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


if __name__ == "__main__":
    if len(sys.argv) < 2 or not supported():
        sys.exit("usage: seccomp_mdwe.py PROGRAM [ARGS...] (Linux x86_64 only)")
    install()
    os.execv(sys.argv[1], sys.argv[1:])
