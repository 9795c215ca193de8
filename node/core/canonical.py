"""Canonical JSON: one byte string per JSON value (sorted keys, no
whitespace, UTF-8, no NaN or Infinity), for whatever is hashed, signed or
stored so that every node holds the same bytes (docs/design.md, "Records")."""
from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()
