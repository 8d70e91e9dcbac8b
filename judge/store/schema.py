"""The ClickHouse schema: tables, the aggregate views, and how it is applied and evolved.

The static tables are in `schema.sql` (package data); the stats table and its view are generated
here from `STATS_COLUMNS`, so the view, the table and their readers cannot drift apart. The
same DDL runs on chDB and on a single ClickHouse server (MergeTree family); a cluster uses
`deploy/clickhouse/cluster.sql` (Replicated tables with the same columns).

Tables
------
- `calls` — one row per captured call a migration sampled (written with its pairs),
  `ReplacingMergeTree` ordered by `call_id`:
  labels, primary status/latency/tokens, and two ZSTD-compressed body columns (`request_body`,
  `primary_output`) that a column TTL of `body_ttl_days` empties (the row stays; the TTL also
  applies at insert, so a call older than the TTL is stored without its bodies).
- `pairs` — the ShadowPair JSON per (call_id, migration, arm), compressed, body TTL as above,
  so `rejudge` can score stored pairs again. `ReplacingMergeTree`.
- `comparisons` — one row per (call_id, migration, arm, judge_version), a column per
  `Comparison` field. `ReplacingMergeTree` ordered by that key (call_id first: UUIDv7, so
  time-ordered); a minmax index on `captured_at` and a set index on `migration` let time-range
  and per-migration reads skip granules.
- `reviews` (human labels), `trigger_decisions` (the triggers' audit trail), `rollout` (weight
  history; the latest row per (migration, arm) is current: `argMax(weight, changed_at)`). Plain
  `MergeTree`: they keep history.
- `embedding_reference` (migration 9) — an embedding migration's reference set: texts the
  runner sampled by bottom-k of their SHA-256 per (role, segment_key), with both models'
  vectors (`mirror.runner.embedding_arm`). `ReplacingMergeTree(inserted_at)` on (migration, arm,
  role, segment_key, text_hash): a text sent twice collapses, readers take one per key. Vectors
  are sensitive: each row carries its migration's `retention_days` and a row TTL deletes it that
  long after `seen_at` (per row, so there is nothing to re-state as for the body TTL).
- `embedding_list_verdicts` (migration 11) — the LLM judge's "which neighbour list serves this
  query better" on an embedding migration's least-agreeing queries (`judge.store.list_verdicts`):
  hashes only (the query's SHA-256, a digest of both lists' ids) with the verdict and reason,
  `ReplacingMergeTree(inserted_at)` on (migration, arm, model pair, query, lists, judge, prompt
  version), each row under its migration's `retention_days` TTL like the reference rows.
- `comparison_stats` — a plain view over `comparison_stats_hourly` with the merges done: the
  same key, numbers instead of states, for Grafana and ad-hoc SQL.
- `comparison_stats_hourly` — `AggregatingMergeTree` filled by `comparison_stats_hourly_mv`
  from every insert into `comparisons`. One row per (migration, arm, judge_version, segment,
  hour, arm_kind) where `segment` is `*` (all traffic) or `label=value` (the MV ARRAY JOINs the
  call's labels, so "refusal rate for tenant=acme" is `WHERE segment = 'tenant=acme'`; every
  pair is also in `translation=faithful` or `translation=approximate`, after its candidate
  request's translation, migration 8, and in each of its labels crossed with that one,
  `translation=faithful,tenant=acme`, migration 10), `hour` is the capture hour.
  `judge_version` is part of the key: a rejudge writes a second, complete set of rows beside
  the first, and a dashboard picks the version it shows.

Review labels (`reviews.label`): `equivalent`, `candidate_better`, `candidate_worse`,
`different` — the reviewer's own verdict, in the judge's vocabulary, so judge accuracy is a
join; `refusal_wrong` — the refusal finding on the pair is wrong (the detector misread a side);
`format_ok` — the reported format drift does no harm; `skip` — cannot tell.

Reading the aggregates
----------------------
Rows with the same key are merged in the background at an unknown time, so a reader always
aggregates, never reads a row as final: counts and sums with `sum(col)`, label counters with
`sumMap(col)`, latency with `quantilesTDigestMerge(0.5, 0.99)(col)` (any levels). E.g.::

    SELECT arm, sum(refusals_candidate) / sum(pairs) AS refusal_rate,
           quantilesTDigestMerge(0.99)(candidate_latency_ms_q)[1] AS p99
    FROM comparison_stats_hourly
    WHERE migration = 'm' AND judge_version = 'v3' AND segment = 'tenant=acme'
      AND hour >= now() - INTERVAL 1 DAY
    GROUP BY arm

Latency states only take the sides that answered (`*_error = ''`), so fast 429s and skipped
arms do not flatter a p99; errors are counted in `primary_errors` / `candidate_errors`.

Exactly once
------------
A materialized view fires on every insert, so a row inserted twice counts twice in the
aggregates even though `ReplacingMergeTree` will eventually drop it from `comparisons`. The
store (`judge.store.store.Store.insert_pairs`) therefore inserts each comparison key once:

1. it deduplicates the batch by key (first wins);
2. it asks which keys `comparisons` already holds — one query per batch, a range on the first
   key column (`call_id` between the batch's smallest and largest: UUIDv7, so a live batch spans
   the seconds to minutes between capture and judging) plus an `IN` set, both served by the
   primary index (1 granule of 13 in `EXPLAIN indexes = 1` on a 100k-row table) — and drops
   those rows. `calls`
   and `pairs` rows are dropped when any comparison of their call / pair exists; they are
   written before `comparisons`, so a crash between the inserts leaves at worst a duplicate
   there, which `ReplacingMergeTree` and the readers (`LIMIT 1 BY`) absorb;
3. every insert carries a fresh `insert_deduplication_token`, with
   `deduplicate_blocks_in_dependent_materialized_views = 1` and a deduplication window on the
   written tables and the stats table: a transport-level resend of the same insert (the HTTP
   client retries after a dropped connection; a Replicated insert whose ack was lost) is
   dropped by the server, views included. The token is fresh per `insert_pairs` call, not
   derived from the keys, so a deliberate re-insert after rows were deleted is never dropped.

Counting distinct keys in the view instead (`uniqExact` states over the key) would make
duplicates harmless but keeps every key of every hour in memory and on disk — a copy of the
table's key column per segment — and approximate `uniq` would make the headline counts
approximate; filtering before the insert keeps the aggregates plain sums.

Residual risk. (a) Two writers inserting the same keys at once both pass the filter (one
`Store` serialises its own calls, so this needs two). With Kafka that means two judges owning
one partition: a judge that lost its partition (session or poll timeout) still writing its
in-flight batch while the new owner re-reads it. The double count is bounded by that batch
(at most `store.batch_rows` pairs) per such event, and it does not happen when the revoke
callback finishes the in-flight batch before giving the partition up; with chDB one process
owns the directory, so there is one writer. (b) An insert whose `comparisons` part committed
but whose view insert failed (process killed between the two) under-counts that batch: the
retry finds the keys present. Both show as a difference between `uniqExact` over
`comparisons` and `sum(pairs)` for an hour (`Store.verify_stats`), repaired by recomputing the
hour from `comparisons FINAL` (`Store.rebuild_stats`, the same SELECT as the view).

Evolving the schema
-------------------
`MIGRATIONS` is append-only; `schema_versions` records the versions applied. Each statement is
idempotent on its own (`IF NOT EXISTS`, `ADD COLUMN IF NOT EXISTS`), so two processes migrating
at once, or a migration interrupted half-way, are harmless. To change the schema, append a
`-- migration N: name` section to `schema.sql` (e.g. `ALTER TABLE comparisons ADD COLUMN IF NOT
EXISTS ...`, or an Enum8 widened by `MODIFY COLUMN`, which is metadata-only) and the same change
to `deploy/clickhouse/cluster.sql`; never edit an applied one. A new aggregate table is
created empty and backfilled from `comparisons` with `Store.rebuild_stats`-style INSERT SELECT.
A new stats column or segment (migrations 3, 8 and 10) is a generated section: the view dropped, the
column added, the aggregates recomputed from `comparisons FINAL`, the view created again
(`_recompute`); the SQL an earlier migration ran is kept as it was (`_STATS_COLUMNS_7`,
`translation=False`; `_STATS_COLUMNS_9`, `crossed=False`), so a fresh database replays every
step as an old one did.
The body TTL is not a migration: `apply_migrations` re-states it whenever `body_ttl_days`
differs from the table's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

#: Latency levels precomputed in the state type; `quantilesTDigestMerge` reads any levels.
QUANTILES = "0.5, 0.9, 0.95, 0.99"
#: Tables with body columns under the `body_ttl_days` TTL.
BODY_COLUMNS: dict[str, tuple[str, ...]] = {
    "calls": ("request_body", "primary_output"),
    "pairs": ("pair_json",),
}
_TTL = "toDateTime(captured_at) + toIntervalDay({body_ttl_days})"

_COUNT = "SimpleAggregateFunction(sum, UInt64)"
_TOKENS = "SimpleAggregateFunction(sum, Int64)"
_FSUM = "SimpleAggregateFunction(sum, Float64)"
_DIGEST = f"AggregateFunction(quantilesTDigest({QUANTILES}), Float64)"
_LABELS = "SimpleAggregateFunction(sumMap, Map(String, UInt64))"


def _digest(column: str, side: str) -> str:
    ok = f"isNotNull({column}) AND {side}_error = ''"
    return f"quantilesTDigestStateIf({QUANTILES})(assumeNotNull({column}), {ok})"


def _labels(array: str) -> str:
    ones = f"arrayMap(x -> toUInt64(1), {array})"
    return f"sumMap(CAST(mapFromArrays({array}, {ones}), 'Map(String, UInt64)'))"


def _known(side: str) -> str:
    return f"countIf(isNotNull({side}_input_tokens) AND isNotNull({side}_output_tokens))"


def reason_cause(reason: str) -> str:
    """A verdict reason without its details, fit for a label and a coverage table:
    `candidate failed (http): 500` is `candidate failed`, `candidate skipped: untranslatable:
    messages[3]...` is `candidate skipped: untranslatable` (a skip's second part says which
    skip). `CAUSE_SQL` is the same function in SQL; a test holds them equal."""
    parts = reason.split(":")
    cause = parts[0].split(" (", 1)[0].strip(" ")
    if cause.endswith(" skipped") and len(parts) > 1:
        detail = parts[1].split(" (", 1)[0].strip(" ")
        if detail:
            cause = f"{cause}: {detail}"
    return cause[:60] or "unknown"


_PART = "trimBoth(splitByString(' (', splitByChar(':', verdict_reason)[{i}])[1])"
_JOIN = "(h, d) -> if(endsWith(h, ' skipped') AND d != '', concat(h, ': ', d), h)"
#: `[reason_cause(verdict_reason)]` in SQL.
CAUSE_SQL = (
    "arrayMap(c -> if(c = '', 'unknown', substringUTF8(c, 1, 60)),"
    f" arrayMap({_JOIN}, [{_PART.format(i=1)}], [{_PART.format(i=2)}]))"
)


def _cause_of(verdict: str) -> str:
    return f"if(verdict = '{verdict}', {CAUSE_SQL}, [])"


#: The stats table's value columns: (name, type, expression over `comparisons` rows).
STATS_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("pairs", _COUNT, "count()"),
    ("judged", _COUNT, "countIf(verdict NOT IN ('error', 'not_judged'))"),
    ("verdict_equivalent", _COUNT, "countIf(verdict = 'equivalent')"),
    ("verdict_candidate_better", _COUNT, "countIf(verdict = 'candidate_better')"),
    ("verdict_candidate_worse", _COUNT, "countIf(verdict = 'candidate_worse')"),
    ("verdict_different", _COUNT, "countIf(verdict = 'different')"),
    ("verdict_error", _COUNT, "countIf(verdict = 'error')"),
    ("verdict_not_judged", _COUNT, "countIf(verdict = 'not_judged')"),
    ("tier_exact", _COUNT, "countIf(tier = 'exact')"),
    ("tier_json", _COUNT, "countIf(tier = 'json')"),
    ("tier_llm", _COUNT, "countIf(tier = 'llm')"),
    ("tier_none", _COUNT, "countIf(tier = 'none')"),
    ("cached_verdicts", _COUNT, "countIf(judge_cached)"),
    ("judge_orders_disagree", _COUNT, "countIf(judge_orders_agree = false)"),
    ("refusals_primary", _COUNT, "countIf(refusal_primary)"),
    ("refusals_candidate", _COUNT, "countIf(refusal_candidate)"),
    ("refusal_candidate_only", _COUNT, "countIf(refusal_finding = 'candidate_only')"),
    ("refusal_primary_only", _COUNT, "countIf(refusal_finding = 'primary_only')"),
    ("refusal_both", _COUNT, "countIf(refusal_finding = 'both')"),
    ("format_drifts", _COUNT, "countIf(format_drift)"),
    ("primary_errors", _COUNT, "countIf(primary_error != '')"),
    ("candidate_errors", _COUNT, "countIf(candidate_error != '')"),
    ("primary_input_tokens_sum", _TOKENS, "sum(ifNull(primary_input_tokens, 0))"),
    ("primary_output_tokens_sum", _TOKENS, "sum(ifNull(primary_output_tokens, 0))"),
    ("candidate_input_tokens_sum", _TOKENS, "sum(ifNull(candidate_input_tokens, 0))"),
    ("candidate_output_tokens_sum", _TOKENS, "sum(ifNull(candidate_output_tokens, 0))"),
    ("primary_priced", _COUNT, "countIf(isNotNull(primary_cost_usd))"),
    ("candidate_priced", _COUNT, "countIf(isNotNull(candidate_cost_usd))"),
    ("primary_cost_usd_sum", _FSUM, "sum(ifNull(primary_cost_usd, 0))"),
    ("candidate_cost_usd_sum", _FSUM, "sum(ifNull(candidate_cost_usd, 0))"),
    ("length_ratio_n", _COUNT, "countIf(isNotNull(length_ratio))"),
    ("length_ratio_sum", _FSUM, "sum(ifNull(length_ratio, 0))"),
    ("primary_latency_ms_sum", _FSUM, "sumIf(primary_latency_ms, primary_error = '')"),
    ("candidate_latency_ms_sum", _FSUM, "sumIf(candidate_latency_ms, candidate_error = '')"),
    ("primary_latency_ms_q", _DIGEST, _digest("primary_latency_ms", "primary")),
    ("candidate_latency_ms_q", _DIGEST, _digest("candidate_latency_ms", "candidate")),
    ("primary_ttft_ms_q", _DIGEST, _digest("primary_ttft_ms", "primary")),
    ("candidate_ttft_ms_q", _DIGEST, _digest("candidate_ttft_ms", "candidate")),
    ("format_finding_counts", _LABELS, _labels("format_findings")),
    ("candidate_error_kinds", _LABELS, _labels("arrayFilter(x -> x != '', [candidate_error])")),
    # migration 3: coverage, so a figure whose inputs are partly unknown says how much is known
    ("primary_tokens_known", _COUNT, _known("primary")),
    ("candidate_tokens_known", _COUNT, _known("candidate")),
    ("primary_ttft_n", _COUNT, "countIf(isNotNull(primary_ttft_ms) AND primary_error = '')"),
    ("candidate_ttft_n", _COUNT, "countIf(isNotNull(candidate_ttft_ms) AND candidate_error = '')"),
    ("not_judged_causes", _LABELS, _labels(_cause_of("not_judged"))),
    ("error_causes", _LABELS, _labels(_cause_of("error"))),
    # migration 8: pairs whose candidate request was translated approximately, and by note
    ("approximate_pairs", _COUNT, "countIf(notEmpty(candidate_approximations))"),
    ("approximation_counts", _LABELS, _labels("candidate_approximations")),
    # migration 10: each side's refusal verdicts the LLM tier decided, and the refusals among them
    ("refusal_llm_decided_primary", _COUNT, "countIf(refusal_primary_tier = 'llm')"),
    ("refusal_llm_decided_candidate", _COUNT, "countIf(refusal_candidate_tier = 'llm')"),
    (
        "refusal_llm_found_primary",
        _COUNT,
        "countIf(refusal_primary_tier = 'llm' AND refusal_primary)",
    ),
    (
        "refusal_llm_found_candidate",
        _COUNT,
        "countIf(refusal_candidate_tier = 'llm' AND refusal_candidate)",
    ),
)
#: The columns migration 10 added to the stats table.
STATS_COLUMNS_10 = STATS_COLUMNS[-4:]
#: The stats columns before migration 10: what migration 8 created, as it was written.
_STATS_COLUMNS_9 = STATS_COLUMNS[:-4]
#: The columns migration 8 added to the stats table.
STATS_COLUMNS_8 = _STATS_COLUMNS_9[-2:]
#: The stats columns before migration 8: what migrations 1, 3 and 5 create, as they did when
#: they were written (their SQL must not change once applied).
_STATS_COLUMNS_7 = _STATS_COLUMNS_9[:-2]
#: The columns migration 3 added to the stats table (the rest came with migration 1).
STATS_COLUMNS_3 = _STATS_COLUMNS_7[-6:]
STATS_KEY = ("migration", "arm", "judge_version", "segment", "hour", "arm_kind")
#: Every column of the stats table, in the order of `stats_select`.
STATS_NAMES = STATS_KEY + tuple(name for name, _, _ in STATS_COLUMNS)
_STATS_NAMES_7 = STATS_KEY + tuple(name for name, _, _ in _STATS_COLUMNS_7)
_STATS_NAMES_9 = STATS_KEY + tuple(name for name, _, _ in _STATS_COLUMNS_9)
#: The segment label the view gives every pair besides its own labels (migration 8):
#: `translation=faithful` or `translation=approximate` (`ArmResult.approximations` not empty),
#: so the figures without (or of only) approximately translated pairs are read like any
#: segment's. The name is reserved: the capture drops a call's own label of that name.
TRANSLATION_LABEL = "translation"  # in mirror.events.RESERVED_SEGMENT_LABELS
FAITHFUL_SEGMENT = f"{TRANSLATION_LABEL}=faithful"
APPROXIMATE_SEGMENT = f"{TRANSLATION_LABEL}=approximate"
_TRANSLATION_OF = (
    f"if(empty(candidate_approximations), '{FAITHFUL_SEGMENT}', '{APPROXIMATE_SEGMENT}')"
)
_TRANSLATION = f"[{_TRANSLATION_OF}]"
#: Migration 10: every labelled segment is also crossed with the pair's translation segment,
#: `translation=approximate,tenant=acme`, so "tenant acme without the approximate pairs" is read
#: like any segment (the migration page's segment with `?approximate=`). The translation part
#: comes first: no call's own label is named `translation`, so a segment that starts with
#: `translation=faithful,` or `translation=approximate,` is always a crossed one, whatever the
#: label's value holds (`crossed_segment`, `split_segment`, `CROSSED_SQL`). A pair with n labels
#: adds n rows to its hour's aggregates (2n + 2 in all).
CROSS = ","
_CROSSED = (
    f"arrayMap((k, v) -> concat({_TRANSLATION_OF}, '{CROSS}', k, '=', v),"
    " mapKeys(segment), mapValues(segment))"
)
#: SQL over the stats table: true for a crossed segment (which the segment tables leave out).
CROSSED_SQL = (
    f"(startsWith(segment, '{FAITHFUL_SEGMENT}{CROSS}')"
    f" OR startsWith(segment, '{APPROXIMATE_SEGMENT}{CROSS}'))"
)


def crossed_segment(segment: str, translation: str) -> str:
    """The segment of the pairs in both `segment` (`label=value`) and `translation`
    (`FAITHFUL_SEGMENT` or `APPROXIMATE_SEGMENT`)."""
    if translation not in (FAITHFUL_SEGMENT, APPROXIMATE_SEGMENT):
        raise ValueError(f"{translation!r} is not a translation segment")
    return f"{translation}{CROSS}{segment}"


def split_segment(segment: str) -> tuple[str | None, str]:
    """A stats segment as (its translation segment or None, the rest: `*` or `label=value`):
    `translation=faithful` is (`translation=faithful`, `*`), a crossed segment its two parts,
    any other (None, `segment`)."""
    for translation in (FAITHFUL_SEGMENT, APPROXIMATE_SEGMENT):
        if segment == translation:
            return translation, "*"
        if segment.startswith(translation + CROSS):
            return translation, segment[len(translation) + len(CROSS) :]
    return None, segment


def stats_read(name: str, type_: str) -> str:
    """How a stats column is read over a group of rows (see "Reading the aggregates")."""
    if type_ == _DIGEST:
        return f"quantilesTDigestMerge({QUANTILES})({name})"
    if type_ == _LABELS:
        return f"sumMap({name})"
    return f"sum({name})"


def stats_select(
    source: str,
    columns: tuple[tuple[str, str, str], ...] = STATS_COLUMNS,
    *,
    translation: bool = True,
    crossed: bool = True,
) -> str:
    """The view's SELECT over `source` (the `comparisons` table, or a subquery to rebuild).
    `columns`, `translation` (the `translation=` segment) and `crossed` (the labels crossed
    with it) are a past migration's view when given (`_STATS_COLUMNS_7`, False, False for
    migrations 1-7; `_STATS_COLUMNS_9`, True, False for migration 8); the defaults are the
    current one."""
    values = ",\n    ".join(f"{expr} AS {name}" for name, _, expr in columns)
    labels = "['*'], arrayMap((k, v) -> concat(k, '=', v), mapKeys(segment), mapValues(segment))"
    if translation:
        labels += f",\n    {_TRANSLATION}"
    if translation and crossed:
        labels += f",\n    {_CROSSED}"
    return f"""SELECT
    migration, arm, judge_version, segment_label AS segment,
    toStartOfHour(toDateTime(captured_at, 'UTC')) AS hour, arm_kind,
    {values}
FROM {source}
ARRAY JOIN arrayConcat(
    {labels}
) AS segment_label
GROUP BY migration, arm, judge_version, segment_label, hour, arm_kind"""


_STATS_VALUES = ",\n    ".join(f"{name} {type_}" for name, type_, _ in _STATS_COLUMNS_7)
_STATS_TABLE = f"""CREATE TABLE IF NOT EXISTS comparison_stats_hourly (
    migration LowCardinality(String),
    arm LowCardinality(String),
    judge_version LowCardinality(String),
    segment String,
    hour DateTime('UTC'),
    arm_kind LowCardinality(String),
    {_STATS_VALUES}
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY ({", ".join(STATS_KEY)})
SETTINGS non_replicated_deduplication_window = 1000"""
_MV_HEAD = """CREATE MATERIALIZED VIEW IF NOT EXISTS comparison_stats_hourly_mv
TO comparison_stats_hourly AS
"""
_STATS_MV_7 = _MV_HEAD + stats_select("comparisons", _STATS_COLUMNS_7, translation=False)
_STATS_MV_9 = _MV_HEAD + stats_select("comparisons", _STATS_COLUMNS_9, crossed=False)
_STATS_MV = _MV_HEAD + stats_select("comparisons")


def _recompute(
    added: tuple[tuple[str, str, str], ...], names: tuple[str, ...], select: str, view: str
) -> tuple[str, ...]:
    """A stats migration: the view dropped, `added` columns added, the aggregates recomputed
    from `comparisons FINAL` with `select`, the view (`view`) created again. A pair written by
    another process meanwhile is missing from them (`Store.verify_stats` finds the hour,
    `Store.rebuild_stats` repairs it). `run` migrates before its judge starts, so it has none."""
    columns = ", ".join(f"ADD COLUMN IF NOT EXISTS {n} {t}" for n, t, _ in added)
    return (
        "DROP VIEW IF EXISTS comparison_stats_hourly_mv",
        f"ALTER TABLE comparison_stats_hourly {columns}",
        "TRUNCATE TABLE comparison_stats_hourly",
        f"INSERT INTO comparison_stats_hourly ({', '.join(names)}) "
        + select
        + " SETTINGS insert_deduplicate = 0",
        view,
    )


_FINAL = "(SELECT * FROM comparisons FINAL)"
#: Migration 3: the coverage columns.
_STATS_COVERAGE = _recompute(
    STATS_COLUMNS_3,
    _STATS_NAMES_7,
    stats_select(_FINAL, _STATS_COLUMNS_7, translation=False),
    _STATS_MV_7,
)


def _stats_view(columns: tuple[tuple[str, str, str], ...]) -> str:
    reads = ",\n    ".join(f"{stats_read(n, t)} AS {n}" for n, t, _ in columns)
    return f"""CREATE VIEW IF NOT EXISTS comparison_stats AS
SELECT {", ".join(STATS_KEY)},
    {reads}
FROM comparison_stats_hourly
GROUP BY {", ".join(STATS_KEY)}"""


#: Migration 5: the aggregates as plain numbers per key and hour; latency columns are arrays
#: of the quantiles in `QUANTILES`, label counters are maps. A reader that groups further
#: sums the counts, and must not average the quantiles (merge the states of the table instead).
STATS_VIEW = _stats_view(STATS_COLUMNS)
_STATS_VIEW_7 = _stats_view(_STATS_COLUMNS_7)
_STATS_VIEW_9 = _stats_view(_STATS_COLUMNS_9)
#: Migration 8 after its `comparisons` column (schema.sql): the approximate-pair counts and
#: the `translation=` segment, recomputed for the stored pairs (all faithful until then), and
#: the plain view again with the new columns.
_STATS_APPROXIMATE = (
    *_recompute(
        STATS_COLUMNS_8,
        _STATS_NAMES_9,
        stats_select(_FINAL, _STATS_COLUMNS_9, crossed=False),
        _STATS_MV_9,
    ),
    "DROP VIEW IF EXISTS comparison_stats",
    _STATS_VIEW_9,
)
#: Migration 10: the refusal verdicts the LLM tier decided (`STATS_COLUMNS_10`) and the labels
#: crossed with the `translation=` segment (`CROSS`), recomputed for the stored pairs, and the
#: plain view again with the new columns.
_STATS_CROSSED = (
    *_recompute(STATS_COLUMNS_10, STATS_NAMES, stats_select(_FINAL), _STATS_MV),
    "DROP VIEW IF EXISTS comparison_stats",
    STATS_VIEW,
)

# -- the store's queries ---------------------------------------------------------------------

_LO = "fromUnixTimestamp64Micro({lo:Int64}, 'UTC')"
_HI = "fromUnixTimestamp64Micro({hi:Int64}, 'UTC')"
_HOUR = "toStartOfHour(toDateTime(captured_at, 'UTC'))"


def literal(text: str) -> str:
    """A ClickHouse string literal."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0")
    return f"'{escaped}'"


def identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def existing_keys_sql(call_ids: set[str]) -> str:
    """The comparison keys stored for these call_ids, as JSON rows.

    The ids travel as one string literal split server-side: clickhouse-connect escapes bound
    parameters character by character (~50 ms for 5,000 ids) and a 5,000-item IN list takes
    the parser longer still. The range and the IN set both use the primary index.
    """
    plain = "\0".join(i for i in call_ids if "\0" not in i)
    match = f"call_id IN (SELECT arrayJoin(splitByChar('\\0', {literal(plain)})))"
    odd = [literal(i) for i in call_ids if "\0" in i]  # cannot ride in the \0-joined list
    if odd:
        match = f"({match} OR call_id IN ({', '.join(odd)}))"
    return (
        "SELECT call_id, migration, arm, judge_version FROM comparisons"
        f" WHERE call_id >= {literal(min(call_ids))} AND call_id <= {literal(max(call_ids))}"
        f" AND {match} FORMAT JSONCompactEachRow"
    )


def read_pairs_sql(rows: int) -> str:
    """A page of stored pairs after a (call_id, arm); parameters m, lo, hi, a_call, a_arm."""
    return (
        "SELECT call_id, arm, pair_json FROM pairs"
        " WHERE migration = {m:String} AND pair_json != ''"
        f" AND captured_at >= {_LO} AND captured_at < {_HI}"
        " AND (call_id, arm) > ({a_call:String}, {a_arm:String})"
        f" ORDER BY call_id, arm LIMIT 1 BY call_id, arm LIMIT {int(rows)}"
    )


_SPAN = f"hour >= {_LO} AND hour < {_HI}"
_GROUP = "GROUP BY migration, arm, judge_version, hour"
#: Hours in [lo, hi) where the aggregates' pair count differs from the distinct keys.
VERIFY_STATS_SQL = (
    "SELECT migration, arm, judge_version, hour, keys, counted FROM"
    f" (SELECT migration, arm, judge_version, {_HOUR} AS hour, uniqExact(call_id) AS keys"
    f" FROM comparisons WHERE {_SPAN} {_GROUP}) AS c"
    " FULL OUTER JOIN"
    " (SELECT migration, arm, judge_version, hour, sum(pairs) AS counted"
    f" FROM comparison_stats_hourly WHERE segment = '*' AND {_SPAN} {_GROUP}) AS s"
    " USING (migration, arm, judge_version, hour)"
    " WHERE keys != counted ORDER BY hour, migration, arm, judge_version"
)
#: Recompute the aggregates of the hours in [lo, hi): delete them, then insert the view's
#: SELECT over `comparisons FINAL`.
REBUILD_STATS_SQL = (
    f"ALTER TABLE comparison_stats_hourly DELETE WHERE {_SPAN}",
    f"INSERT INTO comparison_stats_hourly ({', '.join(STATS_NAMES)}) "
    + stats_select(
        f"(SELECT * FROM comparisons FINAL WHERE captured_at >= {_LO} AND captured_at < {_HI})"
    ),
)

#: Batches that started writing and never finished, with the hours (micro-epoch) they touched.
UNFINISHED_WRITES_SQL = (
    "SELECT token, groupUniqArrayArray(hours) FROM write_journal"
    " GROUP BY token HAVING max(state) = 'started'"
)

# -- migrations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


_HEADER = re.compile(r"^-- migration (\d+): (.+)$")


def load_migrations(sql: str) -> tuple[Migration, ...]:
    """The `-- migration N: name` sections of `schema.sql`, in file order."""
    sections: list[tuple[int, str, list[str]]] = []
    statement: list[str] = []
    for line in sql.splitlines():
        header = _HEADER.match(line)
        if header:
            sections.append((int(header[1]), header[2].strip(), []))
        elif line.strip() and not line.lstrip().startswith("--"):
            if not sections:
                raise ValueError(f"schema.sql: statement before the first migration: {line!r}")
            statement.append(line)
            if line.rstrip().endswith(";"):
                sections[-1][2].append("\n".join(statement).rstrip().rstrip(";"))
                statement = []
    if statement:
        raise ValueError("schema.sql: the last statement is not ended by `;`")
    return tuple(Migration(v, name, tuple(stmts)) for v, name, stmts in sections)


def _migrations() -> tuple[Migration, ...]:
    loaded = load_migrations(
        files("judge.store").joinpath("schema.sql").read_text(encoding="utf-8")
    )
    first, third = loaded[0], loaded[2]
    generated = Migration(first.version, first.name, first.statements + (_STATS_TABLE, _STATS_MV_7))
    coverage = Migration(third.version, third.name, _STATS_COVERAGE)
    fifth = loaded[4]
    view = Migration(fifth.version, fifth.name, (_STATS_VIEW_7,))
    generated_later = {8: _STATS_APPROXIMATE, 10: _STATS_CROSSED}
    later = tuple(
        Migration(m.version, m.name, m.statements + generated_later.get(m.version, ()))
        for m in loaded[5:]
    )
    return (generated, loaded[1], coverage, loaded[3], view, *later)


#: Append-only (see "Evolving the schema").
MIGRATIONS: tuple[Migration, ...] = _migrations()

SCHEMA_VERSIONS = """CREATE TABLE IF NOT EXISTS schema_versions (
    version UInt32,
    name String,
    applied_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY version"""


def apply_migrations(client: Any, body_ttl_days: int) -> list[int]:
    """Apply the migrations the database lacks, in order; returns the versions applied.

    `client` is a clickhouse-connect client; its errors propagate (the store translates them).
    """
    client.command(SCHEMA_VERSIONS)
    applied = {row[0] for row in client.query("SELECT version FROM schema_versions").result_rows}
    done: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        for statement in migration.statements:
            client.command(statement.replace("{body_ttl_days}", str(body_ttl_days)))
        client.insert(
            "schema_versions",
            [[migration.version, migration.name, datetime.now(UTC)]],
            column_names=["version", "name", "applied_at"],
        )
        done.append(migration.version)
    sync_body_ttl(client, body_ttl_days)
    return done


_TTL_DAYS = r"TTL toDateTime\(captured_at\) \+ toIntervalDay\((\d+)\)"


def sync_body_ttl(client: Any, days: int) -> list[str]:
    """Re-state the body columns' TTL where it differs from `days`; returns what changed.

    ClickHouse then rewrites the parts in the background (`materialize_ttl_after_modify`), so a
    shorter TTL empties old bodies without blocking the caller.
    """
    changed: list[str] = []
    for table, columns in BODY_COLUMNS.items():
        found = client.query(
            "SELECT engine, create_table_query FROM system.tables"
            " WHERE database = currentDatabase() AND name = {table:String}",
            parameters={"table": table},
        ).result_rows
        if not found or not found[0][0].endswith("MergeTree"):
            continue  # e.g. a Distributed table over a cluster's local tables (cluster.sql)
        for column in columns:
            ttl = re.search(rf"`{column}` String[^,]*?{_TTL_DAYS}", found[0][1])
            if ttl is not None and int(ttl[1]) == days:
                continue
            expression = _TTL.replace("{body_ttl_days}", str(days))
            client.command(f"ALTER TABLE {table} MODIFY COLUMN {column} TTL {expression}")
            changed.append(f"{table}.{column}")
    return changed
