"""The intervals the dashboards show: Wilson, Newcombe's paired difference, PPI++, kappa.

Checked against the libraries they come from, against published worked examples, and by
simulation with fixed seeds: coverage of known rates, and the project's acceptance test for
the judge correction (PPI++ covers the truth where the judge alone does not).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.proportion import proportion_confint

from dashboards.analysis.intervals import (
    Agreement,
    Interval,
    agreement,
    judge_only,
    paired_difference,
    ppi_proportion,
    proportion,
)

ROOT = Path(__file__).resolve().parents[3]


# --- proportion, judge_only -------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "n", "confidence", "method"),
    [(17, 40, 0.95, "Wilson 95%"), (3, 250, 0.9, "Wilson 90%"), (999, 1000, 0.99, "Wilson 99%")],
)
def test_proportion_is_statsmodels_wilson(
    successes: int, n: int, confidence: float, method: str
) -> None:
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    interval = proportion(successes, n, confidence)
    assert interval is not None
    assert interval.estimate == successes / n
    assert interval.lower == pytest.approx(low, abs=1e-15)
    assert interval.upper == pytest.approx(high, abs=1e-15)
    assert (interval.n, interval.method) == (n, method)


def test_proportion_of_nothing_is_none() -> None:
    assert proportion(0, 0) is None
    assert judge_only(0, 0) is None


@pytest.mark.parametrize("n", [1, 7, 200])
def test_proportion_touches_0_and_1_at_the_edges(n: int) -> None:
    none = proportion(0, n)
    every = proportion(n, n)
    assert none is not None and every is not None
    assert none.lower == 0.0 and none.estimate == 0.0 and 0.0 < none.upper < 1.0
    assert every.upper == 1.0 and every.estimate == 1.0 and 0.0 < every.lower < 1.0


@pytest.mark.parametrize(
    ("successes", "n", "confidence"),
    [(-1, 5, 0.95), (6, 5, 0.95), (1, -1, 0.95), (1, 5, 1.0), (1, 5, 0.0)],
)
def test_proportion_rejects_impossible_input(successes: int, n: int, confidence: float) -> None:
    with pytest.raises(ValueError):
        proportion(successes, n, confidence)


def test_judge_only_is_wilson_under_its_own_name() -> None:
    raw = judge_only(3066, 4000)
    plain = proportion(3066, 4000)
    assert raw is not None and plain is not None
    assert (raw.estimate, raw.lower, raw.upper, raw.n) == (
        plain.estimate,
        plain.lower,
        plain.upper,
        plain.n,
    )
    assert raw.method == "judge only, Wilson 95%"


def test_interval_contains_and_as_dict() -> None:
    interval = Interval(estimate=0.5, lower=0.4, upper=0.6, n=100, method="Wilson 95%")
    assert interval.contains(0.4) and interval.contains(0.6) and interval.contains(0.5)
    assert not interval.contains(0.39) and not interval.contains(0.61)
    assert interval.as_dict() == {
        "estimate": 0.5,
        "lower": 0.4,
        "upper": 0.6,
        "n": 100,
        "method": "Wilson 95%",
    }


# --- paired_difference ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("both", "b_only", "a_only", "neither", "digits", "lower", "upper"),
    [
        # Newcombe (1998), Stat Med 17:2635-2650, worked example a=20 b=12 c=2 d=16:
        # method 10 gives 0.0562 to 0.3292 (the values ratesci's test suite checks against).
        (20, 12, 2, 16, 4, 0.0562, 0.3292),
        # Fagerland, Lydersen & Laake (2014), Stat Med 33:2850-2875, airway
        # hyper-responsiveness example (1, 1, 7, 12), Newcombe square-and-add: -0.507 to -0.026.
        (1, 1, 7, 12, 3, -0.507, -0.026),
    ],
)
def test_paired_difference_matches_published_examples(
    both: int, b_only: int, a_only: int, neither: int, digits: int, lower: float, upper: float
) -> None:
    n = both + b_only + a_only + neither
    interval = paired_difference(b_only, a_only, n, both=both)
    assert interval is not None
    assert interval.estimate == pytest.approx((b_only - a_only) / n)
    assert (round(interval.lower, digits), round(interval.upper, digits)) == (lower, upper)
    assert interval.method == "Newcombe paired 95%"


@pytest.mark.parametrize(
    ("both", "b_only", "a_only", "n"),
    [(20, 12, 2, 50), (0, 3, 0, 10), (0, 0, 0, 10), (10, 0, 0, 10), (0, 10, 0, 10), (5, 1, 9, 400)],
)
def test_paired_difference_properties(both: int, b_only: int, a_only: int, n: int) -> None:
    forward = paired_difference(b_only, a_only, n, both=both)
    backward = paired_difference(a_only, b_only, n, both=both)
    assert forward is not None and backward is not None
    assert -1.0 <= forward.lower <= forward.estimate <= forward.upper <= 1.0
    assert forward.contains(forward.estimate)
    assert backward.estimate == pytest.approx(-forward.estimate)
    assert backward.lower == pytest.approx(-forward.upper)
    assert backward.upper == pytest.approx(-forward.lower)


def test_paired_difference_narrows_as_n_grows() -> None:
    widths = []
    for scale in (1, 10, 100):
        interval = paired_difference(12 * scale, 2 * scale, 50 * scale, both=20 * scale)
        assert interval is not None
        assert interval.estimate == pytest.approx(0.2)
        widths.append(interval.upper - interval.lower)
    assert widths[0] > widths[1] > widths[2]


def test_paired_difference_empty_and_impossible() -> None:
    assert paired_difference(0, 0, 0) is None
    with pytest.raises(ValueError):
        paired_difference(5, 5, 12, both=3)
    with pytest.raises(ValueError):
        paired_difference(-1, 0, 10)


@pytest.mark.parametrize(
    ("probabilities", "n"),
    [
        # (both, B only, A only, neither): correlated rates 0.42 vs 0.35
        ((0.30, 0.12, 0.05, 0.53), 80),
        # rare events, e.g. refusal rates 0.05 vs 0.03
        ((0.02, 0.03, 0.01, 0.94), 300),
    ],
)
def test_paired_difference_covers_known_difference(
    probabilities: tuple[float, float, float, float], n: int
) -> None:
    rng = np.random.default_rng(1998)
    samples = rng.multinomial(n, probabilities, size=2000)
    truth = probabilities[1] - probabilities[2]
    covered = 0
    for both, b_only, a_only, _ in samples:
        interval = paired_difference(int(b_only), int(a_only), n, both=int(both))
        assert interval is not None
        covered += interval.contains(truth)
    assert covered / len(samples) >= 0.93


# --- ppi_proportion ---------------------------------------------------------------------


def _simulate(
    rng: np.random.Generator,
    *,
    population: int,
    rate: float,
    miss: float,
    false_accept: float,
    labelled: int,
) -> tuple[Interval, Interval, Interval, float]:
    """One run: pairs with a known rate, an erring judge, a uniform labelled sample.

    Returns the PPI++ interval, the judge-only interval, the Wilson interval on the labels
    alone, and the true rate of the generated pairs.
    """
    positive = round(rate * population)
    truth = rng.permutation(
        np.concatenate([np.ones(positive, dtype=bool), np.zeros(population - positive, dtype=bool)])
    )
    draw = rng.random(population)
    # The judge calls `miss` of the truly acceptable pairs not acceptable, and
    # `false_accept` of the truly unacceptable ones acceptable.
    judge = np.where(truth, draw >= miss, draw < false_accept)
    sample = rng.choice(population, size=labelled, replace=False)
    judge_positive = int(judge.sum())
    corrected = ppi_proportion(
        truth=truth[sample].tolist(),
        judge_on_labelled=judge[sample].tolist(),
        judge_positive=judge_positive,
        judge_n=population,
    )
    raw = judge_only(judge_positive, population)
    labels_only = proportion(int(truth[sample].sum()), labelled)
    assert corrected is not None and raw is not None and labels_only is not None
    return corrected, raw, labels_only, positive / population


def test_ppi_acceptance_corrected_interval_covers_the_truth() -> None:
    """With 200 reviewer labels on generated pairs whose true equivalence rate is known, the
    corrected interval covers the truth in at least 90% of 200 simulated runs, and is reported
    beside the raw one."""
    rng = np.random.default_rng(20231101)
    runs = [
        _simulate(rng, population=20_000, rate=0.82, miss=0.12, false_accept=0.25, labelled=200)
        for _ in range(200)
    ]
    corrected_coverage = np.mean([ppi.contains(true) for ppi, _, _, true in runs])
    raw_coverage = np.mean([raw.contains(true) for _, raw, _, true in runs])
    assert corrected_coverage >= 0.90
    # The judge alone is biased (it sees about 0.77 where the truth is 0.82), and its many
    # verdicts make its interval narrow around the wrong value: this is why the correction
    # exists.
    assert raw_coverage <= 0.05
    for ppi, raw, _, _ in runs:
        assert ppi.method == "PPI++ 95%" and raw.method == "judge only, Wilson 95%"
        assert ppi.n == 200 and raw.n == 20_000
        assert 0.0 <= ppi.lower <= ppi.estimate <= ppi.upper <= 1.0
        shown = {row["method"]: row for row in (ppi.as_dict(), raw.as_dict())}
        assert set(shown) == {"PPI++ 95%", "judge only, Wilson 95%"}


def test_ppi_with_a_good_judge_is_narrower_than_the_labels_alone() -> None:
    rng = np.random.default_rng(5)
    runs = [
        _simulate(rng, population=20_000, rate=0.82, miss=0.05, false_accept=0.05, labelled=200)
        for _ in range(100)
    ]
    narrower = np.mean(
        [ppi.upper - ppi.lower <= alone.upper - alone.lower for ppi, _, alone, _ in runs]
    )
    assert narrower >= 0.9
    assert np.mean([ppi.contains(true) for ppi, _, _, true in runs]) >= 0.90


def test_ppi_too_little_to_go_on_is_none() -> None:
    assert (
        ppi_proportion(truth=[True], judge_on_labelled=[True], judge_positive=5, judge_n=9) is None
    )
    assert ppi_proportion(truth=[], judge_on_labelled=[], judge_positive=0, judge_n=0) is None
    assert (
        ppi_proportion(
            truth=[True, False], judge_on_labelled=[True, False], judge_positive=1, judge_n=2
        )
        is None
    )


def test_ppi_rejects_labels_that_are_not_among_the_judged() -> None:
    with pytest.raises(ValueError):  # more labelled positives than judged positives
        ppi_proportion(
            truth=[True, True, True],
            judge_on_labelled=[True, True, True],
            judge_positive=2,
            judge_n=100,
        )
    with pytest.raises(ValueError):  # more labels than judged pairs
        ppi_proportion(
            truth=[True, False, True],
            judge_on_labelled=[True, False, True],
            judge_positive=2,
            judge_n=2,
        )
    with pytest.raises(ValueError):
        ppi_proportion(truth=[True, False], judge_on_labelled=[True], judge_positive=1, judge_n=10)


def test_ppi_with_a_judge_that_always_says_yes_falls_back_to_the_labels() -> None:
    truth = [True] * 30 + [False] * 10
    interval = ppi_proportion(
        truth=truth,
        judge_on_labelled=[True] * 40,
        judge_positive=1000,
        judge_n=1000,
        confidence=0.9,
    )
    assert interval is not None
    assert interval.estimate == pytest.approx(0.75)
    assert 0.0 < interval.lower < 0.75 < interval.upper < 1.0
    assert interval.method == "PPI++ 90%"


# --- agreement --------------------------------------------------------------------------


def test_agreement_perfect() -> None:
    labels = ["equivalent", "worse", "better", "worse", "equivalent"]
    result = agreement(labels, list(labels))
    assert result == Agreement(n=5, agree=5, kappa=1.0)
    assert result.as_dict() == {"n": 5, "agree": 5, "kappa": 1.0}


def test_agreement_of_independent_labels_is_near_zero() -> None:
    rng = np.random.default_rng(1960)
    classes = np.array(["equivalent", "worse", "better"])
    reviewer = rng.choice(classes, size=5000, p=[0.6, 0.3, 0.1]).tolist()
    judge = rng.choice(classes, size=5000, p=[0.5, 0.3, 0.2]).tolist()
    result = agreement(reviewer, judge)
    assert result.kappa is not None
    assert abs(result.kappa) < 0.05
    assert result.kappa == pytest.approx(cohen_kappa_score(reviewer, judge), abs=1e-12)
    assert result.agree == sum(r == j for r, j in zip(reviewer, judge, strict=True))


def test_agreement_undefined_kappa_is_none_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one_class = agreement(["equivalent"] * 4, ["equivalent"] * 4)
        single_pair = agreement(["worse"], ["better"])
        nothing = agreement([], [])
    assert one_class == Agreement(n=4, agree=4, kappa=None)
    assert one_class.as_dict() == {"n": 4, "agree": 4, "kappa": None}
    assert single_pair.kappa is None and nothing == Agreement(n=0, agree=0, kappa=None)
    # One class each side but different classes: chance agreement is 0, kappa is defined.
    assert agreement(["worse"] * 3, ["better"] * 3).kappa == 0.0


def test_agreement_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError):
        agreement(["worse", "better"], ["worse"])


def test_import_leaves_warning_filters_alone() -> None:
    """ppi_py silences all warnings when imported; the module must undo that."""
    code = (
        "import warnings; import dashboards.analysis.intervals; "
        "blanket = [f for f in warnings.filters if f[0] == 'ignore' and f[2] is Warning "
        "and f[1] is None and f[3] is None]; "
        "assert not blanket, blanket"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


# --- the written-out computations equal the libraries' ------------------------------------


def test_kappa_equals_statsmodels_cohens_kappa() -> None:
    from statsmodels.stats.inter_rater import cohens_kappa

    rng = np.random.default_rng(37)
    classes = ["equivalent", "worse", "better", "different"]
    for _ in range(200):
        n = int(rng.integers(2, 400))
        reviewer = rng.choice(classes, size=n).tolist()
        judge = [r if rng.random() < 0.6 else str(rng.choice(classes)) for r in reviewer]
        used = sorted(set(reviewer) | set(judge))
        if len(used) < 2:
            continue
        table = np.zeros((len(used), len(used)))
        for r, j in zip(reviewer, judge, strict=True):
            table[used.index(r), used.index(j)] += 1
        expected = float(cohens_kappa(table, return_results=False))
        assert agreement(reviewer, judge).kappa == pytest.approx(expected, abs=1e-12)


def test_wilson_limits_equal_statsmodels_everywhere() -> None:
    rng = np.random.default_rng(3)
    for _ in range(400):
        n = int(rng.integers(1, 5000))
        successes = int(rng.integers(0, n + 1))
        confidence = float(rng.choice([0.8, 0.9, 0.95, 0.99]))
        low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
        got = proportion(successes, n, confidence)
        assert got is not None
        assert got.lower == pytest.approx(max(0.0, low), abs=1e-12)
        assert got.upper == pytest.approx(min(1.0, high), abs=1e-12)


def test_ppi_from_counts_equals_ppi_py_on_arrays() -> None:
    with warnings.catch_warnings():  # ppi_py silences every warning when imported
        from ppi_py import ppi_mean_ci, ppi_mean_pointestimate
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(5, 300))
        big_n = int(rng.integers(10, 20_000))
        truth = rng.random(n) < rng.uniform(0.05, 0.95)
        judge = np.where(rng.random(n) < rng.uniform(0.5, 1.0), truth, ~truth)
        unlabelled = rng.random(big_n) < rng.uniform(0.05, 0.95)
        if judge.all() and unlabelled.all() or not judge.any() and not unlabelled.any():
            continue  # one verdict everywhere: handled apart (lam = 0)
        y, yhat, yu = truth.astype(float), judge.astype(float), unlabelled.astype(float)
        low, high = ppi_mean_ci(y, yhat, yu, alpha=0.05)
        estimate = float(np.asarray(ppi_mean_pointestimate(y, yhat, yu)).item())
        got = ppi_proportion(
            truth=list(truth),
            judge_on_labelled=list(judge),
            judge_positive=int(judge.sum() + unlabelled.sum()),
            judge_n=n + big_n,
        )
        assert got is not None
        assert got.estimate == pytest.approx(min(1.0, max(0.0, estimate)), abs=1e-9)
        assert got.lower == pytest.approx(
            min(1.0, max(0.0, float(np.asarray(low).item()))), abs=1e-9
        )
        assert got.upper == pytest.approx(
            min(1.0, max(0.0, float(np.asarray(high).item()))), abs=1e-9
        )
