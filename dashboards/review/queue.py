"""The daily review: queues of pairs to label, the labels, and one pair in full.

Two queues over a window (by default yesterday, UTC):

- **disagreements**, worst first: the candidate judged worse or refusing where the primary
  answered (severity 4), different (3; 2 when the judge's two orders disagreed), a judge error
  or the primary alone refusing (2), format drift alone (1). Grouped by kind on the page.
- **calibration**: judged pairs in the order of `cityHash64(call_id, arm)`, a uniform random
  sample whatever the judge said; its labels correct the judge's rates
  (`dashboards.analysis.corrections`).

Pairs someone labelled already (for that judge version) leave both queues. A label is a row
in `reviews`; the latest per pair is current, the history stays.

Review actions, as the page offers them (and their keys): agree with the judge (`a`) stores the
judge's verdict; judge wrong (`w`) stores the opposite finding — `refusal_wrong` on a refusal
disagreement, `format_ok` on a drift the judge found equivalent, else `equivalent` for a pair
the judge found wanting and `different` for one it found equivalent; acceptable difference
(`d`) stores `acceptable`; real regression (`r`) stores `candidate_worse`; skip (`s`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from dashboards.analysis.corrections import CALIBRATION, DISAGREEMENTS
from dashboards.analysis.queries import Reader, span
from dashboards.analysis.window import Window

Action = Literal["agree", "wrong", "acceptable", "regression", "skip"]
ACTIONS: dict[str, str] = {
    "agree": "a",
    "wrong": "w",
    "acceptable": "d",
    "regression": "r",
    "skip": "s",
}
LABELS = (
    "equivalent",
    "candidate_better",
    "candidate_worse",
    "different",
    "refusal_wrong",
    "format_ok",
    "skip",
    "acceptable",
)
REVIEW_COLUMNS = (
    "call_id",
    "migration",
    "arm",
    "judge_version",
    "reviewer",
    "label",
    "note",
    "queue",
    "created_at",
)

_SEVERITY = """multiIf(
    verdict = 'candidate_worse' OR refusal_finding = 'candidate_only', 4,
    verdict = 'different' AND judge_orders_agree = false, 2,
    verdict = 'different', 3,
    verdict = 'error' OR refusal_finding = 'primary_only', 2,
    format_drift, 1, 0)"""
_KIND = """multiIf(
    verdict = 'candidate_worse', 'judged worse',
    refusal_finding = 'candidate_only', 'candidate refuses',
    verdict = 'different', 'different',
    verdict = 'error', 'judge error',
    refusal_finding = 'primary_only', 'primary refuses',
    format_drift, 'format drift', '')"""
_COLUMNS = f"""call_id, migration, arm, toString(arm_kind) AS arm_kind, judge_version,
    toString(verdict) AS verdict, toString(tier) AS tier, verdict_reason,
    toString(refusal_finding) AS refusal_finding, format_findings, candidate_error,
    captured_at, segment, {_SEVERITY} AS severity, {_KIND} AS kind"""
_MINE = """migration = {migration:String} AND judge_version = {judge_version:String}
    AND captured_at >= fromUnixTimestamp64Micro({since_us:Int64}, 'UTC')
    AND captured_at < fromUnixTimestamp64Micro({until_us:Int64}, 'UTC')
    AND (call_id, arm) NOT IN (SELECT call_id, arm FROM reviews
        WHERE migration = {migration:String} AND judge_version = {judge_version:String})"""


@dataclass(frozen=True, slots=True)
class QueueItem:
    call_id: str
    migration: str
    arm: str
    arm_kind: str
    judge_version: str
    verdict: str
    tier: str
    reason: str
    refusal_finding: str
    format_findings: tuple[str, ...]
    candidate_error: str
    captured_at: datetime
    segment: dict[str, str]
    severity: int
    kind: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> QueueItem:
        captured: datetime = row["captured_at"]
        if captured.tzinfo is None:
            captured = captured.replace(tzinfo=UTC)
        return cls(
            call_id=row["call_id"],
            migration=row["migration"],
            arm=row["arm"],
            arm_kind=row["arm_kind"],
            judge_version=row["judge_version"],
            verdict=row["verdict"],
            tier=row["tier"],
            reason=row["verdict_reason"],
            refusal_finding=row["refusal_finding"],
            format_findings=tuple(row["format_findings"]),
            candidate_error=row["candidate_error"],
            captured_at=captured,
            segment=dict(row["segment"]),
            severity=int(row["severity"]),
            kind=row["kind"] or "calibration",
        )


def queue(
    reader: Reader,
    window: Window,
    *,
    migration: str,
    judge_version: str,
    which: str = DISAGREEMENTS,
    limit: int = 100,
) -> list[QueueItem]:
    """The unlabelled pairs of a queue, in the order a reviewer should take them."""
    if which == CALIBRATION:
        where = "verdict IN ('equivalent', 'candidate_better', 'candidate_worse', 'different')"
        order = "cityHash64(call_id, arm)"
    elif which == DISAGREEMENTS:
        where = "severity > 0"
        order = "severity DESC, captured_at DESC, call_id"
    else:
        raise ValueError(f"queue {which!r}: expected {DISAGREEMENTS} or {CALIBRATION}")
    sql = f"""SELECT {_COLUMNS} FROM comparisons
WHERE {_MINE} AND {where}
ORDER BY {order}
LIMIT 1 BY call_id, arm
LIMIT {{limit:UInt32}}"""
    params = {"migration": migration, "judge_version": judge_version, "limit": limit}
    return [QueueItem.of(r) for r in reader.select(sql, {**params, **span(window)})]


def label_for(action: str, verdict: str, kind: str) -> str:
    """The `reviews.label` a review action stores for a pair (see the module docstring)."""
    if action == "agree":
        return verdict if verdict in LABELS else "skip"
    if action == "wrong":
        if kind in ("candidate refuses", "primary refuses"):
            return "refusal_wrong"
        if kind == "format drift" and verdict == "equivalent":
            return "format_ok"
        return "different" if verdict == "equivalent" else "equivalent"
    if action == "acceptable":
        return "acceptable"
    if action == "regression":
        return "candidate_worse"
    if action == "skip":
        return "skip"
    raise ValueError(f"action {action!r}: expected one of {', '.join(ACTIONS)}")


def review_row(
    *,
    call_id: str,
    migration: str,
    arm: str,
    judge_version: str,
    reviewer: str,
    label: str,
    note: str = "",
    queue_name: str = DISAGREEMENTS,
    at: datetime | None = None,
) -> tuple[Any, ...]:
    if label not in LABELS:
        raise ValueError(f"label {label!r}: expected one of {', '.join(LABELS)}")
    return (
        call_id,
        migration,
        arm,
        judge_version,
        reviewer[:100] or "reviewer",
        label,
        note[:2000],
        queue_name,
        at or datetime.now(UTC),
    )


def pair_detail(reader: Reader, *, call_id: str, migration: str, arm: str) -> dict[str, Any]:
    """Everything stored about one pair: its comparisons (every judge version, newest first),
    the ShadowPair JSON (while its body TTL lasts) and the labels it received."""
    key = {"call_id": call_id, "migration": migration, "arm": arm}
    mine = "call_id = {call_id:String} AND migration = {migration:String} AND arm = {arm:String}"
    comparisons = reader.select(
        f"""SELECT *, toString(verdict) AS verdict, toString(tier) AS tier,
    toString(refusal_finding) AS refusal_finding
FROM comparisons WHERE {mine} ORDER BY judged_at DESC LIMIT 1 BY judge_version""",
        key,
    )
    pair = reader.select(f"SELECT pair_json FROM pairs WHERE {mine} LIMIT 1", key)
    reviews = reader.select(
        f"""SELECT reviewer, toString(label) AS label, note, queue, judge_version, created_at
FROM reviews WHERE {mine} ORDER BY created_at DESC""",
        key,
    )
    return {
        "comparisons": comparisons,
        "pair_json": pair[0]["pair_json"] if pair else "",
        "reviews": reviews,
    }
