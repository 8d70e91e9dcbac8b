"""Simulated migrations for the trigger engine: cumulative counts at regular looks, pushed
through the engine's own decision functions (`dashboards.triggers.rules`).

Used by the tests (false-fire rates, power) and by `tests/benchmarks/trigger_power.py`, which
prints the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dashboards.triggers import rules

EVERY = 50
UP_TO = 20_000


@dataclass(frozen=True)
class Outcome:
    fired: NDArray[np.bool_]  # per run: fired at some look
    pairs_to_fire: NDArray[np.float64]  # per run: pairs at the first fire (nan: never)

    @property
    def fire_rate(self) -> float:
        return float(self.fired.mean())

    @property
    def median_pairs(self) -> float:
        found = self.pairs_to_fire[~np.isnan(self.pairs_to_fire)]
        return float(np.median(found)) if found.size else float("nan")


def looks(every: int = EVERY, up_to: int = UP_TO) -> NDArray[np.int64]:
    return np.arange(every, up_to + 1, every)


def _outcome(decisions: NDArray[np.str_], at: NDArray[np.int64]) -> Outcome:
    fire = decisions == rules.Decision.FIRE.value
    fired = fire.any(axis=1)
    first = np.where(fired, fire.argmax(axis=1), 0)
    pairs = np.where(fired, at[first].astype(np.float64), np.nan)
    return Outcome(fired, pairs)


def paired_refusals(
    rng: np.random.Generator,
    runs: int,
    primary: float,
    candidate: float,
    *,
    margin: float,
    alpha: float = 0.05,
    min_pairs: int = 200,
    every: int = EVERY,
    up_to: int = UP_TO,
) -> Outcome:
    """Each call refused by either side independently; the refusal-difference rule at each look."""
    at = looks(every, up_to)
    cells = np.array(
        [
            (1 - candidate) * (1 - primary),
            candidate * (1 - primary),
            primary * (1 - candidate),
            candidate * primary,
        ]
    )
    blocks = rng.multinomial(every, cells, size=(runs, at.size))
    totals = blocks.cumsum(axis=1)
    decisions, _, _ = rules.paired_rate_difference(
        totals[..., 1],
        totals[..., 2],
        at[None, :].repeat(runs, 0),
        margin=margin,
        alpha=alpha,
        min_pairs=min_pairs,
    )
    return _outcome(decisions, at)


def rate_level(
    rng: np.random.Generator,
    runs: int,
    rate: float,
    *,
    level: float,
    bad_above: bool,
    alpha: float = 0.05,
    min_pairs: int = 200,
    every: int = EVERY,
    up_to: int = UP_TO,
) -> Outcome:
    at = looks(every, up_to)
    hits = rng.binomial(every, rate, size=(runs, at.size)).cumsum(axis=1)
    decisions, _, _ = rules.rate_against_level(
        hits,
        at[None, :].repeat(runs, 0),
        level=level,
        bad_above=bad_above,
        alpha=alpha,
        min_pairs=min_pairs,
    )
    return _outcome(decisions, at)


def latency_tail(
    rng: np.random.Generator,
    runs: int,
    shift: float,
    *,
    margin: float,
    level: float = 0.99,
    alpha: float = 0.05,
    min_pairs: int = 200,
    every: int = 250,
    up_to: int = UP_TO,
) -> Outcome:
    """Primary latencies log-normal; the candidate's the same distribution times `1 + shift`.
    The quantile functions are numpy's over the pairs so far (the engine reads t-digests)."""
    at = looks(every, up_to)
    fired = np.zeros(runs, dtype=bool)
    pairs = np.full(runs, np.nan)
    for run in range(runs):
        primary = rng.lognormal(6.5, 0.5, up_to)
        candidate = rng.lognormal(6.5, 0.5, up_to) * (1 + shift)
        for t in at:
            found = rules.quantile_ratio(
                lambda qs, v=candidate[:t]: np.quantile(v, qs, method="inverted_cdf"),
                int(t),
                lambda qs, v=primary[:t]: np.quantile(v, qs, method="inverted_cdf"),
                int(t),
                level=level,
                margin=margin,
                alpha=alpha,
                min_pairs=min_pairs,
            )
            if found.decision is rules.Decision.FIRE:
                fired[run], pairs[run] = True, float(t)
                break
    return Outcome(fired, pairs)


def fixed_sample_pairs(
    rng: np.random.Generator, primary: float, candidate: float, *, margin: float, runs: int = 400
) -> int:
    """The pairs a fixed-sample test (Newcombe's paired interval, one look) needs to fire in
    half the runs: the baseline the sequential rule's median is read against."""
    from dashboards.analysis.intervals import paired_difference

    cells = [
        (1 - candidate) * (1 - primary),
        candidate * (1 - primary),
        primary * (1 - candidate),
        candidate * primary,
    ]
    for n in range(500, 200_001, 500):
        counts = rng.multinomial(n, cells, size=runs)
        fires = 0
        for row in counts:
            found = paired_difference(int(row[1]), int(row[2]), n, both=int(row[3]))
            fires += found is not None and found.lower > margin
        if fires >= runs / 2:
            return n
    return -1
