"""Merkle root over transaction ids (RFC 6962 style leaf/node prefixes)."""
from __future__ import annotations

import hashlib

EMPTY_ROOT = hashlib.sha256(b"").digest()


def _leaf(item: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + item).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(items: list[bytes]) -> bytes:
    if not items:
        return EMPTY_ROOT
    level = [_leaf(i) for i in items]
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])  # an odd node is promoted, never duplicated
        level = paired
    return level[0]


def merkle_proof(items: list[bytes], index: int) -> list[tuple[bool, bytes]]:
    """Sibling path for items[index]: (sibling_is_left, sibling_hash) pairs."""
    if not 0 <= index < len(items):
        raise IndexError(index)
    level = [_leaf(i) for i in items]
    path: list[tuple[bool, bytes]] = []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append((sibling < index, level[sibling]))
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level, index = paired, index // 2
    return path


def verify_proof(item: bytes, path: list[tuple[bool, bytes]], root: bytes) -> bool:
    h = _leaf(item)
    for sibling_is_left, sibling in path:
        h = _node(sibling, h) if sibling_is_left else _node(h, sibling)
    return h == root
