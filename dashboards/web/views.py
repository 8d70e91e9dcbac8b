"""What the templates are given: number formats, the charts of a migration, one pair laid out
side by side with its differences marked, the review queue grouped by kind."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

import orjson
from jinja2 import Environment
from markupsafe import Markup

from dashboards.analysis import queries
from dashboards.analysis.figures import ArmAnalysis, utc
from dashboards.analysis.intervals import Interval, proportion
from dashboards.analysis.queries import Reader
from dashboards.analysis.service import MigrationAnalysis
from dashboards.analysis.window import NAMED, Window
from dashboards.review.queue import QueueItem
from dashboards.triggers.config import Metric, RuleSettings
from dashboards.web.charts import RatePoint, bar_chart, quantile_chart, rate_chart, stacked_bar

# -- formats -------------------------------------------------------------------------------


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def interval(found: Interval | None, digits: int = 1) -> str:
    """`71.5% (69.6–73.3)`: the estimate and its interval."""
    if found is None:
        return "–"
    lo, hi = found.lower * 100, found.upper * 100
    return f"{pct(found.estimate, digits)} ({lo:.{digits}f}–{hi:.{digits}f})"


def signed_interval(found: Interval | None) -> str:
    """A difference in points: `+1.2 pts (−0.3 to +2.6)`."""
    if found is None:
        return "–"
    e, lo, hi = (x * 100 + 0.0 for x in (found.estimate, found.lower, found.upper))
    return f"{_points(e)} pts ({_points(lo)} to {_points(hi)})"


def _points(value: float) -> str:
    text = f"{value:+.1f}"
    return "±0.0" if text in ("+0.0", "-0.0") else text


def ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:,.0f} ms"


def ms_pair(quantiles: tuple[Any, Any], level: str) -> str:
    """`667 → 551 ms`: one latency level of both sides (objects with p50/p95/p99, or None)."""
    values = [getattr(q, level) if q is not None else None for q in quantiles]
    if all(v is not None and v < 10_000 for v in values):
        return f"{values[0]:,.0f} → {values[1]:,.0f} ms"
    return f"{ms(values[0])} → {ms(values[1])}"


def usd(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"${value:,.0f}"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def when(value: datetime | None) -> str:
    return "–" if value is None else utc(value).strftime("%Y-%m-%d %H:%M UTC")


def install(env: Environment) -> None:
    env.filters.update(
        pct=pct,
        interval=interval,
        signed_interval=signed_interval,
        ms=ms,
        usd=usd,
        num=num,
        when=when,
        share=lambda part, whole: pct(part / whole) if whole else "–",
        ms_pair=ms_pair,
    )
    env.globals.update(windows=NAMED)


# -- a migration's charts --------------------------------------------------------------------


def _rate_points(rows: Sequence[dict[str, Any]], hits: str, of: str) -> list[RatePoint]:
    points = []
    for row in rows:
        found = proportion(int(row[hits]), int(row[of]))
        points.append(
            RatePoint(
                at=utc(row["at"]),
                estimate=found.estimate if found else None,
                lower=found.lower if found else None,
                upper=found.upper if found else None,
                n=int(row[of]),
            )
        )
    return points


def _floor(arm: ArmAnalysis, rules: Sequence[RuleSettings]) -> tuple[float | None, str]:
    """The equivalence floor a rule holds this arm to (drawn on its equivalence chart), with
    the rule's latest decision."""
    for rule in rules:
        applies = any(fnmatchcase(arm.migration, m) for m in rule.migrations) and any(
            fnmatchcase(arm.arm, a) for a in rule.arms
        )
        if rule.metric is Metric.EQUIVALENCE_RATE and rule.threshold is not None and applies:
            state = next((t.decision for t in arm.triggers if t.rule == rule.name), "no decision")
            return rule.threshold, f"{rule.name} ({state})"
    return None, ""


def migration_charts(
    reader: Reader,
    window: Window,
    analysis: MigrationAnalysis,
    rules: Sequence[RuleSettings] = (),
) -> dict[str, dict[str, Markup]]:
    rows = queries.series(
        reader,
        window,
        migration=analysis.migration,
        judge_version=analysis.judge_version,
        segment=analysis.segment,
    )
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_arm.setdefault(row["arm"], []).append(row)
    noise = next((a.arm for a in analysis.arms if a.arm_kind == "noise"), None)
    all_curves = queries.latency_curves(
        reader, window, migration=analysis.migration, judge_version=analysis.judge_version
    )
    charts: dict[str, dict[str, Markup]] = {}
    for arm in analysis.arms:
        mine = by_arm.get(arm.arm, [])
        baseline = _rate_points(by_arm.get(noise or "", []), "verdict_equivalent", "judged")
        level, label = _floor(arm, rules) if arm.arm_kind != "noise" else (None, "")
        curves = all_curves.get(arm.arm, {})
        named = {
            f"primary ({arm.primary.model or 'primary'})": curves.get("primary", []),
            f"{arm.arm} ({arm.candidate.model or 'candidate'})": curves.get("candidate", []),
        }
        charts[arm.arm] = {
            "equivalence": rate_chart(
                _rate_points(mine, "verdict_equivalent", "judged"),
                title=f"Equivalence rate of {arm.arm}",
                threshold=level,
                threshold_label=label,
                baseline=baseline if noise and arm.arm != noise else None,
            ),
            "refusals": rate_chart(
                _rate_points(mine, "refusals_candidate", "pairs"),
                title=f"Refusal rate of {arm.arm}",
                baseline=_rate_points(mine, "refusals_primary", "pairs"),
                baseline_label="primary",
            ),
            "latency": quantile_chart(
                {k: v for k, v in named.items() if v}, title=f"Latency, primary vs {arm.arm}"
            ),
            "verdicts": stacked_bar(
                [(k.replace("_", " "), float(v)) for k, v in arm.verdicts.items()],
                title="Verdict mix",
            ),
            "formats": bar_chart(
                [(k, v / arm.pairs) for k, v in arm.format_kinds.items()] if arm.pairs else [],
                title="Format drift by kind",
            ),
        }
    return charts


# -- one pair ------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


def word_diff(old: str, new: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Both texts as (op, text) runs, op `same`, `del` (only in old) or `ins` (only in new)."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    left: list[tuple[str, str]] = []
    right: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            left.append(("same", "".join(a[i1:i2])))
            right.append(("same", "".join(b[j1:j2])))
            continue
        if i2 > i1:
            left.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            right.append(("ins", "".join(b[j1:j2])))
    return left, right


def _output_text(result: dict[str, Any] | None) -> str:
    if not result:
        return ""
    output = result.get("output") or {}
    text = output.get("text") or ""
    for call in output.get("tool_calls") or []:
        arguments = call.get("arguments")
        text += f"\n→ {call.get('name')}({orjson.dumps(arguments).decode()})"
    if not text and result.get("error"):
        error = result["error"]
        text = f"[{error.get('kind')}] {error.get('message')}"
    return text


def pair_view(found: dict[str, Any]) -> dict[str, Any]:
    pair = orjson.loads(found["pair_json"]) if found["pair_json"] else None
    primary = _output_text(pair["call"]["primary"]) if pair else ""
    candidate = _output_text(pair["result"]) if pair else ""
    left, right = word_diff(primary, candidate)
    request = ""
    if pair and pair["call"].get("request") is not None:
        request = orjson.dumps(pair["call"]["request"], option=orjson.OPT_INDENT_2).decode()
    return {
        "comparisons": found["comparisons"],
        "current": found["comparisons"][0],
        "reviews": found["reviews"],
        "pair": pair,
        "request_json": request,
        "primary_runs": left,
        "candidate_runs": right,
        "bodies_gone": pair is None,
    }


# -- review --------------------------------------------------------------------------------


def kind_of(row: dict[str, Any]) -> str:
    """The disagreement kind of a comparisons row (the queue's `_KIND`, in Python)."""
    if row["verdict"] == "candidate_worse":
        return "judged worse"
    if row["refusal_finding"] == "candidate_only":
        return "candidate refuses"
    if row["verdict"] == "different":
        return "different"
    if row["verdict"] == "error":
        return "judge error"
    if row["refusal_finding"] == "primary_only":
        return "primary refuses"
    return "format drift" if row["format_drift"] else ""


def group_by_kind(items: Sequence[QueueItem]) -> list[tuple[str, list[QueueItem]]]:
    groups: dict[str, list[QueueItem]] = {}
    for item in items:
        groups.setdefault(item.kind, []).append(item)
    return sorted(groups.items(), key=lambda kv: (-max(i.severity for i in kv[1]), kv[0]))
