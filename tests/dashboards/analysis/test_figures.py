"""Every figure of the analysis equals an independent count over the comparisons written.

The analysis reads the hourly aggregates; these tests count the same figures in Python over
the `Comparison` objects that went into the store (and, for the review corrections, over the
labels), so the aggregates are a speed-up and never a second truth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from dashboards.analysis.corrections import CALIBRATION, DISAGREEMENTS
from dashboards.analysis.figures import ArmAnalysis, Sampling
from dashboards.analysis.intervals import paired_difference, proportion
from dashboards.analysis.service import Analyst
from dashboards.analysis.window import parse_window
from dashboards.review.queue import REVIEW_COLUMNS, queue, review_row
from judge.comparison import Comparison, RefusalFinding, Verdict
from judge.store.schema import reason_cause
from judge.store.store import Store
from tests.dashboards.generate import MIGRATION, Generated, generate, stored

JUDGED = {Verdict.EQUIVALENT, Verdict.CANDIDATE_BETTER, Verdict.CANDIDATE_WORSE, Verdict.DIFFERENT}
WINDOW = parse_window("7d")


@pytest.fixture(scope="module")
def data() -> Generated:
    return generate(2500, seed=11)


@pytest.fixture
def store(chdb_dir: Path, data: Generated) -> Iterator[Store]:
    with stored(chdb_dir, data) as opened:
        opened.insert_pairs(data.pairs[:300], data.comparisons[:300])  # a replay: counts once
        yield opened


def _arm(analyst: Analyst, arm: str, segment: str = "*") -> ArmAnalysis:
    (found,) = analyst.analyse(WINDOW, segment=segment)
    return next(a for a in found.arms if a.arm == arm)


def _rows(data: Generated, arm: str, segment: str = "*") -> list[Comparison]:
    key, _, value = segment.partition("=")
    return [
        c
        for c in data.comparisons
        if c.arm == arm and (segment == "*" or c.segment.get(key) == value)
    ]


@pytest.mark.parametrize("segment", ["*", "tenant=acme", "route=/extract"])
@pytest.mark.parametrize("arm", ["sonnet", "noise"])
def test_headline_figures_equal_counts_over_the_rows(
    store: Store, data: Generated, arm: str, segment: str
) -> None:
    rows = _rows(data, arm, segment)
    got = _arm(Analyst(store), arm, segment)
    verdicts = Counter(c.verdict.value for c in rows)
    judged = sum(c.verdict in JUDGED for c in rows)
    assert got.pairs == len(rows)
    assert got.judged == judged
    assert got.verdicts == {v.value: verdicts.get(v.value, 0) for v in Verdict}
    assert got.equivalence == proportion(verdicts["equivalent"], judged)
    assert got.worse == proportion(verdicts["candidate_worse"], judged)
    findings = Counter(c.refusal_finding for c in rows)
    assert got.refusal_findings == {
        "candidate_only": findings[RefusalFinding.CANDIDATE_ONLY],
        "primary_only": findings[RefusalFinding.PRIMARY_ONLY],
        "both": findings[RefusalFinding.BOTH],
    }
    assert got.refusal_difference == paired_difference(
        findings[RefusalFinding.CANDIDATE_ONLY],
        findings[RefusalFinding.PRIMARY_ONLY],
        len(rows),
        both=findings[RefusalFinding.BOTH],
    )
    assert got.primary.refusals == sum(c.refusal_primary for c in rows)
    assert got.candidate.refusals == sum(c.refusal_candidate for c in rows)
    assert got.format_drift == proportion(sum(c.format_drift for c in rows), len(rows))
    kinds = Counter(k for c in rows for k in c.format_findings)
    assert got.format_kinds == dict(sorted(kinds.items()))
    assert got.tiers == {t: sum(c.tier.value == t for c in rows) for t in got.tiers}
    assert got.judge_orders_disagree == sum(c.judge_orders_agree is False for c in rows)
    assert got.cached_verdicts == sum(c.judge_cached for c in rows)


def test_sides_latency_tokens_and_cost(store: Store, data: Generated) -> None:
    rows = _rows(data, "sonnet")
    got = _arm(Analyst(store), "sonnet")
    answered = [c for c in rows if c.candidate_error == ""]
    assert got.candidate.answered == len(answered)
    assert got.candidate.errors == len(rows) - len(answered)
    assert got.candidate.mean_latency_ms == pytest.approx(
        np.mean([c.candidate_latency_ms for c in answered])
    )
    # t-digest: approximate quantiles, within a few percent of the exact ones here
    assert got.candidate.latency_ms is not None
    for level, value in (("p50", 0.5), ("p95", 0.95)):
        exact = float(np.quantile([c.candidate_latency_ms for c in answered], value))
        assert getattr(got.candidate.latency_ms, level) == pytest.approx(exact, rel=0.05)
    streams = [c for c in answered if c.candidate_ttft_ms is not None]
    assert got.candidate.ttft_n == len(streams)
    known = [c for c in rows if c.candidate_input_tokens is not None]
    assert got.candidate.tokens_known == len(known)
    assert got.candidate.tokens_known < len(rows)  # streams without usage: unknown, not zero
    assert got.candidate.input_tokens_per_call == pytest.approx(
        sum(c.candidate_input_tokens or 0 for c in known) / len(known)
    )
    priced = [c.candidate_cost_usd for c in rows if c.candidate_cost_usd is not None]
    assert got.candidate.priced == len(priced)
    assert got.candidate.cost_per_call_usd == pytest.approx(sum(priced) / len(priced))
    assert got.candidate.cost_per_day_usd is None  # no sampling known: no projection


def test_projection_to_full_traffic(store: Store, data: Generated) -> None:
    analyst = Analyst(store, sampling={MIGRATION: Sampling(rate=0.25, noise_rate=0.1)})
    got = _arm(analyst, "sonnet")
    rows = _rows(data, "sonnet")
    first = min(c.captured_at for c in rows).replace(minute=0, second=0, microsecond=0)
    last = max(c.captured_at for c in rows).replace(minute=0, second=0, microsecond=0)
    days = ((last - first).total_seconds() + 3600) / 86400
    assert got.calls_per_day == pytest.approx(len(rows) / days / 0.25)
    assert got.candidate.cost_per_call_usd is not None
    assert got.candidate.cost_per_day_usd == pytest.approx(
        got.candidate.cost_per_call_usd * len(rows) / days / 0.25
    )
    noise = _arm(analyst, "noise")
    assert noise.calls_per_day == pytest.approx(
        len(_rows(data, "noise")) / noise_days(data) / 0.025, rel=1e-9
    )


def noise_days(data: Generated) -> float:
    rows = _rows(data, "noise")
    first = min(c.captured_at for c in rows).replace(minute=0, second=0, microsecond=0)
    last = max(c.captured_at for c in rows).replace(minute=0, second=0, microsecond=0)
    return ((last - first).total_seconds() + 3600) / 86400


def test_coverage_by_cause_with_fixes(store: Store, data: Generated) -> None:
    got = _arm(Analyst(store), "sonnet")
    rows = _rows(data, "sonnet")
    want = Counter(
        (c.verdict.value, reason_cause(c.verdict_reason))
        for c in rows
        if c.verdict in (Verdict.NOT_JUDGED, Verdict.ERROR)
    )
    assert {(c.verdict, c.cause): c.count for c in got.coverage} == dict(want)
    fixes = {c.cause: c.fix for c in got.coverage}
    assert fixes["no LLM judge configured"] == "set judge.provider and judge.model"
    assert "ANTHROPIC_API_KEY" in fixes["candidate skipped: no API key for provider 'anthropic'"]
    assert "input_audio" in fixes["candidate skipped: untranslatable"]


def test_noise_floor_sits_beside_the_candidate(store: Store) -> None:
    (found,) = Analyst(store).analyse(WINDOW)
    assert [a.arm for a in found.arms] == ["sonnet", "noise"]
    assert found.arms[0].noise_equivalence == found.arms[1].equivalence


def test_labels_move_agreement_and_correct_the_rates(store: Store, data: Generated) -> None:
    analyst = Analyst(store)
    before = _arm(analyst, "sonnet")
    assert before.agreement is None
    assert all(c.corrected is None and c.labels == 0 for c in before.corrections)
    version = data.comparisons[0].judge_version
    sample = queue(
        store, WINDOW, migration=MIGRATION, judge_version=version, which=CALIBRATION, limit=60
    )
    sample = [item for item in sample if item.arm == "sonnet"]
    # a reviewer who agrees with the judge except on every fourth pair
    rows = []
    for i, item in enumerate(sample):
        label = (
            item.verdict
            if i % 4
            else ("different" if item.verdict == "equivalent" else "equivalent")
        )
        rows.append(
            review_row(
                call_id=item.call_id,
                migration=MIGRATION,
                arm=item.arm,
                judge_version=version,
                reviewer="ana",
                label=label,
                queue_name=CALIBRATION,
                at=datetime.now(UTC),
            )
        )
    worst = queue(store, WINDOW, migration=MIGRATION, judge_version=version, limit=8)
    rows += [
        review_row(
            call_id=w.call_id,
            migration=MIGRATION,
            arm=w.arm,
            judge_version=version,
            reviewer="ana",
            label="candidate_worse",
            queue_name=DISAGREEMENTS,
        )
        for w in worst
        if w.arm == "sonnet" and w.call_id not in {i.call_id for i in sample}
    ]
    store.write("reviews", REVIEW_COLUMNS, rows)
    after = _arm(analyst, "sonnet")
    assert after.agreement is not None
    assert after.agreement.n == len(rows)
    assert after.agreement.calibration_labels == len(sample)
    equivalence = next(c for c in after.corrections if c.metric == "equivalence")
    assert equivalence.labels == len(sample)  # the disagreement queue's labels never correct
    assert equivalence.corrected is not None and equivalence.raw is not None
    assert equivalence.raw == before.corrections[0].raw
    # labelled pairs leave the queues
    again = queue(
        store, WINDOW, migration=MIGRATION, judge_version=version, which=CALIBRATION, limit=60
    )
    assert not {i.call_id for i in again} & {r[0] for r in rows}


def test_calibration_queue_is_a_hash_order_not_a_verdict_order(
    store: Store, data: Generated
) -> None:
    version = data.comparisons[0].judge_version
    items = queue(
        store, WINDOW, migration=MIGRATION, judge_version=version, which=CALIBRATION, limit=400
    )
    mix = Counter(i.verdict for i in items)
    everything = Counter(c.verdict.value for c in data.comparisons if c.verdict in JUDGED)
    share = mix["equivalent"] / len(items)
    assert share == pytest.approx(everything["equivalent"] / sum(everything.values()), abs=0.08)


def test_disagreements_come_worst_first(store: Store, data: Generated) -> None:
    version = data.comparisons[0].judge_version
    items = queue(store, WINDOW, migration=MIGRATION, judge_version=version, limit=500)
    severities = [i.severity for i in items]
    assert severities == sorted(severities, reverse=True)
    assert items[0].kind in ("judged worse", "candidate refuses")
    assert all(i.severity > 0 for i in items)
