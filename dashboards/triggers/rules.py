"""From a rule and the figures of one arm (and its baseline) to a decision: fire, hold or clear.

Every function here works on counts, the way the store's aggregates hold them, and on numpy
arrays as well as scalars, so the simulations in the tests replay thousands of looks through
the very code the engine runs. The bounds are `dashboards.triggers.bounds` (anytime-valid).

A decision compares the interval with the rule's limit: *fire* when the whole interval is on
the bad side, *clear* when it is wholly on the good side, *hold* while it straddles the limit
or fewer than `min_pairs` pairs are in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dashboards.triggers import bounds


class Decision(StrEnum):
    FIRE = "fire"
    HOLD = "hold"
    CLEAR = "clear"


@dataclass(frozen=True, slots=True)
class Finding:
    """One evaluation: the figure, its interval, the limit it was held against."""

    decision: Decision
    n: int
    estimate: float
    lower: float
    upper: float
    limit: float


def decide(
    lower: ArrayLike,
    upper: ArrayLike,
    limit: float,
    *,
    bad_above: bool,
    n: ArrayLike,
    min_pairs: int,
) -> NDArray[np.str_]:
    """fire / hold / clear for each (lower, upper): bad above `limit`, or below it."""
    lo, hi, count = np.asarray(lower), np.asarray(upper), np.asarray(n)
    if bad_above:
        fire, clear = lo > limit, hi <= limit
    else:
        fire, clear = hi < limit, lo >= limit
    found = np.where(fire, Decision.FIRE.value, np.where(clear, Decision.CLEAR.value, "hold"))
    result: NDArray[np.str_] = np.where(count < min_pairs, Decision.HOLD.value, found)
    return result


def rate_against_level(
    hits: ArrayLike, n: ArrayLike, *, level: float, bad_above: bool, alpha: float, min_pairs: int
) -> tuple[NDArray[np.str_], NDArray[np.float64], NDArray[np.float64]]:
    """A rate against an absolute level (equivalence below 90%)."""
    lower, upper = bounds.rate_sequence(hits, n, alpha)
    return decide(lower, upper, level, bad_above=bad_above, n=n, min_pairs=min_pairs), lower, upper


def rate_difference(
    hits: ArrayLike,
    n: ArrayLike,
    base_hits: ArrayLike,
    base_n: ArrayLike,
    *,
    margin: float,
    bad_above: bool,
    alpha: float,
    min_pairs: int,
) -> tuple[NDArray[np.str_], NDArray[np.float64], NDArray[np.float64]]:
    """A rate minus another measured on other calls (the noise arm): each side's sequence at
    alpha/2, the difference bounded by their ends. Bad above `+margin` or below `-margin`."""
    lo, hi = bounds.rate_sequence(hits, n, alpha / 2)
    base_lo, base_hi = bounds.rate_sequence(base_hits, base_n, alpha / 2)
    lower, upper = lo - base_hi, hi - base_lo
    limit = margin if bad_above else -margin
    count = np.minimum(np.asarray(n), np.asarray(base_n))
    return (
        decide(lower, upper, limit, bad_above=bad_above, n=count, min_pairs=min_pairs),
        lower,
        upper,
    )


def paired_rate_difference(
    b_only: ArrayLike,
    a_only: ArrayLike,
    n: ArrayLike,
    *,
    margin: float,
    alpha: float,
    min_pairs: int,
) -> tuple[NDArray[np.str_], NDArray[np.float64], NDArray[np.float64]]:
    """B's rate minus A's on the same items, bad above `margin` (refusals: candidate − primary)."""
    _, lower, upper = bounds.paired_difference(b_only, a_only, n, alpha)
    return decide(lower, upper, margin, bad_above=True, n=n, min_pairs=min_pairs), lower, upper


QuantileFunction = Callable[[Sequence[float]], Sequence[float]]


def quantile_ratio(
    candidate: QuantileFunction,
    candidate_n: int,
    baseline: QuantileFunction,
    baseline_n: int,
    *,
    level: float,
    margin: float,
    alpha: float,
    min_pairs: int,
) -> Finding:
    """The candidate's `level` quantile over the baseline's, bad above 1 + margin.

    Each side's quantile is bounded at alpha/2 by the empirical quantile function at the levels
    `bounds.quantile_levels` gives (Howard & Ramdas 2022); a side's quantile function maps
    levels to values (the store's t-digest merge, or numpy on raw values in the tests)."""
    c_lo, c_hi = bounds.quantile_levels(level, candidate_n, alpha / 2)
    b_lo, b_hi = bounds.quantile_levels(level, baseline_n, alpha / 2)
    c_values = candidate([c_lo, level, c_hi])
    b_values = baseline([b_lo, level, b_hi])
    n = min(candidate_n, baseline_n)
    if n == 0 or b_values[0] <= 0 or b_values[1] <= 0:
        return Finding(Decision.HOLD, n, float("nan"), 0.0, float("inf"), 1 + margin)
    estimate = c_values[1] / b_values[1]
    lower = c_values[0] / b_values[2] if b_values[2] > 0 else 0.0
    upper = c_values[2] / b_values[0]
    decision = decide(lower, upper, 1 + margin, bad_above=True, n=n, min_pairs=min_pairs)
    return Finding(Decision(str(decision)), n, estimate, lower, upper, 1 + margin)
