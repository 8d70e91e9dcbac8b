"""Anytime-valid bounds: intervals that stay valid when a rule is evaluated again and again.

A fixed-sample interval checked every minute fires on noise sooner or later (Kayenta's repeated
Mann-Whitney looks, a fixed threshold in Flagger); a *confidence sequence* covers the truth at
every look at once, with probability 1 - alpha, so a rule may be checked as often as wanted.

- **A rate** p (equivalence, worse, format drift, errors): the Dirichlet-multinomial mixture
  test of Lindon & Malek (2022, "Anytime-valid inference for multinomial count data", NeurIPS;
  `savvi.multinomial.Multinomial`, the test behind Netflix's sequential canary checks) with two
  cells, theta_0 = (p, 1 - p) and prior concentration `k`. Its posterior odds against p are a
  nonnegative martingale under p, so by Ville's inequality they exceed 1/alpha at *any* time
  with probability at most alpha; the confidence sequence is every p not rejected. The odds
  depend on the counts only:
  log odds = B(k p + S, k (1 - p) + t - S) - B(k p, k (1 - p)) - S log p - (t - S) log(1 - p),
  with B the log beta function (`scipy.special.betaln`). This is savvi's `update_odds` written
  out and vectorised over many looks (savvi builds one object per p; the simulations here ask
  for millions); `tests/dashboards/triggers/test_bounds.py` holds the two equal.
- **A paired difference** of two rates on the same calls (the candidate's refusal rate minus
  the primary's): Delta = pi (2 q - 1), with pi the share of discordant pairs (one side refuses,
  the other does not) and q the share of those where the candidate is the one refusing — the
  decomposition behind McNemar's test, which uses the pairing: the width follows the discordant
  pairs, not the refusals. Confidence sequences for pi (over all pairs, at alpha/5: it is
  measured on every pair, so it is the narrow one) and q (over the discordant pairs, themselves
  an i.i.d. sequence, at 4 alpha/5) bound Delta by the union bound.
- **A quantile** q_p (p99 latency): Howard & Ramdas (2022, "Sequential estimation of quantiles
  with applications to A/B-testing and best-arm identification", Bernoulli 28:1704-1728), fixed
  quantile: the count of observations at or below q_p is Binomial(t, p), so a confidence
  sequence [S_lo, S_hi] for that count under p gives q_p in [Q(S_lo / t), Q(S_hi / t)] at every
  t, with Q the empirical quantile function — read from the store's t-digests at those levels.
  (The t-digest is an approximation of Q, most accurate in the tails; the bound inherits it.)
- **A ratio** of two quantiles (candidate over primary): each side's sequence at alpha/2.

Several segments checked by one rule share its alpha (Bonferroni): the union bound keeps every
one of them anytime-valid, so the family-wise false-fire rate stays under alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Prior concentration of the mixture (savvi's default): the prior weighs like `k` pairs.
K = 100.0
#: The share of alpha spent on the discordant rate in `paired_difference` (see the docstring).
PI_SHARE = 0.2
_EPS = 1e-12
_STEPS = 60  # bisection steps: 2^-60 of the unit interval


@dataclass(frozen=True, slots=True)
class Bound:
    estimate: float
    lower: float
    upper: float
    n: int


def log_odds(
    successes: ArrayLike, trials: ArrayLike, p: ArrayLike, k: float = K
) -> NDArray[np.float64]:
    """The log posterior odds against `p` after `successes` of `trials` (Lindon & Malek 2022)."""
    # Imported at the first evaluation: scipy costs a process with no rule ~0.15 s at start.
    from scipy.special import betaln

    s = np.asarray(successes, dtype=np.float64)
    t = np.asarray(trials, dtype=np.float64)
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    a, b = k * q, k * (1 - q)
    value: NDArray[np.float64] = (
        betaln(a + s, b + t - s) - betaln(a, b) - s * np.log(q) - (t - s) * np.log1p(-q)
    )
    return value


def rate_sequence(
    successes: ArrayLike, trials: ArrayLike, alpha: float, k: float = K
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(lower, upper) of the confidence sequence for a rate, for every (successes, trials)."""
    s = np.asarray(successes, dtype=np.float64)
    t = np.asarray(trials, dtype=np.float64)
    threshold = np.log(1 / alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = np.where(t > 0, s / np.maximum(t, 1), 0.5)
    lower = _crossing(s, t, threshold, k, np.zeros_like(centre), centre, rising=False)
    upper = _crossing(s, t, threshold, k, centre, np.ones_like(centre), rising=True)
    none = t <= 0
    return np.where(none, 0.0, lower), np.where(none, 1.0, upper)


def _crossing(
    s: NDArray[np.float64],
    t: NDArray[np.float64],
    threshold: float,
    k: float,
    lo: NDArray[np.float64],
    hi: NDArray[np.float64],
    *,
    rising: bool,
) -> NDArray[np.float64]:
    """Where the log odds cross `threshold` between lo (inside) and hi, or the edge."""
    inside, outside = (lo.copy(), hi.copy()) if rising else (hi.copy(), lo.copy())
    edge_rejected = log_odds(s, t, outside, k) >= threshold
    for _ in range(_STEPS):
        middle = (inside + outside) / 2
        rejected = log_odds(s, t, middle, k) >= threshold
        outside = np.where(rejected, middle, outside)
        inside = np.where(rejected, inside, middle)
    edge = hi if rising else lo
    return np.where(edge_rejected, (inside + outside) / 2, edge)


def rate(successes: int, trials: int, alpha: float) -> Bound | None:
    if trials <= 0:
        return None
    lower, upper = rate_sequence(successes, trials, alpha)
    return Bound(successes / trials, float(lower), float(upper), trials)


def paired_difference(
    b_only: ArrayLike, a_only: ArrayLike, n: ArrayLike, alpha: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(estimate, lower, upper) of p_B - p_A on paired items, from the discordant counts."""
    b, a, total = (np.asarray(x, dtype=np.float64) for x in (b_only, a_only, n))
    discordant = a + b
    pi_lo, pi_hi = rate_sequence(discordant, total, alpha * PI_SHARE)
    q_lo, q_hi = rate_sequence(b, discordant, alpha * (1 - PI_SHARE))
    low_arm, high_arm = 2 * q_lo - 1, 2 * q_hi - 1
    lower = np.where(low_arm >= 0, pi_lo * low_arm, pi_hi * low_arm)
    upper = np.where(high_arm >= 0, pi_hi * high_arm, pi_lo * high_arm)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.where(total > 0, (b - a) / np.maximum(total, 1), 0.0)
    return estimate, lower, upper


def quantile_levels(p: float, trials: int, alpha: float, k: float = K) -> tuple[float, float]:
    """The levels (p_lo, p_hi) of the empirical quantile function that bound q_p at this look
    (Howard & Ramdas 2022, fixed quantile): the count of observations at or below q_p stays in
    [p_lo t, p_hi t] at every t with probability 1 - alpha."""
    if trials <= 0:
        return 0.0, 1.0
    t = np.float64(trials)
    threshold = np.log(1 / alpha)
    levels = []
    for end in (0.0, t):
        inside, outside = np.float64(p * trials), np.float64(end)
        if log_odds(outside, t, p, k) < threshold:
            levels.append(float(outside) / trials)
            continue
        for _ in range(_STEPS):
            middle = (inside + outside) / 2
            if log_odds(middle, t, p, k) >= threshold:
                outside = middle
            else:
                inside = middle
        levels.append(float(outside) / trials)
    return levels[0], levels[1]
