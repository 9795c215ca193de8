"""Quorum arithmetic (PBFT §3): the one place that counts votes.

n replicas tolerate f = (n-1)//3 Byzantine ones. A quorum is the smallest
set such that any two quorums share at least f+1 replicas, hence at least
one correct one: ceil((n+f+1)/2), which is 2f+1 when n = 3f+1.
"""
from __future__ import annotations

from collections.abc import Iterable


def max_faulty(n: int) -> int:
    if n < 1:
        raise ValueError("a chain needs at least one validator")
    return (n - 1) // 3


def quorum_size(n: int) -> int:
    return (n + max_faulty(n)) // 2 + 1


def weak_quorum_size(n: int) -> int:
    """f+1: enough replicas that at least one of them is correct."""
    return max_faulty(n) + 1


def distinct(voters: Iterable[int], n: int) -> int:
    """Number of distinct valid replica indices among `voters`."""
    return len({v for v in voters if 0 <= v < n})


def has_quorum(voters: Iterable[int], n: int) -> bool:
    return distinct(voters, n) >= quorum_size(n)


def has_weak_quorum(voters: Iterable[int], n: int) -> bool:
    return distinct(voters, n) >= weak_quorum_size(n)
