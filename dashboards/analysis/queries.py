"""The dashboards' SQL: every headline figure from `comparison_stats_hourly`, never `FINAL`.

A reader is anything with `select(sql, parameters) -> list[dict]` (`judge.store.store.Store`
has it). Every value from a page or a URL travels as a bound parameter (`{name:Type}`); the
only names spliced into SQL are column names from `judge.store.schema`, and the time bucket,
an int. Raw `comparisons` rows are read only for drill-downs: one pair, the review queue, the
example reason behind each not-judged cause, and the models an arm ran.

The aggregates are merged at read time (`sum`, `sumMap`, `quantilesTDigestMerge`): see
"Reading the aggregates" in `judge.store.schema`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from dashboards.analysis.window import Window
from judge.store.schema import CAUSE_SQL, CROSSED_SQL, STATS_COLUMNS, stats_read

#: Levels of the latency curves drawn on the migration page.
CURVE_LEVELS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
_READS = ",\n    ".join(f"{stats_read(n, t)} AS {n}" for n, t, _ in STATS_COLUMNS)
#: The segment table shows the candidate's p99 only: the other digests are not merged there.
_SKIPPED = ("primary_latency_ms_q", "primary_ttft_ms_q", "candidate_ttft_ms_q")
_SEGMENT_READS = ",\n    ".join(
    f"CAST([], 'Array(Float64)') AS {n}" if n in _SKIPPED else f"{stats_read(n, t)} AS {n}"
    for n, t, _ in STATS_COLUMNS
)
_SPAN = "hour >= toDateTime({since:Int64}, 'UTC') AND hour < toDateTime({until:Int64}, 'UTC')"
_RAW_SPAN = (
    "captured_at >= fromUnixTimestamp64Micro({since_us:Int64}, 'UTC')"
    " AND captured_at < fromUnixTimestamp64Micro({until_us:Int64}, 'UTC')"
)


class Reader(Protocol):
    def select(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]: ...


def span(window: Window) -> dict[str, int]:
    return {
        "since": int(window.since.timestamp()),
        "until": int(window.until.timestamp()),
        "since_us": int(window.since.timestamp() * 1_000_000),
        "until_us": int(window.until.timestamp() * 1_000_000),
    }


def _filters(where: Mapping[str, str | None]) -> tuple[str, dict[str, str]]:
    clauses, params = [], {}
    for column, value in where.items():
        if value is not None:
            clauses.append(f"{column} = {{{column}:String}}")
            params[column] = value
    return "".join(f" AND {c}" for c in clauses), params


def arm_stats(
    reader: Reader,
    window: Window,
    *,
    migration: str | None = None,
    segment: str = "*",
    by_segment: bool = False,
) -> list[dict[str, Any]]:
    """Every stats column per (migration, arm, judge_version) — and per segment label when
    `by_segment` (then `segment` is ignored and every labelled segment is read, but not the
    labels crossed with the `translation=` segment, which are read only when asked for)."""
    extra, params = _filters({"migration": migration})
    keys = "migration, arm, judge_version" + (", segment" if by_segment else "")
    segment_clause = (
        f"segment != '*' AND NOT {CROSSED_SQL}" if by_segment else "segment = {segment:String}"
    )
    if not by_segment:
        params["segment"] = segment
    sql = f"""SELECT {keys}, any(arm_kind) AS arm_kind,
    min(hour) AS first_hour, max(hour) AS last_hour,
    {_SEGMENT_READS if by_segment else _READS}
FROM comparison_stats_hourly
WHERE {segment_clause} AND {_SPAN}{extra}
GROUP BY {keys}
ORDER BY {keys}"""
    return reader.select(sql, {**params, **span(window)})


def series(
    reader: Reader, window: Window, *, migration: str, judge_version: str, segment: str = "*"
) -> list[dict[str, Any]]:
    """Per arm and time bucket: the counts the rate charts need, and p99 latency."""
    bucket = int(window.bucket_hours)
    sql = f"""SELECT arm, toStartOfInterval(hour, INTERVAL {bucket} HOUR, 'UTC') AS at,
    sum(pairs) AS pairs, sum(judged) AS judged,
    sum(verdict_equivalent) AS verdict_equivalent,
    sum(verdict_candidate_worse) AS verdict_candidate_worse,
    sum(refusals_primary) AS refusals_primary, sum(refusals_candidate) AS refusals_candidate,
    sum(refusal_candidate_only) AS refusal_candidate_only,
    sum(refusal_primary_only) AS refusal_primary_only, sum(refusal_both) AS refusal_both,
    sum(format_drifts) AS format_drifts,
    quantilesTDigestMerge(0.99)(primary_latency_ms_q)[1] AS primary_p99,
    quantilesTDigestMerge(0.99)(candidate_latency_ms_q)[1] AS candidate_p99
FROM comparison_stats_hourly
WHERE migration = {{migration:String}} AND judge_version = {{judge_version:String}}
    AND segment = {{segment:String}} AND {_SPAN}
GROUP BY arm, at
ORDER BY arm, at"""
    params = {"migration": migration, "judge_version": judge_version, "segment": segment}
    return reader.select(sql, {**params, **span(window)})


def latency_curves(
    reader: Reader, window: Window, *, migration: str, judge_version: str
) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Per arm, (level, ms) points of each side's latency distribution, for the charts."""
    levels = ", ".join(str(q) for q in CURVE_LEVELS)
    sql = f"""SELECT arm,
    quantilesTDigestMerge({levels})(primary_latency_ms_q) AS primary,
    quantilesTDigestMerge({levels})(candidate_latency_ms_q) AS candidate,
    sum(pairs) - sum(primary_errors) AS primary_n, sum(pairs) - sum(candidate_errors) AS candidate_n
FROM comparison_stats_hourly
WHERE migration = {{migration:String}} AND judge_version = {{judge_version:String}}
    AND segment = '*' AND {_SPAN}
GROUP BY arm"""
    params = {"migration": migration, "judge_version": judge_version}
    curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for row in reader.select(sql, {**params, **span(window)}):
        mine = curves.setdefault(row["arm"], {})
        for side in ("primary", "candidate"):
            if row[f"{side}_n"]:
                mine[side] = list(zip(CURVE_LEVELS, row[side], strict=True))
    return curves


def cause_examples(
    reader: Reader, window: Window, *, migration: str | None = None
) -> dict[tuple[str, str, str], dict[str, str]]:
    """One full reason per not-judged or error cause, per (migration, arm, judge version): the
    detail a fix needs (which variable, which message part). A drill-down over the raw rows
    of those two verdicts only, one query for every arm."""
    extra, params = _filters({"migration": migration})
    sql = f"""SELECT migration, arm, judge_version, {CAUSE_SQL}[1] AS cause,
    any(verdict_reason) AS example
FROM comparisons
WHERE verdict IN ('not_judged', 'error') AND {_RAW_SPAN}{extra}
GROUP BY migration, arm, judge_version, cause"""
    found: dict[tuple[str, str, str], dict[str, str]] = {}
    for r in reader.select(sql, {**params, **span(window)}):
        found.setdefault((r["migration"], r["arm"], r["judge_version"]), {})[r["cause"]] = r[
            "example"
        ]
    return found


def arm_models(
    reader: Reader, window: Window, migration: str | None = None
) -> dict[tuple[str, str], tuple[str, str]]:
    """(primary model, candidate model) each arm ran most recently, per (migration, arm)."""
    extra, params = _filters({"migration": migration})
    sql = f"""SELECT migration, arm, argMax(primary_model, captured_at) AS primary_model,
    argMax(candidate_model, captured_at) AS candidate_model
FROM comparisons WHERE {_RAW_SPAN}{extra}
GROUP BY migration, arm"""
    rows = reader.select(sql, {**params, **span(window)})
    return {(r["migration"], r["arm"]): (r["primary_model"], r["candidate_model"]) for r in rows}


def trigger_states(reader: Reader, migration: str | None = None) -> list[dict[str, Any]]:
    """The latest decision of each rule on each arm (the trigger engine's audit trail)."""
    extra, params = _filters({"migration": migration})
    sql = f"""SELECT migration, arm, rule, toString(argMax(decision, decided_at)) AS decision,
    argMax(estimate, decided_at) AS estimate, argMax(lower, decided_at) AS lower,
    argMax(upper, decided_at) AS upper, argMax(baseline, decided_at) AS threshold,
    max(decided_at) AS last_decided
FROM trigger_decisions
WHERE segment = '*'{extra}
GROUP BY migration, arm, rule ORDER BY migration, arm, rule"""
    return reader.select(sql, params)


def migrations(reader: Reader, window: Window) -> list[str]:
    sql = f"""SELECT DISTINCT migration FROM comparison_stats_hourly
WHERE segment = '*' AND {_SPAN} ORDER BY migration"""
    return [r["migration"] for r in reader.select(sql, span(window))]
