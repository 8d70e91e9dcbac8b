"""Confidence intervals for the rates the dashboards show, and judge-reviewer agreement.

Each bound names its method and paper (a project rule). Two library computations are written
out here for speed, because a page shows hundreds of intervals over up to millions of pairs:
the Wilson limits (the formula statsmodels evaluates) and PPI++ for a binary mean from counts
(what ppi_py computes from arrays); a third, Cohen's kappa, because importing statsmodels for
one formula cost every process that shows a page 1.3 s and 150 MB.
`tests/dashboards/analysis/test_intervals.py` holds all three equal to the libraries.
Newcombe's paired interval, which none of our libraries implements, is composed from Wilson
limits and cited. The normal quantile comes from `scipy.special`, imported at the first
interval (scipy costs a process that never draws one ~0.15 s and ~25 MB at start).

- `proportion(successes, n)`: a rate and its Wilson score interval (Wilson 1927, "Probable
  inference, the law of succession, and statistical inference", JASA 22:209-212), from
  the formula of `statsmodels.stats.proportion.proportion_confint(method="wilson")`. Method
  "Wilson 95%".
- `judge_only(judge_positive, judge_n)`: the same Wilson interval on the judge's own verdicts,
  i.e. the rate as the judge sees it, uncorrected for the judge's errors. It is shown beside
  the corrected `ppi_proportion` so a reader sees how far the judge alone is off. Method
  "judge only, Wilson 95%".
- `paired_difference(b_only, a_only, n, both=...)`: the difference p_B - p_A of two rates
  measured on the same n items (the candidate's refusal rate minus the primary's, on the same
  calls), estimated as (b_only - a_only) / n, with Newcombe's hybrid score interval for paired
  data: method 10 of Newcombe RG (1998), "Improved confidence intervals for the difference
  between binomial proportions based on paired data", Stat Med 17:2635-2650 (also called the
  "square-and-add" or MOVER-Wilson paired interval, e.g. Fagerland, Lydersen & Laake 2014,
  Stat Med 33:2850-2875). It is composed here: the continuity-free Wilson limits of each
  marginal rate come from statsmodels, and they are combined with Newcombe's
  continuity-corrected correlation estimate phi (formulas in `paired_difference`). Method
  "Newcombe paired 95%".
- `ppi_proportion(...)`: the rate of a property (e.g. "acceptable") among all judged pairs,
  corrected with reviewers' labels on a random sample, by prediction-powered inference
  (Angelopoulos, Bates, Fannjiang, Jordan & Zrnic 2023, "Prediction-powered inference",
  Science 382:669-674) with the power-tuned PPI++ estimator (Angelopoulos, Duchi & Zrnic 2023,
  "PPI++: Efficient prediction-powered inference", arXiv:2311.01453), from
  what `ppi_py.ppi_mean_pointestimate` and `ppi_py.ppi_mean_ci` compute, from counts (see
  `_ppi_mean`). The interval is a normal
  (CLT) interval, clipped to [0, 1]. Method "PPI++ 95%".
- `agreement(reviewer, judge)`: how often reviewer and judge give the same class, and Cohen's
  kappa (Cohen 1960, "A coefficient of agreement for nominal scales", Educational and
  Psychological Measurement 20:37-46), the formula of `statsmodels.stats.inter_rater.cohens_kappa`.

The level in a method name follows `confidence` ("Wilson 90%" for `confidence=0.9`).
"""

from __future__ import annotations

import functools
import math
import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with its confidence interval.

    `n` is the number of observations the interval rests on: items for `proportion` and
    `paired_difference`, judged pairs for `judge_only`, labelled pairs for `ppi_proportion`.
    `method` is the short name shown on pages ("Wilson 95%").
    """

    estimate: float
    lower: float
    upper: float
    n: int
    method: str

    def contains(self, value: float) -> bool:
        """Whether `value` lies in the closed interval [lower, upper]."""
        return self.lower <= value <= self.upper

    def as_dict(self) -> dict[str, float | int | str]:
        """The fields, for the JSON API."""
        return {
            "estimate": self.estimate,
            "lower": self.lower,
            "upper": self.upper,
            "n": self.n,
            "method": self.method,
        }


@dataclass(frozen=True, slots=True)
class Agreement:
    """Reviewer-judge agreement on `n` pairs: `agree` of them got the same class.

    `kappa` is Cohen's kappa, None when it is undefined (fewer than 2 pairs, or both sides
    gave one and the same class to every pair, so chance agreement is 1).
    """

    n: int
    agree: int
    kappa: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        """The fields, for the JSON API."""
        return {"n": self.n, "agree": self.agree, "kappa": self.kappa}


def proportion(successes: int, n: int, confidence: float = 0.95) -> Interval | None:
    """`successes / n` with its Wilson score interval (Wilson 1927); None when `n == 0`.

    Statsmodels' `proportion_confint(method="wilson")`, written out. The bound at 0 successes is set
    to exactly 0, and at `n` successes to exactly 1: that is where the Wilson limits lie, and
    the library's floating-point result can miss them by 1e-16.
    """
    return _wilson_interval(successes, n, confidence, f"Wilson {_level(confidence)}")


def judge_only(judge_positive: int, judge_n: int, confidence: float = 0.95) -> Interval | None:
    """The judge's own rate, `judge_positive / judge_n`, with its Wilson interval (Wilson 1927).

    Uncorrected for the judge's errors: shown beside `ppi_proportion`, never instead of it.
    None when `judge_n == 0`.
    """
    return _wilson_interval(
        judge_positive, judge_n, confidence, f"judge only, Wilson {_level(confidence)}"
    )


def paired_difference(
    b_only: int,
    a_only: int,
    n: int,
    confidence: float = 0.95,
    *,
    both: int = 0,
) -> Interval | None:
    """p_B - p_A for two rates measured on the same `n` items; None when `n == 0`.

    Counts: `b_only` items positive on B only, `a_only` on A only, `both` on both sides; the
    rest are negative on both. The marginal rates are p_B = (both + b_only) / n and
    p_A = (both + a_only) / n, the estimate is (b_only - a_only) / n. Pass `both`: the
    interval depends on it through the correlation between the sides (its default of 0 says
    that no item is positive on both sides).

    Interval: Newcombe (1998) method 10, Stat Med 17:2635-2650, composed here. With
    (l_B, u_B) and (l_A, u_A) the continuity-free Wilson limits of p_B and p_A (statsmodels),
    and in Newcombe's notation a = both, b = b_only, c = a_only, d = the rest,

        phi   = (ad - bc - n/2) / sqrt((a+b)(c+d)(a+c)(b+d))   if ad - bc > n/2
              = 0                                              if 0 <= ad - bc <= n/2
              = (ad - bc) / sqrt((a+b)(c+d)(a+c)(b+d))         if ad - bc < 0
              (0 when the denominator is 0),
        lower = D - sqrt((p_B - l_B)^2 - 2 phi (p_B - l_B)(u_A - p_A) + (u_A - p_A)^2),
        upper = D + sqrt((u_B - p_B)^2 - 2 phi (u_B - p_B)(p_A - l_A) + (p_A - l_A)^2),

    with D = p_B - p_A, clipped to [-1, 1]. Swapping A and B negates the interval.
    """
    _check_confidence(confidence)
    b_only, a_only, n, both = (operator.index(x) for x in (b_only, a_only, n, both))
    if min(b_only, a_only, n, both) < 0:
        raise ValueError("paired counts must not be negative")
    neither = n - both - b_only - a_only
    if neither < 0:
        raise ValueError(f"both + b_only + a_only = {n - neither} exceeds n = {n}")
    if n == 0:
        return None
    b_positive, a_positive = both + b_only, both + a_only
    p_b, p_a = b_positive / n, a_positive / n
    l_b, u_b = _wilson_limits(b_positive, n, confidence)
    l_a, u_a = _wilson_limits(a_positive, n, confidence)
    cross = both * neither - b_only * a_only  # ad - bc, exact in integers
    margins = b_positive * (n - b_positive) * a_positive * (n - a_positive)
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    elif cross > 0:
        phi = (cross - n / 2) / math.sqrt(margins)
    else:
        phi = cross / math.sqrt(margins)
    estimate = (b_only - a_only) / n
    down = _square_and_add(p_b - l_b, u_a - p_a, phi)
    up = _square_and_add(u_b - p_b, p_a - l_a, phi)
    return Interval(
        estimate=estimate,
        lower=max(-1.0, estimate - down),
        upper=min(1.0, estimate + up),
        n=n,
        method=f"Newcombe paired {_level(confidence)}",
    )


def ppi_proportion(
    *,
    truth: Sequence[bool],
    judge_on_labelled: Sequence[bool],
    judge_positive: int,
    judge_n: int,
    confidence: float = 0.95,
) -> Interval | None:
    """The rate of a property among judged pairs, corrected by reviewers' labels (PPI++).

    `truth` holds the reviewers' labels on a uniformly random sample of the judged pairs
    (True = the property holds), `judge_on_labelled` the judge's verdicts on those same pairs,
    in the same order; `judge_positive` of all `judge_n` judged pairs (the labelled ones
    included) got a positive verdict. None when fewer than 2 pairs are labelled, when
    `judge_n == 0`, or when every judged pair is labelled (nothing is left for the judge to
    add: read `proportion` on the labels).

    Method: prediction-powered inference for a mean (Angelopoulos et al. 2023, Science
    382:669-674) with PPI++ power tuning (Angelopoulos, Duchi & Zrnic 2023,
    arXiv:2311.01453), as `ppi_py.ppi_mean_pointestimate` and `ppi_py.ppi_mean_ci` with
    `lam=None` compute it (`_ppi_mean`): the weight given to the judge is picked from the data
    (0 when the judge is no help, giving the classical interval on the labels). When the
    judge gives one verdict to every pair its predictions carry no information and the
    tuning is 0/0, so `lam=0` is used instead. The interval is a normal (CLT) interval: with
    few labels, all of one class and matched by the judge, it can have width 0.

    Unlabelled set: the judged pairs minus the labelled ones, i.e.
    `judge_n - len(truth)` pairs of which `judge_positive - sum(judge_on_labelled)` are
    positive. PPI's analysis takes the labelled and unlabelled samples to be independent
    draws; subtracting the labelled pairs keeps them disjoint, at no cost since their verdicts
    are known. (When the judged total dwarfs the sample, counting them twice would change
    little, but it is not what the paper analyses.) The predictions arrive as counts and stay
    counts: the cost grows with the labels, not with `judge_n`. Raises ValueError when the
    counts cannot contain the labelled verdicts.

    The estimate and bounds are clipped to [0, 1]: the PPI estimate is a mean plus a
    correction and can step outside the range a rate can take.
    """
    _check_confidence(confidence)
    judge_positive, judge_n = operator.index(judge_positive), operator.index(judge_n)
    _check_count(judge_positive, judge_n)
    labels = np.asarray(truth, dtype=np.float64)
    verdicts = np.asarray(judge_on_labelled, dtype=np.float64)
    if labels.ndim != 1 or labels.shape != verdicts.shape:
        raise ValueError(
            f"truth and judge_on_labelled must be flat and of one length, "
            f"got shapes {labels.shape} and {verdicts.shape}"
        )
    if not (np.isin(labels, (0.0, 1.0)).all() and np.isin(verdicts, (0.0, 1.0)).all()):
        raise ValueError("truth and judge_on_labelled must hold booleans (or 0/1)")
    labelled = int(labels.size)
    if labelled < 2 or judge_n == 0:
        return None
    unlabelled = judge_n - labelled
    unlabelled_positive = judge_positive - int(verdicts.sum())
    if unlabelled < 0 or not 0 <= unlabelled_positive <= unlabelled:
        raise ValueError(
            f"the labelled pairs must be among the judged pairs: {labelled} labelled with "
            f"{int(verdicts.sum())} judged positive, but {judge_positive} of {judge_n} "
            f"judged positive in all"
        )
    if unlabelled == 0:
        return None
    estimate, low, high = _ppi_mean(
        labels,
        verdicts,
        unlabelled_positive,
        unlabelled,
        confidence,
        tune=judge_positive not in (0, judge_n),
    )
    return Interval(
        estimate=min(1.0, max(0.0, estimate)),
        lower=min(1.0, max(0.0, low)),
        upper=min(1.0, max(0.0, high)),
        n=labelled,
        method=f"PPI++ {_level(confidence)}",
    )


def _ppi_mean(
    labels: np.ndarray[Any, Any],
    verdicts: np.ndarray[Any, Any],
    positive: int,
    unlabelled: int,
    confidence: float,
    *,
    tune: bool,
) -> tuple[float, float, float]:
    """PPI++ for a mean of 0/1 labels, with the unlabelled 0/1 predictions given as a count.

    `ppi_py.ppi_mean_ci(Y, Yhat, Yhat_unlabeled, lam=None)` step by step, d = 1, unit
    weights: the unlabelled predictions enter only through their mean p and population
    variance p(1 - p), so an array of `unlabelled` zeros and ones (8 MB and ~100 ms at a
    million judged pairs) is never built. The tuning weight is PPI++'s
    lam = Cov(Y, Yhat) / ((1 + n/N) Var(Yhat over labelled and unlabelled)), clipped to
    [0, 1] (0 when `tune` is False: the judge gave one verdict to every pair). A test holds
    this equal to `ppi_py` on arrays.
    """
    n, big_n = labels.size, unlabelled
    p_unlabelled = positive / big_n
    lam = 0.0
    if tune:
        covariance = float(np.mean((labels - labels.mean()) * (verdicts - verdicts.mean())))
        total, ones = n + big_n, float(verdicts.sum()) + positive
        variance = (ones - ones * ones / total) / (total - 1)  # np.cov's ddof=1 over 0/1
        if variance > 0:
            lam = min(1.0, max(0.0, covariance / ((1.0 + n / big_n) * variance)))
    estimate = lam * p_unlabelled + float(np.mean(labels - lam * verdicts))
    imputed = lam * math.sqrt(p_unlabelled * (1.0 - p_unlabelled)) / math.sqrt(big_n)
    rectifier = float(np.std(labels - lam * verdicts)) / math.sqrt(n)
    half = _z(confidence) * math.sqrt(imputed * imputed + rectifier * rectifier)
    return estimate, estimate - half, estimate + half


def agreement(reviewer: Sequence[str], judge: Sequence[str]) -> Agreement:
    """How far reviewer and judge agree on the classes they gave the same pairs.

    `reviewer[i]` and `judge[i]` are the two classes given to pair i. Kappa is Cohen's (1960),
    (p_o - p_e) / (1 - p_e) with p_o the share agreed and p_e the agreement expected from the
    two sides' class shares (what statsmodels' `cohens_kappa` computes from the square table);
    it is None when undefined (fewer than 2 pairs, or a single class on both sides).
    """
    if len(reviewer) != len(judge):
        raise ValueError(f"{len(reviewer)} reviewer labels but {len(judge)} judge labels")
    n = len(reviewer)
    agree = sum(1 for mine, theirs in zip(reviewer, judge, strict=True) if mine == theirs)
    classes = sorted(set(reviewer) | set(judge))
    if n < 2 or len(classes) < 2:
        return Agreement(n=n, agree=agree, kappa=None)
    mine, theirs = Counter(reviewer), Counter(judge)
    observed = agree / n
    expected = sum(mine[c] * theirs[c] for c in classes) / (n * n)
    kappa = (observed - expected) / (1.0 - expected) if expected < 1.0 else math.nan
    return Agreement(n=n, agree=agree, kappa=kappa if math.isfinite(kappa) else None)


def _wilson_interval(successes: int, n: int, confidence: float, method: str) -> Interval | None:
    _check_confidence(confidence)
    successes, n = operator.index(successes), operator.index(n)
    _check_count(successes, n)
    if n == 0:
        return None
    lower, upper = _wilson_limits(successes, n, confidence)
    return Interval(estimate=successes / n, lower=lower, upper=upper, n=n, method=method)


@functools.cache
def _z(confidence: float) -> float:
    """The two-sided normal critical value, `scipy.stats.norm.isf((1 - confidence) / 2)`."""
    from scipy.special import ndtri  # what norm.isf evaluates, without scipy.stats' import

    return float(-ndtri((1.0 - confidence) / 2.0))


def _wilson_limits(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score limits, exact at 0 and n successes, within [0, 1].

    The formula statsmodels' `proportion_confint(method="wilson")` evaluates, written out:
    a page shows hundreds of intervals and the library call costs ~85 µs each against ~1 µs
    here. A test holds the two equal."""
    z = _z(confidence)
    p, z2 = successes / n, z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
    low, high = centre - half, centre + half
    lower = 0.0 if successes == 0 else max(0.0, float(low))
    upper = 1.0 if successes == n else min(1.0, float(high))
    return lower, upper


def _square_and_add(first: float, second: float, phi: float) -> float:
    """Newcombe's (1998) combination of two one-sided margins with correlation phi."""
    return math.sqrt(max(0.0, first * first - 2.0 * phi * first * second + second * second))


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _check_count(successes: int, n: int) -> None:
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")


def _level(confidence: float) -> str:
    """95% for 0.95, 99.5% for 0.995."""
    return f"{confidence * 100:.10g}%"
