"""Merkle tree over a block's transactions: RFC 6962 (§2.1) hashes and shape.

Leaves are hashed SHA-256(0x00 || item), interior nodes SHA-256(0x01 ||
left || right). The tree is built bottom-up and an odd node is promoted,
never duplicated, which gives exactly RFC 6962's MTH (the left subtree of n
leaves holds the largest power of two below n), so a block's tx_root has
RFC 6962 audit paths (docs/design.md, "Audit proofs").
"""
from __future__ import annotations

import hashlib

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(item: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + item).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _levels(items: list[bytes]):
    """Each level of the tree, leaves first, root last."""
    level = [leaf_hash(i) for i in items]
    yield level
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])  # an odd node is promoted, never duplicated
        level = paired
        yield level


def merkle_root(items: list[bytes]) -> bytes:
    if not items:
        return EMPTY_ROOT
    *_, root = _levels(items)
    return root[0]


def merkle_proof(items: list[bytes], index: int) -> list[tuple[bool, bytes]]:
    """Sibling path for items[index]: (sibling_is_left, sibling_hash) pairs,
    from the leaf up (certificate field disclosures: node/identity/fields.py)."""
    if not 0 <= index < len(items):
        raise IndexError(index)
    path: list[tuple[bool, bytes]] = []
    for level in _levels(items):
        sibling = index ^ 1
        if sibling < len(level):
            path.append((sibling < index, level[sibling]))
        index //= 2
    return path


def verify_proof(item: bytes, path: list[tuple[bool, bytes]], root: bytes) -> bool:
    h = leaf_hash(item)
    for sibling_is_left, sibling in path:
        h = _node(sibling, h) if sibling_is_left else _node(h, sibling)
    return h == root


def audit_path(items: list[bytes], index: int) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(index, items): the sibling hashes from the leaf
    up, without directions; root_from_audit_path derives them from the
    index and the tree size."""
    return [sibling for _, sibling in merkle_proof(items, index)]


def root_from_audit_path(item: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """The root a tree of `size` leaves has if items[index] is `item` and
    `path` is its audit path; None if no tree of that size has a path of that
    shape (RFC 9162 §2.1.3.2, which binds the leaf's position and the size)."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf_hash(item)
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None
