"""Admission pacing under overload (node/chain/pacer.py; issue 7 §6): a
pressed node spaces its calls at PROBE x its best recent commit rate, admits
none while the backlog it sees has no room, and stops pacing once demand
falls below the pace."""
from __future__ import annotations

import math

import pytest

from node.chain.pacer import (CALL, IDLE_S, PEAK_WINDOW_S, PROBE, SLOW_START_DOUBLING_S, SLOW_START_DOUBLINGS,
                              SLOW_START_S, AdmissionPacer, PeakRate)


def test_peak_rate_is_the_best_whole_second_of_the_window() -> None:
    peak = PeakRate()
    peak.add(100.2, 300)
    peak.add(100.9, 200)
    peak.add(101.5, 100)
    assert peak.peak(100.95) == 0  # second 100 is not over yet
    assert peak.peak(101.6) == 500
    peak.add(102.1, 900)  # the current second does not count until it ends
    assert peak.peak(102.5) == 500
    assert peak.peak(103.0) == 900
    assert peak.peak(102 + PEAK_WINDOW_S + 0.5) == 900
    assert peak.peak(102 + PEAK_WINDOW_S + 1.5) == 0  # forgotten
    for second in range(200, 400):
        peak.add(second + 0.5, 1)
    assert len(peak._bins) <= PEAK_WINDOW_S + 1  # a node adds a bin a second for as long as it runs


def test_a_node_that_is_not_pressed_is_not_paced() -> None:
    pacer = AdmissionPacer()
    for t in range(5):
        assert pacer.allows(t * 0.001, own_peak=0, crowded=True)
        pacer.take(CALL)
    assert pacer.rate is None


def _admissions(pacer: AdmissionPacer, own_peak: float, seconds: float, *, every: float = 0.005,
                crowded=lambda t: False) -> list[float]:
    """Offer a call of CALL every `every` s (a 10 x overload's spacing); the times admitted."""
    admitted = []
    for i in range(round(seconds / every)):
        t = 1.0 + i * every
        if pacer.allows(t, own_peak, crowded(t)):
            pacer.take(CALL)
            admitted.append(t)
    return admitted


def test_a_pressed_node_spaces_its_calls_at_probe_times_its_best_rate() -> None:
    pacer = AdmissionPacer()
    pacer.pressed(1.0, queued=True)
    admitted = _admissions(pacer, own_peak=1000, seconds=2.0)
    assert pacer.rate == pytest.approx(PROBE * 1000)
    gaps = [b - a for a, b in zip(admitted, admitted[1:])]
    interval = CALL / (PROBE * 1000)
    assert all(interval - 0.005 <= g <= interval + 0.005 for g in gaps)
    assert len(admitted) * CALL == pytest.approx(2.0 * PROBE * 1000, rel=0.06)


def test_slow_start_doubles_the_pace_until_a_transaction_waits_long() -> None:
    """Pressed from idle, the node knows no rate: its pace starts at one call
    a second and doubles every SLOW_START_DOUBLING_S, up to 2**SLOW_START_DOUBLINGS
    calls a second, until the backlog rule refuses with its oldest transaction
    waiting long; then the pace follows its best rate, which is at least one
    call a second."""
    pacer = AdmissionPacer()
    pacer.pressed(1.0, queued=False)
    # 1 call at once, then the integral of CALL * 2**(t / step) over the second, in calls
    doublings = 1.0 / SLOW_START_DOUBLING_S
    calls = 1 + (2 ** doublings - 1) * SLOW_START_DOUBLING_S / math.log(2)
    assert abs(len(_admissions(pacer, own_peak=0, seconds=1.0)) - calls) <= 1
    pacer.allows(1.0 + 2 * SLOW_START_DOUBLING_S, own_peak=0, crowded=False)
    assert pacer.rate == pytest.approx(CALL * 2 ** 2)
    pacer.pressed(1.0 + 2 * SLOW_START_DOUBLING_S, queued=False)  # refused on its count of work alone: still slow start
    pacer.allows(1.0 + 3 * SLOW_START_DOUBLING_S, own_peak=0, crowded=False)
    assert pacer.rate == pytest.approx(CALL * 2 ** 3)
    pacer.allows(1.0 + (SLOW_START_DOUBLINGS + 2) * SLOW_START_DOUBLING_S, own_peak=0, crowded=False)
    assert pacer.rate == pytest.approx(CALL * 2 ** SLOW_START_DOUBLINGS)
    pacer.pressed(3.5, queued=True)
    pacer.allows(3.6, own_peak=0, crowded=False)
    assert pacer.rate == CALL
    pacer.allows(3.7, own_peak=700, crowded=False)
    assert pacer.rate == pytest.approx(PROBE * 700)


def test_slow_start_ends_after_slow_start_s_even_if_no_transaction_waits() -> None:
    pacer = AdmissionPacer()
    pacer.pressed(1.0, queued=False)
    pacer.allows(1.0 + SLOW_START_S - 0.5, own_peak=0, crowded=True)
    assert pacer.rate == pytest.approx(CALL * 2 ** SLOW_START_DOUBLINGS)
    pacer.allows(1.0 + SLOW_START_S, own_peak=300, crowded=True)
    assert pacer.rate == pytest.approx(PROBE * 300)


def test_nothing_is_admitted_while_the_backlog_is_crowded() -> None:
    pacer = AdmissionPacer()
    pacer.pressed(1.0, queued=True)
    interval = CALL / (PROBE * 1000)
    admitted = _admissions(pacer, own_peak=1000, seconds=1.0, crowded=lambda t: 1.2 <= t < 1.5)
    assert not [t for t in admitted if 1.2 <= t < 1.5]
    assert [t for t in admitted if t < 1.2] and min(t for t in admitted if t >= 1.5) < 1.5 + interval


def test_the_debt_is_at_most_one_call() -> None:
    """Calls that start in one event-loop turn pass together; the node then
    waits one call's worth of its pace, not one per call."""
    pacer = AdmissionPacer()
    pacer.pressed(1.0, queued=True)
    assert pacer.allows(1.01, own_peak=1000, crowded=False)
    for _ in range(5):
        pacer.take(CALL)
    interval = CALL / (PROBE * 1000)
    assert not pacer.allows(1.01 + 0.9 * interval, own_peak=1000, crowded=False)
    assert pacer.allows(1.01 + 1.1 * interval, own_peak=1000, crowded=False)  # not 5 intervals


def test_others_load_does_not_keep_a_node_with_little_demand_paced() -> None:
    """A node pressed once, then offered a call every 0.5 s while the backlog
    it sees stays crowded by other nodes: its full bucket shows its demand is
    low, so it stops pacing 2 s after it was last held back on its own."""
    pacer = AdmissionPacer()
    pacer.pressed(1.0, queued=True)
    for t in (1.5, 2.0, 2.5, 3.0):
        assert not pacer.allows(t, own_peak=0, crowded=True)
    assert pacer.rate is not None
    assert pacer.allows(3.6, own_peak=0, crowded=False)
    assert pacer.rate is None


def test_pacing_stops_when_demand_stays_below_the_pace() -> None:
    pacer = AdmissionPacer()
    pacer.pressed(1.0, queued=True)
    assert _admissions(pacer, own_peak=1000, seconds=0.5)  # pressed: paced
    assert pacer.rate is not None
    t = 2.0  # then one call a second, far below the pace: the bucket stays full
    while pacer.rate is not None and t < 2.0 + 3 * IDLE_S:
        assert pacer.allows(t, 1000, crowded=False)
        pacer.take(CALL)
        t += 1.0
    assert pacer.rate is None and t <= 2.0 + IDLE_S + 2.0
