"""Thresholds carried to a new model: quantile matching and labelled search."""

from __future__ import annotations

import numpy as np
import pytest

from judge.embeddings import best_threshold, map_threshold, threshold_keeping


def test_quantile_mapping_is_exact_on_a_monotone_transform() -> None:
    old = np.random.default_rng(5).uniform(-0.2, 0.9, size=2000)

    def transform(x: np.ndarray) -> np.ndarray:
        return 0.7 + 0.3 * np.tanh(2 * x)  # strictly increasing, another range (e5-like)

    new = transform(old)
    for threshold in (float(old[17]), 0.55, 0.8):
        mapped = map_threshold(old, new, threshold)
        assert np.array_equal(old >= threshold, new >= mapped.new_threshold)  # the same pairs
        assert mapped.flag_rate_after == mapped.flag_rate_before
    exact = map_threshold(old, new, float(old[17]))
    assert exact.new_threshold == pytest.approx(float(transform(old[17])), abs=1e-12)
    # reusing the old threshold under the new model flags everything here
    assert map_threshold(old, new, 0.3).flag_rate_unchanged == 1.0


def test_quantile_mapping_edges() -> None:
    old, new = np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6, 0.7])
    above = map_threshold(old, new, 0.9)  # flags nothing: nothing flagged after either
    assert above.flag_rate_before == 0.0 and above.flag_rate_after == 0.0
    below = map_threshold(old, new, 0.0)
    assert below.new_threshold == 0.5 and below.flag_rate_after == 1.0
    with pytest.raises(ValueError):
        map_threshold([], new, 0.5)


def test_best_threshold_search() -> None:
    scores = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.5])
    assert best_threshold(scores, [True, True, True, False, False, False]) == 0.8
    assert best_threshold(scores, [False] * 6) > 0.9
    # noisy flags: the cut with the fewest disagreements
    assert best_threshold(scores, [True, True, False, True, False, False]) == 0.7


def test_threshold_keeping_precision_and_recall() -> None:
    rng = np.random.default_rng(6)
    old = rng.uniform(size=3000)
    labels = rng.uniform(size=3000) < old**2  # higher old score: more often relevant
    new = np.sqrt(old) * 0.4 + 0.5 + rng.normal(scale=0.01, size=3000)
    kept = threshold_keeping(old, new, labels, 0.7, keep="precision")
    assert kept.new_precision >= kept.old_precision
    # the lowest such cut: one step lower loses the precision
    lower = new[new < kept.new_threshold].max()
    flags = new >= lower
    assert (flags & labels).sum() / flags.sum() < kept.old_precision
    recall = threshold_keeping(old, new, labels, 0.7, keep="recall")
    assert recall.new_recall >= recall.old_recall
    higher = new[new > recall.new_threshold].min()
    assert ((new >= higher) & labels).sum() / labels.sum() < recall.old_recall
    # both land near the transform of the old threshold
    assert abs(kept.new_threshold - (np.sqrt(0.7) * 0.4 + 0.5)) < 0.03
