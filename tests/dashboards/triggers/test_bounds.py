"""The anytime-valid bounds: equal to savvi's test, and covering the truth at every look."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dashboards.triggers import bounds


def test_log_odds_are_savvis() -> None:
    with warnings.catch_warnings():
        from savvi.multinomial import Multinomial
    rng = np.random.default_rng(4)
    for _ in range(200):
        trials = int(rng.integers(1, 50_000))
        successes = int(rng.integers(0, trials + 1))
        p = float(rng.uniform(0.001, 0.999))
        test = Multinomial(0.05, np.array([p, 1 - p]), k=bounds.K)
        with np.errstate(over="ignore"):
            test.update(np.array([successes, trials - successes]))
            odds = test.odds
        mine = float(bounds.log_odds(successes, trials, p))
        if np.isfinite(odds) and odds > 0:
            assert mine == pytest.approx(np.log(odds), rel=1e-9, abs=1e-9)
        else:
            assert mine > 700  # savvi's exp overflowed: overwhelming evidence against p


def test_rate_sequences_cover_the_truth_at_every_look() -> None:
    rng = np.random.default_rng(6)
    looks = np.arange(20, 5001, 20)
    for p in (0.02, 0.3, 0.9):
        hits = rng.binomial(20, p, size=(400, looks.size)).cumsum(axis=1)
        lower, upper = bounds.rate_sequence(hits, np.broadcast_to(looks, hits.shape), 0.05)
        missed = ((lower > p) | (upper < p)).any(axis=1).mean()
        assert missed <= 0.05, (p, missed)
        assert (lower <= hits / looks).all() and (hits / looks <= upper).all()


def test_edges() -> None:
    assert bounds.rate(0, 0, 0.05) is None
    none = bounds.rate(0, 500, 0.05)
    every = bounds.rate(500, 500, 0.05)
    assert none is not None and none.lower == 0.0 and 0 < none.upper < 0.05
    assert every is not None and every.upper == 1.0 and 0.95 < every.lower < 1
    assert bounds.quantile_levels(0.99, 0, 0.05) == (0.0, 1.0)
    low, high = bounds.quantile_levels(0.99, 20_000, 0.05)
    assert 0.985 < low < 0.99 < high < 0.995


def test_paired_difference_width_follows_the_discordant_pairs() -> None:
    _, low_few, high_few = bounds.paired_difference(60, 20, 4000, 0.05)
    _, low_many, high_many = bounds.paired_difference(600, 200, 4000, 0.05)
    assert low_few < 0.01 < high_few
    # the same difference, ten times the discordant pairs: a wider interval in points
    assert high_many - low_many > high_few - low_few
