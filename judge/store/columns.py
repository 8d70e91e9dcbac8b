"""The judge's batch inserts as one JSON document of columns, built by orjson in one call.

clickhouse-connect serialises an insert into the Native format in Python: the LowCardinality
dictionaries, the strings, the null masks, value by value. For the judge's three tables that
was ~20 µs a pair under the interpreter lock, a fifth of what one process can spend on a pair
at 10,000 pairs/s (issue 17). Here a batch's rows go as a `JSONCompactColumns` document (a JSON
array of columns, in `columns` order) that orjson writes in one C call; the engine parses it
without our lock, beside the next batch's scoring. Same rows, one block, the same
deduplication token as `judge.store.rows.insert`:
- datetimes go as orjson writes them (RFC 3339 with their offset, microseconds), read with
  `date_time_input_format=best_effort`;
- a `JSON_TEXT_COLUMNS` column (a `String` holding JSON) takes a dict, stored as orjson's
  compact text of it (`input_format_json_read_objects_as_strings`: the bytes `rows.json_bytes`
  gave before), or, as the last column, a JSON object's bytes, spliced into the document as
  they are and stored byte for byte (a pair's message as it came from the bus);
- a value JSON cannot carry exactly (a float that is not finite, which orjson would write as
  null; an integer past 64 bits; a string with a lone surrogate; a type orjson does not know)
  sends that table's batch the Native way instead, as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson

from judge.store.rows import insert as insert_native
from judge.store.rows import json_bytes
from mirror.events import CapturedCall

#: The `Float64` and `Nullable(Float64)` columns of the tables written here (a test holds this
#: to the schema): a NaN or an infinity there would become null in JSON.
FLOAT_COLUMNS = frozenset(
    {
        "primary_latency_ms", "primary_ttft_ms", "candidate_latency_ms", "candidate_ttft_ms",
        "refusal_primary_score", "refusal_candidate_score", "length_ratio", "primary_cost_usd",
        "candidate_cost_usd",
    }
)  # fmt: skip
#: `String` columns that hold JSON text.
JSON_TEXT_COLUMNS = frozenset({"request_body", "pair_json"})

SETTINGS = {
    "date_time_input_format": "best_effort",
    "input_format_json_read_objects_as_strings": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
}


def call_row(call: CapturedCall) -> tuple[Any, ...]:
    """A `calls` row in `rows.CALL_COLUMNS` order: the request as its dict (or the text kept
    when it was not a JSON object), the answer's text as a str."""
    # Enum members go in as they are (StrEnum: already str); `.value` costs a call per row.
    primary = call.primary
    output, usage, error = primary.output, primary.usage, primary.error
    request = call.request if call.request is not None else (call.request_text or "")
    return (
        call.call_id, call.captured_at, call.api, call.segment, primary.provider,
        primary.model or "", primary.stream, primary.status_code or 0,
        error.kind if error else "", error.message if error else "",
        output.finish_reason or "" if output else "", primary.latency_ms, primary.ttft_ms,
        usage.input_tokens if usage else None, usage.output_tokens if usage else None,
        usage.cached_tokens if usage else None, call.truncated.request, call.truncated.response,
        request, output.text if output else "",
    )  # fmt: skip


def document(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes | None:
    """The rows' JSON document, or None when it takes the Native way (or there are none). Pure
    Python: the judge builds it before its turn at the store (`Store.prepare`)."""
    if not rows:
        return None
    return _document(columns, list(zip(*rows, strict=True)))


def send(
    ch: Any,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    body: bytes | None,
    token: str,
) -> None:
    """Insert `rows` (in `columns` order) into `table` as one block deduplicated by `token`, as
    `rows.insert` does: as `body` (`document(columns, rows)`), or the Native way if None."""
    if not rows:
        return
    if body is None:
        insert_native(ch, table, columns, _native(columns, rows), token)
        return
    ch.raw_insert(
        table,
        list(columns),
        body,
        settings={**SETTINGS, "insert_deduplication_token": f"{token}-{table}"},
        fmt="JSONCompactColumns",
    )


def _document(columns: Sequence[str], data: list[tuple[Any, ...]]) -> bytes | None:
    """The JSON document, or None when a value would not come through it exactly."""
    spliced: tuple[Any, ...] = ()
    if columns[-1] in JSON_TEXT_COLUMNS and all(_object_bytes(value) for value in data[-1]):
        spliced = data.pop()
    for name, column in zip(columns, data, strict=False):
        # `filter(None, ...)` drops the nulls (and zeros); a sum that is not finite means a
        # value that is not, or an overflow: either way the Native insert is exact
        if name in FLOAT_COLUMNS and not math.isfinite(sum(filter(None, column))):
            return None
    try:
        document: bytes = orjson.dumps(data)
    except TypeError:  # past 64 bits, a lone surrogate, bytes, a type orjson does not know
        return None
    if not spliced:
        return document
    head = document[:-1] + b"," if data else b"["
    return b"".join((head, b"[", b",".join(spliced), b"]]"))


def _object_bytes(value: Any) -> bool:
    return type(value) is bytes and value[:1] == b"{" and value[-1:] == b"}"


def _native(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """The rows as `rows.insert` takes them: JSON text columns as bytes."""
    texts = [i for i, name in enumerate(columns) if name in JSON_TEXT_COLUMNS]
    if not texts:
        return [tuple(row) for row in rows]
    native = []
    for row in rows:
        values = list(row)
        for i in texts:
            if isinstance(values[i], dict):
                values[i] = json_bytes(values[i])
        native.append(tuple(values))
    return native
