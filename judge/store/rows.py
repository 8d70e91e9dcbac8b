"""Rows and statements the store writes: column lists, row builders, insert and journal.

Row builders avoid per-row Python overhead (the judge writes 5,000+ rows a second): tuples in
column order, enum members passed as they are, bodies as bytes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from judge.comparison import Comparison
from mirror.events import ShadowPair, decode_vector

COMPARISON_FIELDS: tuple[str, ...] = Comparison._fields


def comparison_row(comparison: Comparison) -> tuple[Any, ...]:
    """The row in `COMPARISON_FIELDS` order: a `Comparison` is a NamedTuple of its columns."""
    return comparison


CALL_COLUMNS = (
    "call_id", "captured_at", "api", "segment", "primary_provider", "primary_model", "stream",
    "primary_status", "primary_error", "primary_error_message", "primary_finish_reason",
    "primary_latency_ms", "primary_ttft_ms", "primary_input_tokens", "primary_output_tokens",
    "primary_cached_tokens", "request_truncated", "response_truncated", "request_body",
    "primary_output",
)  # fmt: skip
PAIR_COLUMNS = (
    "call_id", "migration", "arm", "arm_kind", "captured_at", "schema_version", "pair_json"
)  # fmt: skip


#: The `DateTime64(6, 'UTC')` columns the judge writes (schema.sql): sent as microseconds.
MICROS_COLUMNS = frozenset({"captured_at", "judged_at", "seen_at"})
REFERENCE_COLUMNS = (
    "migration", "arm", "role", "segment_key", "segment", "text_hash", "text", "primary_model",
    "primary_version", "candidate_model", "candidate_version", "primary_vector",
    "candidate_vector", "call_id", "seen_at", "retention_days",
)  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class ReferenceRow:
    """One row of `embedding_reference` (schema.sql, migration 9), fields in column order: a
    reference-set text of an embedding migration with both models' vectors."""

    migration: str
    arm: str
    role: str  # query | document
    segment_key: str
    segment: dict[str, str]
    text_hash: str
    text: str
    primary_model: str
    primary_version: str
    candidate_model: str
    candidate_version: str
    primary_vector: Sequence[float]
    candidate_vector: Sequence[float]
    call_id: str
    seen_at: datetime
    retention_days: int = 30

    def __post_init__(self) -> None:
        if self.role not in ("query", "document"):
            raise ValueError(f"role must be query or document, got {self.role!r}")
        if not 0 < self.retention_days < 65_536:
            raise ValueError(f"retention_days must be in 1..65535, got {self.retention_days}")


def reference_row(row: ReferenceRow) -> tuple[Any, ...]:
    """The row in `REFERENCE_COLUMNS` order, vectors as lists (numpy arrays welcome in)."""
    return (
        row.migration, row.arm, row.role, row.segment_key, row.segment, row.text_hash, row.text,
        row.primary_model, row.primary_version, row.candidate_model, row.candidate_version,
        [float(x) for x in row.primary_vector], [float(x) for x in row.candidate_vector],
        row.call_id, row.seen_at, row.retention_days,
    )  # fmt: skip


def reference_rows(pair: ShadowPair) -> list[ReferenceRow]:
    """An embedding pair's reference texts as `embedding_reference` rows."""
    call = pair.call
    return [
        ReferenceRow(
            migration=pair.migration,
            arm=pair.arm.name,
            role=text.role,
            segment_key=text.segment_key,
            segment=call.segment,
            text_hash=text.text_hash,
            text=text.text,
            primary_model=text.primary_model,
            primary_version=text.primary_version,
            candidate_model=text.candidate_model,
            candidate_version=text.candidate_version,
            primary_vector=decode_vector(text.primary_vector),
            candidate_vector=decode_vector(text.candidate_vector),
            call_id=call.call_id,
            seen_at=call.captured_at,
            retention_days=text.retention_days,
        )
        for text in pair.reference
    ]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch, for `fromUnixTimestamp64Micro` and `DateTime64(6)`."""
    if moment.tzinfo is None:
        raise ValueError(f"a timezone-aware datetime is needed, got {moment!r}")
    return (moment - _EPOCH) // _MICROSECOND


HOUR = 3_600_000_000  # microseconds


def journal(ch: Any, token: str, hours: list[int], state: str) -> None:
    ch.insert("write_journal", [[token, hours, state]], column_names=["token", "hours", "state"])


def hour_span(since: datetime, until: datetime) -> dict[str, int]:
    """Query parameters `lo`, `hi`: the whole hours that touch [since, until)."""
    lo, hi = micros(since) // HOUR * HOUR, -(-micros(until) // HOUR) * HOUR
    return {"lo": lo, "hi": max(hi, lo + HOUR)}


def where_clause(**filters: str | None) -> tuple[str, dict[str, str]]:
    given = {name: value for name, value in filters.items() if value is not None}
    clause = " AND ".join(f"{name} = {{{name}:String}}" for name in given)
    return (f" WHERE {clause}" if clause else ""), given


def insert(
    ch: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]], token: str
) -> None:
    if not rows:
        return
    data: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for i, name in enumerate(columns):
        if name in MICROS_COLUMNS:
            data[i] = _ticks(data[i])
    ch.insert(
        table,
        data,
        column_names=list(columns),
        column_oriented=True,
        settings={
            "insert_deduplication_token": f"{token}-{table}",
            "deduplicate_blocks_in_dependent_materialized_views": 1,
        },
    )


def _ticks(column: Sequence[Any]) -> Sequence[Any]:
    """A `DateTime64(6)` column of aware datetimes as microseconds since the epoch, what
    clickhouse-connect sends for it, without its per-value Python (two calls and a
    `timestamp()` per value, ~4 values a pair; issue 17). A column with anything else (a naive
    datetime, an integer) is left to clickhouse-connect."""
    try:
        return [(moment - _EPOCH) // _MICROSECOND for moment in column]
    except TypeError:
        return column


def json_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson refuses integers past 64 bits; JSON does not
        return json.dumps(value, separators=(",", ":")).encode()
