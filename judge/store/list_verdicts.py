"""`embedding_list_verdicts` (schema.sql, migration 11): the LLM judge's verdicts on an embedding
migration's least-agreeing queries, "which neighbour list serves this query better".

A row holds hashes only — the query text's SHA-256 and a digest of both lists' ids in order
(`dashboards.analysis.list_judge.lists_digest`) — with the verdict and the judge's reason, so
a verdict applies exactly while the query and both its lists are what was judged. Rows live the
migration's `retention_days` after `judged_at`, as the reference rows they were judged on.
Reads take the latest row per (query, lists), a verdict before an error (an error is asked
again next time, a verdict is kept).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

TABLE = "embedding_list_verdicts"
VERDICTS = ("candidate_better", "primary_better", "same", "error")
LIST_VERDICT_COLUMNS = (
    "migration", "arm", "primary_model", "primary_version", "candidate_model",
    "candidate_version", "query_hash", "lists_digest", "judge", "prompt_version", "verdict",
    "reason", "judged_at", "retention_days",
)  # fmt: skip
#: The judge's reason is cut to this many characters.
MAX_REASON = 1000


class Selecting(Protocol):
    def select(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class ListVerdictRow:
    """One row of `embedding_list_verdicts`, fields in column order."""

    migration: str
    arm: str
    primary_model: str
    primary_version: str
    candidate_model: str
    candidate_version: str
    query_hash: str
    lists_digest: str
    judge: str
    prompt_version: str
    verdict: str  # candidate_better | primary_better | same | error
    reason: str
    judged_at: datetime
    retention_days: int = 30

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {self.verdict!r}")
        if not 0 < self.retention_days < 65_536:
            raise ValueError(f"retention_days must be in 1..65535, got {self.retention_days}")


def list_verdict_row(row: ListVerdictRow) -> tuple[Any, ...]:
    return tuple(
        row.reason[:MAX_REASON] if name == "reason" else getattr(row, name)
        for name in LIST_VERDICT_COLUMNS
    )


_WHERE = (
    "migration = {migration:String} AND arm = {arm:String}"
    " AND judged_at >= now64(6) - toIntervalDay({days:UInt32})"
)


def table_exists(reader: Selecting) -> bool:
    """False on a store not migrated to 11 yet (a command reading an old store directly)."""
    found = reader.select(
        "SELECT count() AS n FROM system.tables"
        " WHERE database = currentDatabase() AND name = {table:String}",
        {"table": TABLE},
    )
    return bool(found and int(found[0]["n"]))


def verdicts_version(reader: Selecting, migration: str, arm: str, *, days: int) -> tuple[int, str]:
    """What changes whenever a verdict of the arm is written: the rows within the retention
    window and the latest `judged_at` (a cache key, as `reference_version`)."""
    if not table_exists(reader):
        return (0, "")
    rows = reader.select(
        f"SELECT count() AS rows, toString(max(judged_at)) AS latest FROM {TABLE} WHERE {_WHERE}",
        {"migration": migration, "arm": arm, "days": days},
    )
    return (int(rows[0]["rows"]), str(rows[0]["latest"])) if rows else (0, "")


def read_list_verdicts(
    reader: Selecting,
    *,
    migration: str,
    arm: str,
    models: tuple[str, str, str, str],
    prompt_version: str,
    query_hashes: Sequence[str],
    days: int,
) -> list[ListVerdictRow]:
    """The latest verdict per (query, lists) of these queries under this model pair (primary
    model and version, candidate model and version) and prompt version, from any judge; a
    verdict is preferred to a later error."""
    if not query_hashes or not table_exists(reader):
        return []
    names = ("primary_model", "primary_version", "candidate_model", "candidate_version")
    params: dict[str, Any] = {
        "migration": migration,
        "arm": arm,
        "days": days,
        "prompt_version": prompt_version,
        "hashes": list(query_hashes),
        **dict(zip(names, models, strict=True)),
    }
    rows = reader.select(
        f"""SELECT query_hash, lists_digest, judge, toString(verdict) AS verdict, reason,
    judged_at, retention_days
FROM {TABLE}
WHERE {_WHERE} AND primary_model = {{primary_model:String}}
    AND primary_version = {{primary_version:String}}
    AND candidate_model = {{candidate_model:String}}
    AND candidate_version = {{candidate_version:String}}
    AND prompt_version = {{prompt_version:String}} AND query_hash IN {{hashes:Array(String)}}
ORDER BY query_hash, lists_digest, verdict = 'error', judged_at DESC, inserted_at DESC
LIMIT 1 BY query_hash, lists_digest""",
        params,
    )
    return [
        ListVerdictRow(
            migration=migration,
            arm=arm,
            primary_model=models[0],
            primary_version=models[1],
            candidate_model=models[2],
            candidate_version=models[3],
            query_hash=str(r["query_hash"]),
            lists_digest=str(r["lists_digest"]),
            judge=str(r["judge"]),
            prompt_version=prompt_version,
            verdict=str(r["verdict"]),
            reason=str(r["reason"]),
            judged_at=r["judged_at"],
            retention_days=int(r["retention_days"]),
        )
        for r in rows
    ]
