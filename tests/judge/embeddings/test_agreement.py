"""Overlap@k, top-1, RBO (textbook cases) and the bootstrap estimates."""

from __future__ import annotations

import numpy as np
import pytest

from judge.embeddings import agreement, estimate, least_agreeing, overlap_at_k, rbo_ext, top_k
from judge.embeddings.neighbours import Neighbours


def rbo_by_definition(a: list[str], b: list[str], p: float) -> float:
    """Webber et al. 2010, eq. 32 for two lists of the same length k, written out."""
    k = len(a)
    x = [len(set(a[:d]) & set(b[:d])) for d in range(1, k + 1)]
    return (1 - p) / p * sum(x[d - 1] / d * p**d for d in range(1, k + 1)) + x[-1] / k * p**k


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("abcdefg", "zcavwxy"),  # two shared items, found at depth 3
        ("abcde", "bacde"),  # the first two swapped
        ("abcdefghij", "jihgfedcba"),  # reversed
    ],
)
def test_rbo_matches_its_definition(a: str, b: str) -> None:
    assert rbo_ext(list(a), list(b), 0.9) == pytest.approx(rbo_by_definition(list(a), list(b), 0.9))


def test_rbo_textbook_values() -> None:
    assert rbo_ext([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert rbo_ext([1, 2, 3], [4, 5, 6]) == 0.0
    # a swap of the top two: X_1 = 0, then full agreement; (1-p)/p·Σ_{d=2..5} p^d + p^5
    assert rbo_ext(list("abcde"), list("bacde")) == pytest.approx(
        (0.1 / 0.9) * sum(0.9**d for d in range(2, 6)) + 0.9**5
    )
    # disagreement at the top costs more than at the bottom (top-weighted)
    assert rbo_ext(list("abcde"), list("bacde")) < rbo_ext(list("abcde"), list("abced"))
    # a prefix of the other list: uneven lengths agree fully on what they share
    assert rbo_ext(list("abc"), list("abcdef")) == pytest.approx(1.0)
    assert rbo_ext(list("abc"), list("abcdef")) == rbo_ext(list("abcdef"), list("abc"))


def test_identical_spaces_agree_fully() -> None:
    rng = np.random.default_rng(2)
    q, d = rng.normal(size=(50, 8)), rng.normal(size=(400, 8))
    old = top_k(q, d, 10)
    new = top_k(q * 3, d * 0.5, 10)  # scaling changes no cosine
    result = agreement(old, new, k=10)
    assert result.overlap_mean.mean == 1.0 and result.top1_mean.mean == 1.0
    assert result.rbo_mean.mean == pytest.approx(1.0)
    assert (result.overlap_mean.low, result.overlap_mean.high) == (1.0, 1.0)


def test_shuffled_spaces_agree_by_chance_only() -> None:
    rng = np.random.default_rng(3)
    n_docs, k = 500, 10
    q, d = rng.normal(size=(400, 16)), rng.normal(size=(n_docs, 16))
    shuffled = d[rng.permutation(n_docs)]  # each document gets another's vector
    result = agreement(top_k(q, d, k), top_k(q, shuffled, k), k=k, resamples=500)
    chance = k / n_docs
    assert result.overlap_mean.low <= chance <= result.overlap_mean.high
    assert result.overlap_mean.mean == pytest.approx(chance, abs=0.01)


def test_overlap_per_query_segments_and_least_agreeing() -> None:
    old = Neighbours(
        indices=np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 2, 3]]),
        scores=np.ones((4, 3), np.float32),
    )
    new = Neighbours(
        indices=np.array([[1, 2, 3], [6, 5, 0], [0, 10, 11], [3, 2, 1]]),
        scores=np.ones((4, 3), np.float32),
    )
    assert overlap_at_k(old.indices, new.indices, 3).tolist() == pytest.approx([1, 2 / 3, 0, 1])
    result = agreement(old, new, k=3, segments=["a", "a", "b", "b"], resamples=200)
    assert result.top1.tolist() == [1, 0, 0, 0]
    assert set(result.segments) == {"a", "b"}
    assert result.segments["a"][0].mean == pytest.approx(5 / 6)
    worst = least_agreeing(result, old, new, n=2)
    assert [w.query for w in worst] == [2, 1]
    assert worst[0].old == (7, 8, 9) and worst[0].new == (0, 10, 11)
    # same overlap: the lower RBO (order reversed) comes first
    assert least_agreeing(result, old, new, n=4)[2].query == 3


def test_estimate_interval_covers_the_mean() -> None:
    values = np.random.default_rng(4).uniform(size=300)
    result = estimate(values, resamples=1000)
    assert result.low < result.mean < result.high
    assert result.high - result.low < 0.1
    assert result.n == 300
    with pytest.raises(ValueError):
        estimate([])
    assert (estimate([0.0, 1.0]).low, estimate([0.0, 1.0]).high) == (0.0, 1.0)
    # a sample where BCa is degenerate still gets a finite interval around its mean
    rare = estimate([0.0] * 50 + [1.0], resamples=500)
    assert rare.low <= rare.mean <= rare.high and np.isfinite(rare.high)
