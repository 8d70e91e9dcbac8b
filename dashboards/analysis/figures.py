"""The analysis of a migration: every figure the overview, the API and `report` show.

Definitions (each figure is a count over `comparisons` rows of one migration, arm and judge
version in the window; the aggregates are a speed-up, and a test recounts the raw rows):

- *judged*: pairs whose verdict is one of equivalent, candidate_better, candidate_worse,
  different. Rates of verdicts are shares of the judged pairs, with Wilson intervals; pairs not
  judged or failed are counted under coverage, by cause, never folded into a rate.
- *equivalence*: equivalent / judged, shown beside the noise arm's (the primary against
  itself): a candidate cannot be expected to agree with the primary more than the primary
  agrees with itself.
- *refusal rate* of each side: refusals / pairs, and the paired difference (candidate minus
  primary) from the discordant pairs (`intervals.paired_difference`).
- *latency* p50/p95/p99 of the answers that came back (errors excluded, counted apart); TTFT
  for streams only, with the number of streams it covers.
- *tokens and cost per call*: over the pairs whose usage (or price) is known, with that count
  shown: a stream sent without `include_usage` has unknown tokens, not zero.
- *projected per day*: cost per call times the calls per day the migration would see at full
  traffic, i.e. this arm's pairs per day of data divided by its sampling share
  (`sampling.rate`, times `noise_rate` for the noise arm). Unknown when the migration is not in
  the configuration the dashboards were started with.
- *approximate pairs*: pairs whose candidate request was translated approximately (the runner
  noted what changed, e.g. "json_object as forced tool use"); every figure can be read without
  them, or of them only, as the segment `translation=faithful` or `translation=approximate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dashboards.analysis.coverage import fix_for
from dashboards.analysis.intervals import Interval, paired_difference, proportion
from dashboards.analysis.window import Window

VERDICTS = ("equivalent", "candidate_better", "candidate_worse", "different")
UNJUDGED = ("not_judged", "error")
TIERS = ("exact", "json", "llm", "none")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)


class Quantiles(_Model):
    p50: float
    p90: float
    p95: float
    p99: float

    @classmethod
    def of(cls, values: Sequence[float] | None, n: int) -> Quantiles | None:
        if not n or not values:
            return None
        return cls(p50=values[0], p90=values[1], p95=values[2], p99=values[3])


class Side(_Model):
    """One side of an arm's pairs: the primary, or the arm's model."""

    model: str
    answered: int
    errors: int
    latency_ms: Quantiles | None
    mean_latency_ms: float | None
    ttft_ms: Quantiles | None
    ttft_n: int
    tokens_known: int
    input_tokens_per_call: float | None
    output_tokens_per_call: float | None
    priced: int
    cost_per_call_usd: float | None
    cost_per_day_usd: float | None
    refusals: int
    refusal_rate: Interval | None
    #: Refusal verdicts the LLM tier decided (the rules' score was in its band), and how many
    #: of them it found to be refusals; the rules decided the rest.
    refusal_llm_decided: int = 0
    refusal_llm_found: int = 0


class Cause(_Model):
    verdict: str
    cause: str
    count: int
    share: float
    fix: str
    example: str


class Correction(_Model):
    """A judge-based rate as the judge sees it, and corrected by reviewers' labels."""

    metric: str
    raw: Interval | None
    corrected: Interval | None
    labels: int


class AgreementFigure(_Model):
    n: int
    agree: int
    kappa: float | None
    calibration_labels: int


class TriggerState(_Model):
    rule: str
    decision: str
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    threshold: float | None = None
    decided_at: datetime | None = None


class ArmAnalysis(_Model):
    migration: str
    arm: str
    arm_kind: str
    judge_version: str
    segment: str
    first_hour: datetime
    last_hour: datetime
    pairs: int
    judged: int
    verdicts: dict[str, int]
    tiers: dict[str, int]
    equivalence: Interval | None
    worse: Interval | None
    noise_equivalence: Interval | None
    refusal_findings: dict[str, int]
    refusal_difference: Interval | None
    format_drift: Interval | None
    format_kinds: dict[str, int]
    candidate_error_kinds: dict[str, int]
    judge_orders_disagree: int
    cached_verdicts: int
    primary: Side
    candidate: Side
    coverage: list[Cause]
    calls_per_day: float | None
    corrections: list[Correction] = Field(default_factory=list)
    #: Pairs whose candidate request was translated approximately (`translation=approximate`),
    #: and how often each change was made.
    approximate_pairs: int = 0
    approximations: dict[str, int] = Field(default_factory=dict)
    agreement: AgreementFigure | None = None
    triggers: list[TriggerState] = Field(default_factory=list)

    @property
    def not_judged_share(self) -> float:
        return (self.pairs - self.judged) / self.pairs if self.pairs else 0.0


@dataclass(frozen=True, slots=True)
class Sampling:
    """A migration's sampling shares from the configuration."""

    rate: float
    noise_rate: float

    def share(self, arm_kind: str) -> float:
        return self.rate * (self.noise_rate if arm_kind == "noise" else 1.0)


def utc(moment: datetime) -> datetime:
    """A datetime from the store, as UTC (clickhouse-connect returns naive UTC for some
    column types)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _per(total: float, n: int) -> float | None:
    return total / n if n else None


def _side(row: Mapping[str, Any], side: str, model: str, calls_per_day: float | None) -> Side:
    pairs = int(row["pairs"])
    errors = int(row[f"{side}_errors"])
    answered = pairs - errors
    known = int(row[f"{side}_tokens_known"])
    priced = int(row[f"{side}_priced"])
    cost = _per(float(row[f"{side}_cost_usd_sum"]), priced)
    refusals = int(row[f"refusals_{side}"])
    return Side(
        model=model,
        answered=answered,
        errors=errors,
        latency_ms=Quantiles.of(row[f"{side}_latency_ms_q"], answered),
        mean_latency_ms=_per(float(row[f"{side}_latency_ms_sum"]), answered),
        ttft_ms=Quantiles.of(row[f"{side}_ttft_ms_q"], int(row[f"{side}_ttft_n"])),
        ttft_n=int(row[f"{side}_ttft_n"]),
        tokens_known=known,
        input_tokens_per_call=_per(float(row[f"{side}_input_tokens_sum"]), known),
        output_tokens_per_call=_per(float(row[f"{side}_output_tokens_sum"]), known),
        priced=priced,
        cost_per_call_usd=cost,
        cost_per_day_usd=cost * calls_per_day
        if cost is not None and calls_per_day is not None
        else None,
        refusals=refusals,
        refusal_rate=proportion(refusals, pairs),
        refusal_llm_decided=int(row.get(f"refusal_llm_decided_{side}", 0)),
        refusal_llm_found=int(row.get(f"refusal_llm_found_{side}", 0)),
    )


def _calls_per_day(
    row: Mapping[str, Any], window: Window, sampling: Sampling | None
) -> float | None:
    share = sampling.share(str(row["arm_kind"])) if sampling is not None else 0.0
    if share <= 0:
        return None
    start = max(utc(row["first_hour"]), window.since)
    end = min(utc(row["last_hour"]) + timedelta(hours=1), window.until)
    days = max((end - start).total_seconds(), 3600.0) / 86400
    return float(row["pairs"]) / days / share


def arm_analysis(
    row: Mapping[str, Any],
    window: Window,
    *,
    segment: str = "*",
    models: tuple[str, str] = ("", ""),
    sampling: Sampling | None = None,
    examples: Mapping[str, str] | None = None,
    noise: ArmAnalysis | None = None,
) -> ArmAnalysis:
    """The figures of one stats row (`queries.arm_stats`)."""
    examples = examples or {}
    pairs, judged = int(row["pairs"]), int(row["judged"])
    verdicts = {v: int(row[f"verdict_{v}"]) for v in (*VERDICTS, *UNJUDGED)}
    per_day = _calls_per_day(row, window, sampling)
    coverage = []
    for verdict, column in (("not_judged", "not_judged_causes"), ("error", "error_causes")):
        for cause, count in sorted(row[column].items(), key=lambda kv: (-kv[1], kv[0])):
            example = examples.get(cause, "")
            coverage.append(
                Cause(
                    verdict=verdict,
                    cause=cause,
                    count=int(count),
                    share=count / pairs if pairs else 0.0,
                    fix=fix_for(cause, example),
                    example=example,
                )
            )
    return ArmAnalysis(
        migration=str(row["migration"]),
        arm=str(row["arm"]),
        arm_kind=str(row["arm_kind"]),
        judge_version=str(row["judge_version"]),
        segment=segment,
        first_hour=utc(row["first_hour"]),
        last_hour=utc(row["last_hour"]),
        pairs=pairs,
        judged=judged,
        verdicts=verdicts,
        tiers={t: int(row[f"tier_{t}"]) for t in TIERS},
        equivalence=proportion(verdicts["equivalent"], judged),
        worse=proportion(verdicts["candidate_worse"], judged),
        noise_equivalence=noise.equivalence if noise is not None else None,
        refusal_findings={
            "candidate_only": int(row["refusal_candidate_only"]),
            "primary_only": int(row["refusal_primary_only"]),
            "both": int(row["refusal_both"]),
        },
        refusal_difference=paired_difference(
            int(row["refusal_candidate_only"]),
            int(row["refusal_primary_only"]),
            pairs,
            both=int(row["refusal_both"]),
        ),
        format_drift=proportion(int(row["format_drifts"]), pairs),
        format_kinds={k: int(v) for k, v in sorted(row["format_finding_counts"].items())},
        candidate_error_kinds={k: int(v) for k, v in sorted(row["candidate_error_kinds"].items())},
        judge_orders_disagree=int(row["judge_orders_disagree"]),
        cached_verdicts=int(row["cached_verdicts"]),
        primary=_side(row, "primary", models[0], per_day),
        candidate=_side(row, "candidate", models[1], per_day),
        coverage=coverage,
        calls_per_day=per_day,
        approximate_pairs=int(row.get("approximate_pairs", 0)),
        approximations={k: int(v) for k, v in sorted(row.get("approximation_counts", {}).items())},
    )
