"""The trigger engine's statistics by simulation (the acceptance of the triggers issue).

Every rule is evaluated after every 50 pairs up to 20,000 (400 looks) in 500 simulated
migrations; a fixed-sample test looked at that often would fire on noise in most of them.
`tests/benchmarks/trigger_power.py` prints the figures these tests assert.
"""

from __future__ import annotations

import numpy as np

from tests.dashboards.triggers import simulate as sim

RUNS = 500


def test_no_difference_fires_in_at_most_5_percent() -> None:
    rng = np.random.default_rng(11)
    # margin 0: the strictest case, any excess over the primary counts
    strict = sim.paired_refusals(rng, RUNS, 0.02, 0.02, margin=0.0)
    assert strict.fire_rate <= 0.05
    playbook = sim.paired_refusals(rng, RUNS, 0.02, 0.02, margin=0.005)
    assert playbook.fire_rate <= 0.05
    # equivalence at 93% against a 90% floor: it never should fire; at exactly 90% neither
    assert sim.rate_level(rng, RUNS, 0.93, level=0.90, bad_above=False).fire_rate <= 0.05
    assert sim.rate_level(rng, RUNS, 0.90, level=0.90, bad_above=False).fire_rate <= 0.05


def test_a_one_point_refusal_rise_fires() -> None:
    rng = np.random.default_rng(12)
    rise = sim.paired_refusals(rng, 200, 0.02, 0.03, margin=0.005, every=500, up_to=100_000)
    assert rise.fire_rate >= 0.95
    assert 5_000 < rise.median_pairs < 60_000


def test_equivalence_below_the_floor_fires() -> None:
    rng = np.random.default_rng(13)
    low = sim.rate_level(rng, RUNS, 0.85, level=0.90, bad_above=False)
    assert low.fire_rate >= 0.99


def test_latency_tail_shift_of_40_percent_fires_and_10_percent_does_not() -> None:
    rng = np.random.default_rng(14)
    slow = sim.latency_tail(rng, 24, 0.40, margin=0.30, every=1000, up_to=60_000)
    assert slow.fire_rate >= 0.9
    fine = sim.latency_tail(rng, 24, 0.10, margin=0.30, every=1000, up_to=60_000)
    assert fine.fire_rate == 0.0


def test_twenty_segments_one_regression_family_wise() -> None:
    """20 segments under one rule share its alpha (Bonferroni): over the 19 healthy ones the
    chance that any fires stays under 5%, while the regressed one still fires."""
    rng = np.random.default_rng(15)
    segments, runs = 20, 300
    healthy = sim.paired_refusals(
        rng,
        runs * (segments - 1),
        0.02,
        0.02,
        margin=0.0,
        alpha=0.05 / segments,
        every=100,
        up_to=10_000,
    ).fired.reshape(segments - 1, runs)
    family = healthy.any(axis=0).mean()
    assert family <= 0.05
    sick = sim.paired_refusals(
        rng, runs, 0.02, 0.05, margin=0.0, alpha=0.05 / segments, every=100, up_to=10_000
    )
    assert sick.fire_rate >= 0.9
