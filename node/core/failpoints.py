"""Crash points for durability tests (CometBFT's libs/fail pattern).

With GOVCHAIN_FAIL_POINT=name:k the process dies (os._exit, like a power cut
of the process: no cleanup, no flush) the k-th time it passes fail_point(name);
with name:k:raise it raises instead, to test fail-stop on internal errors.
Unset, fail_point() costs one comparison.
"""
from __future__ import annotations

import os

EXIT_CODE = 99
POINTS = ("persist", "commit-block", "before-sync", "after-sync", "after-ack")  # the commit path
# a verification query: its log entry admitted / committed, the answer not yet sent (node/services/verify.py)
VERIFY_POINTS = ("verify-submitted", "verify-logged")


class FailPointError(RuntimeError):
    pass


def _parse(spec: str | None) -> tuple[str, int, bool] | None:
    if not spec:
        return None
    name, _, rest = spec.partition(":")
    count, _, mode = rest.partition(":")
    if name not in POINTS + VERIFY_POINTS:
        raise ValueError(f"GOVCHAIN_FAIL_POINT: unknown point {name!r}; points are {', '.join(POINTS + VERIFY_POINTS)}")
    return name, int(count or 1), mode == "raise"


_target = _parse(os.environ.get("GOVCHAIN_FAIL_POINT"))
_hits = 0


def fail_point(name: str) -> None:
    global _hits
    if _target is None or name != _target[0]:
        return
    _hits += 1
    if _hits == _target[1]:
        if _target[2]:
            raise FailPointError(f"fail point {name} hit {_hits} times")
        os._exit(EXIT_CODE)
