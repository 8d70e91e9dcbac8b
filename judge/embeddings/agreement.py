"""How far two models' neighbour lists agree, per query, with bootstrap intervals.

Per query, for the old model's list ``a`` and the new model's list ``b`` (best first):

- ``overlap@k`` = |top-k(a) ∩ top-k(b)| / k, the share of the old neighbours the new model
  still returns (order ignored);
- ``top-1`` agreement: 1 when both put the same document first;
- rank-biased overlap, extrapolated (RBO_EXT, equation 32 of Webber, Moffat & Zobel, "A
  Similarity Measure for Indefinite Rankings", ACM TOIS 28(4), 2010), with persistence
  ``p = 0.9`` (the top 10 ranks carry ~86% of the weight): order-aware, 1 for identical lists.

Means get 95% bootstrap confidence intervals over queries (``scipy.stats.bootstrap``, BCa —
bias-corrected and accelerated, Efron 1987 — with 2,000 resamples and a fixed seed; the
percentile interval where scipy finds BCa undefined); when every value is the same the
interval is that value. Segments (any
label per query, e.g. the traffic segment) get the same estimates. ``least_agreeing`` lists the
queries whose lists differ most, with both lists side by side as document indices; the caller
maps indices to ids and texts. Pure numpy/scipy; no I/O.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from .neighbours import Neighbours

Values = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A mean over queries with its confidence interval."""

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True, slots=True)
class QueryDisagreement:
    """One query whose neighbour lists differ, both lists as document indices, best first."""

    query: int
    overlap: float
    rbo: float
    old: tuple[int, ...]
    new: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Agreement:
    """Per-query figures (arrays aligned with the queries) and their estimates."""

    k: int
    overlap: Values
    top1: Values
    rbo: Values
    overlap_mean: Estimate
    top1_mean: Estimate
    rbo_mean: Estimate
    segments: dict[str, tuple[Estimate, Estimate, Estimate]]
    """Segment label -> (overlap@k, top-1, RBO) estimates."""


def overlap_at_k(old: npt.ArrayLike, new: npt.ArrayLike, k: int) -> Values:
    """Per row, the share of the first ``k`` old entries among the first ``k`` new ones."""
    a, b = np.asarray(old)[:, :k], np.asarray(new)[:, :k]
    if a.shape[1] < k or b.shape[1] < k:
        raise ValueError(f"both lists need at least k={k} entries")
    hits = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)
    return np.asarray(hits / k, dtype=np.float64)


def rbo_ext(old: Sequence[int], new: Sequence[int], p: float = 0.9) -> float:
    """Extrapolated rank-biased overlap of two rankings without repeats (Webber et al. 2010,
    eq. 32 for lists of the same length; eq. 30–32 with the shorter list ``s`` and longer
    ``l`` otherwise)."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    short, long = (list(old), list(new)) if len(old) <= len(new) else (list(new), list(old))
    s, n = len(short), len(long)
    if n == 0:
        return 1.0
    if s == 0:
        return 0.0
    seen_short: set[int] = set()
    seen_long: set[int] = set()
    overlap = 0
    x = [0] * (n + 1)  # x[d]: overlap of the two prefixes of depth d
    for d in range(1, n + 1):
        item_l = long[d - 1]
        if d <= s:
            item_s = short[d - 1]
            if item_s == item_l:
                overlap += 1
            else:
                overlap += (item_s in seen_long) + (item_l in seen_short)
            seen_short.add(item_s)
        else:
            overlap += item_l in seen_short
        seen_long.add(item_l)
        x[d] = overlap
    x_s, x_l = x[s], x[n]
    total = sum(x[d] / d * p**d for d in range(1, n + 1))
    total += sum(x_s * (d - s) / (s * d) * p**d for d in range(s + 1, n + 1))
    return float((1 - p) / p * total + ((x_l - x_s) / n + x_s / s) * p**n)


def estimate(values: npt.ArrayLike, *, resamples: int = 2000, seed: int = 0) -> Estimate:
    """The mean and its 95% BCa bootstrap interval (the value itself when all are equal, the
    range below three values)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("no values to estimate from")
    mean = float(data.mean())
    if np.all(data == data[0]):
        return Estimate(mean=mean, low=mean, high=mean, n=int(data.size))
    if data.size < 3:  # too few to resample: the range, which holds the mean
        return Estimate(mean=mean, low=float(data.min()), high=float(data.max()), n=data.size)
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            # BCa is undefined for some samples (scipy warns and returns nan): then percentile
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            interval = stats.bootstrap(
                (data,),
                np.mean,
                n_resamples=resamples,
                confidence_level=0.95,
                method=method,
                rng=np.random.default_rng(seed),
            ).confidence_interval
        if np.isfinite(interval.low) and np.isfinite(interval.high):
            break
    return Estimate(mean=mean, low=float(interval.low), high=float(interval.high), n=data.size)


def agreement(
    old: Neighbours,
    new: Neighbours,
    *,
    k: int = 10,
    p: float = 0.9,
    segments: Sequence[str] | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> Agreement:
    """Agreement of two neighbour lists for the same queries, overall and per segment."""
    if len(old) != len(new):
        raise ValueError(f"{len(old)} old neighbour lists but {len(new)} new ones")
    if segments is not None and len(segments) != len(old):
        raise ValueError("segments needs one label per query")
    overlap = overlap_at_k(old.indices, new.indices, k)
    top1 = (old.indices[:, 0] == new.indices[:, 0]).astype(np.float64)
    rbo = np.array(
        [rbo_ext(a.tolist(), b.tolist(), p) for a, b in zip(old.indices, new.indices, strict=True)]
    )

    def three(rows: npt.NDArray[np.bool_] | slice) -> tuple[Estimate, Estimate, Estimate]:
        return (
            estimate(overlap[rows], resamples=resamples, seed=seed),
            estimate(top1[rows], resamples=resamples, seed=seed),
            estimate(rbo[rows], resamples=resamples, seed=seed),
        )

    by_segment = {}
    if segments is not None:
        labels = np.asarray(segments)
        by_segment = {str(label): three(labels == label) for label in sorted(set(segments))}
    overall = three(slice(None))
    return Agreement(
        k=k,
        overlap=overlap,
        top1=top1,
        rbo=rbo,
        overlap_mean=overall[0],
        top1_mean=overall[1],
        rbo_mean=overall[2],
        segments=by_segment,
    )


def least_agreeing(
    result: Agreement, old: Neighbours, new: Neighbours, n: int = 10
) -> list[QueryDisagreement]:
    """The ``n`` queries with the lowest overlap@k (then the lowest RBO), lists side by side."""
    order = np.lexsort((np.arange(len(result.overlap)), result.rbo, result.overlap))[:n]
    return [
        QueryDisagreement(
            query=int(q),
            overlap=float(result.overlap[q]),
            rbo=float(result.rbo[q]),
            old=tuple(int(i) for i in old.indices[q]),
            new=tuple(int(i) for i in new.indices[q]),
        )
        for q in order
    ]
