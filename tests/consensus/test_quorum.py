"""consensus/quorum.py against a naive oracle (docs/design.md, Rule 4; Castro &
Liskov OSDI'99 §3 / TOCS'02 §2: n >= 3f+1, quorums of 2f+1 intersect in at
least f+1 replicas, hence in at least one correct one).

The oracle is written from the definitions only: f is the largest integer
with 3f+1 <= n, a quorum is the smallest size q such that any two sets of q
replicas out of n share at least f+1 members (by pigeonhole: 2q - n >= f+1),
and for small n the intersection claim is checked by brute force over every
pair of subsets.
"""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import quorum

N = st.integers(min_value=1, max_value=100)


def oracle_f(n: int) -> int:
    f = 0
    while 3 * (f + 1) + 1 <= n:
        f += 1
    return f


def oracle_quorum(n: int) -> int:
    f = oracle_f(n)
    return next(q for q in range(1, n + 1) if 2 * q - n >= f + 1)


def min_pairwise_intersection(n: int, q: int) -> int:
    """Brute force: the smallest |A ∩ B| over all q-subsets A, B of range(n)."""
    subsets = [frozenset(s) for s in itertools.combinations(range(n), q)]
    return min(len(a & b) for a in subsets for b in subsets)


@given(N)
def test_quorum_max_faulty_matches_oracle(n: int) -> None:
    assert quorum.max_faulty(n) == oracle_f(n)
    assert 3 * quorum.max_faulty(n) + 1 <= n


@given(N)
def test_quorum_size_matches_oracle_and_is_minimal(n: int) -> None:
    """§3: any two quorums intersect in >= f+1 replicas, and no smaller size
    guarantees that (the smallest size keeps liveness with f crashed)."""
    f, q = quorum.max_faulty(n), quorum.quorum_size(n)
    assert q == oracle_quorum(n)
    assert 2 * q - n >= f + 1  # pigeonhole intersection bound
    assert q == 1 or 2 * (q - 1) - n < f + 1  # q-1 would not be enough
    assert q <= n - f  # live: the n-f correct replicas alone form a quorum


@given(st.integers(min_value=0, max_value=33))
def test_quorum_size_is_2f_plus_1_when_n_is_3f_plus_1(f: int) -> None:
    n = 3 * f + 1
    assert quorum.max_faulty(n) == f
    assert quorum.quorum_size(n) == 2 * f + 1
    assert quorum.weak_quorum_size(n) == f + 1


@pytest.mark.parametrize("n", range(1, 11))
def test_quorum_any_two_quorums_intersect_in_f_plus_1_brute_force(n: int) -> None:
    """Exhaustive for n <= 10: every pair of quorum-sized replica sets shares
    at least f+1 replicas, i.e. at least one correct replica."""
    q, f = quorum.quorum_size(n), quorum.max_faulty(n)
    assert min_pairwise_intersection(n, q) >= f + 1
    if q > 1:  # one smaller and the guarantee breaks: the size is tight
        assert min_pairwise_intersection(n, q - 1) < f + 1


@settings(max_examples=200)
@given(N, st.data())
def test_quorum_sampled_quorums_intersect_in_f_plus_1(n: int, data: st.DataObject) -> None:
    """For every n up to 100: two arbitrary quorums share >= f+1 replicas."""
    q, f = quorum.quorum_size(n), quorum.max_faulty(n)
    a = data.draw(st.sets(st.integers(0, n - 1), min_size=q, max_size=n))
    b = data.draw(st.sets(st.integers(0, n - 1), min_size=q, max_size=n))
    assert quorum.has_quorum(a, n) and quorum.has_quorum(b, n)
    assert len(a & b) >= f + 1


@given(N, st.lists(st.integers(min_value=-5, max_value=110), max_size=60))
def test_quorum_distinct_ignores_duplicates_and_out_of_range_ids(n: int, voters: list[int]) -> None:
    expected = len({v for v in voters if 0 <= v < n})
    assert quorum.distinct(voters, n) == expected
    assert quorum.distinct(iter(voters), n) == expected  # a one-shot iterable works too
    assert quorum.has_quorum(voters, n) == (expected >= oracle_quorum(n))
    assert quorum.has_weak_quorum(voters, n) == (expected >= oracle_f(n) + 1)


@given(N, st.integers(min_value=0, max_value=99), st.integers(min_value=1, max_value=300))
def test_quorum_one_replica_voting_many_times_counts_once(n: int, voter: int, times: int) -> None:
    """A Byzantine replica repeating its vote is still one vote (docs/testing.md D3)."""
    voter %= n
    assert quorum.distinct([voter] * times, n) == 1
    assert quorum.has_quorum([voter] * times, n) == (quorum.quorum_size(n) == 1)


@given(N, st.integers(min_value=1, max_value=50))
def test_quorum_out_of_range_ids_never_make_a_quorum(n: int, extra: int) -> None:
    q = quorum.quorum_size(n)
    bogus = [n + i for i in range(extra)] + [-1 - i for i in range(extra)]
    real = list(range(q - 1))
    assert not quorum.has_quorum(real + bogus, n)
    assert quorum.has_quorum(real + [q - 1] + bogus, n)


def test_quorum_rejects_an_empty_validator_set() -> None:
    with pytest.raises(ValueError):
        quorum.max_faulty(0)
    with pytest.raises(ValueError):
        quorum.quorum_size(0)
