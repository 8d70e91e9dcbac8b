-- The store's static tables (judge.store.schema adds the stats table and its view, generated from
-- judge.store.schema.STATS_COLUMNS). Sections are migrations: `-- migration N: name`, append-only,
-- each statement idempotent on its own and ended by `;` at the end of a line. `{body_ttl_days}`
-- is replaced by the store's `body_ttl_days`. See judge/store/schema.py for the design.

-- migration 1: initial
-- One row per captured call that a migration sampled (the judge writes it with the call's
-- pairs; calls no migration took are not stored); bodies in their own compressed columns,
-- emptied by TTL.
CREATE TABLE IF NOT EXISTS calls (
    call_id String,
    captured_at DateTime64(6, 'UTC'),
    api LowCardinality(String),
    segment Map(LowCardinality(String), String),
    primary_provider LowCardinality(String),
    primary_model LowCardinality(String),
    stream Bool,
    primary_status Int32,
    primary_error LowCardinality(String),
    primary_error_message String CODEC(ZSTD(3)),
    primary_finish_reason LowCardinality(String),
    primary_latency_ms Float64,
    primary_ttft_ms Nullable(Float64),
    primary_input_tokens Nullable(Int64),
    primary_output_tokens Nullable(Int64),
    primary_cached_tokens Nullable(Int64),
    request_truncated Bool,
    response_truncated Bool,
    request_body String CODEC(ZSTD(3)) TTL toDateTime(captured_at) + toIntervalDay({body_ttl_days}),
    primary_output String CODEC(ZSTD(3)) TTL toDateTime(captured_at) + toIntervalDay({body_ttl_days}),
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX captured_at_minmax captured_at TYPE minmax GRANULARITY 1
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(captured_at)
ORDER BY call_id
SETTINGS non_replicated_deduplication_window = 1000;

-- The ShadowPair JSON (schema_version 1), for `rejudge`.
CREATE TABLE IF NOT EXISTS pairs (
    call_id String,
    migration LowCardinality(String),
    arm LowCardinality(String),
    arm_kind LowCardinality(String),
    captured_at DateTime64(6, 'UTC'),
    schema_version UInt16,
    pair_json String CODEC(ZSTD(3)) TTL toDateTime(captured_at) + toIntervalDay({body_ttl_days}),
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX captured_at_minmax captured_at TYPE minmax GRANULARITY 1,
    INDEX migration_set migration TYPE set(64) GRANULARITY 1
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(captured_at)
ORDER BY (call_id, migration, arm)
SETTINGS non_replicated_deduplication_window = 1000;

-- One row per (call_id, migration, arm, judge_version): a column per judge.comparison.Comparison
-- field. The Enum8s mirror Verdict, Tier and RefusalFinding (a test checks they cover them).
CREATE TABLE IF NOT EXISTS comparisons (
    call_id String,
    migration LowCardinality(String),
    arm LowCardinality(String),
    arm_kind LowCardinality(String),
    judge_version LowCardinality(String),
    captured_at DateTime64(6, 'UTC'),
    judged_at DateTime64(6, 'UTC'),
    api LowCardinality(String),
    segment Map(LowCardinality(String), String),
    primary_provider LowCardinality(String),
    primary_model LowCardinality(String),
    candidate_provider LowCardinality(String),
    candidate_model LowCardinality(String),
    stream Bool,
    primary_status Int32,
    candidate_status Int32,
    primary_error LowCardinality(String),
    candidate_error LowCardinality(String),
    candidate_error_message String CODEC(ZSTD(3)),
    verdict Enum8('equivalent' = 1, 'candidate_better' = 2, 'candidate_worse' = 3,
                  'different' = 4, 'error' = 5, 'not_judged' = 6),
    tier Enum8('exact' = 1, 'json' = 2, 'llm' = 3, 'none' = 4),
    verdict_reason String CODEC(ZSTD(3)),
    judge_orders_agree Nullable(Bool),
    judge_cached Bool,
    refusal_primary Bool,
    refusal_candidate Bool,
    refusal_primary_score Float64,
    refusal_candidate_score Float64,
    refusal_finding Enum8('none' = 0, 'candidate_only' = 1, 'primary_only' = 2, 'both' = 3),
    refusal_evidence String CODEC(ZSTD(3)),
    format_drift Bool,
    format_findings Array(LowCardinality(String)),
    length_ratio Nullable(Float64),
    primary_latency_ms Float64,
    candidate_latency_ms Float64,
    primary_ttft_ms Nullable(Float64),
    candidate_ttft_ms Nullable(Float64),
    primary_input_tokens Nullable(Int64),
    primary_output_tokens Nullable(Int64),
    candidate_input_tokens Nullable(Int64),
    candidate_output_tokens Nullable(Int64),
    primary_cost_usd Nullable(Float64),
    candidate_cost_usd Nullable(Float64),
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX captured_at_minmax captured_at TYPE minmax GRANULARITY 1,
    INDEX migration_set migration TYPE set(64) GRANULARITY 1
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(captured_at)
ORDER BY (call_id, migration, arm, judge_version)
SETTINGS non_replicated_deduplication_window = 1000;

-- Human labels of a pair; a reviewer's latest label per pair is current (history is kept).
-- equivalent | candidate_better | candidate_worse | different: the reviewer's own verdict;
-- refusal_wrong: the refusal finding is wrong; format_ok: the format drift does no harm;
-- skip: cannot tell.
CREATE TABLE IF NOT EXISTS reviews (
    call_id String,
    migration LowCardinality(String),
    arm LowCardinality(String),
    judge_version LowCardinality(String),
    reviewer LowCardinality(String),
    label Enum8('equivalent' = 1, 'candidate_better' = 2, 'candidate_worse' = 3,
                'different' = 4, 'refusal_wrong' = 5, 'format_ok' = 6, 'skip' = 7),
    note String,
    created_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
ORDER BY (migration, call_id, arm, created_at);

-- The trigger engine's audit trail: one row per rule evaluation.
CREATE TABLE IF NOT EXISTS trigger_decisions (
    decided_at DateTime64(3, 'UTC'),
    migration LowCardinality(String),
    arm LowCardinality(String),
    rule LowCardinality(String),
    segment String,
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    n UInt64,
    estimate Float64,
    lower Float64,
    upper Float64,
    baseline Float64,
    decision Enum8('fire' = 1, 'hold' = 2, 'clear' = 3),
    config_hash String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(decided_at)
ORDER BY (migration, arm, rule, decided_at);

-- Rollout weight history; argMax(weight, changed_at) per (migration, arm) is current.
CREATE TABLE IF NOT EXISTS rollout (
    migration LowCardinality(String),
    arm LowCardinality(String),
    weight Float64,
    reason String,
    actor LowCardinality(String),
    changed_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
ORDER BY (migration, arm, changed_at);

-- migration 2: write journal
-- One row when a batch starts writing and one when it is written (ReplacingMergeTree keeps the
-- later). A batch left "started" was cut off, perhaps between a `comparisons` part and its
-- view's part; `Store.recover` re-checks the hours it touched and rebuilds what disagrees.
CREATE TABLE IF NOT EXISTS write_journal (
    token String,
    hours Array(Int64),
    state Enum8('started' = 1, 'done' = 2),
    at DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(at)
ORDER BY token;

-- migration 3: stats coverage
-- Generated in judge/store/schema.py (`STATS_COLUMNS_3`): adds the coverage columns to
-- comparison_stats_hourly (tokens known, TTFT counted, not-judged and error causes), recomputes
-- the aggregates from `comparisons FINAL` and re-creates the view.

-- migration 4: review queues
-- `acceptable`: the answers differ and the difference is fine. `queue`: where the label was
-- given; only `calibration` labels (a uniform random sample of judged pairs) may correct the
-- judge's rates, since the disagreement queue picks pairs by what the judge said.
ALTER TABLE reviews MODIFY COLUMN label Enum8('equivalent' = 1, 'candidate_better' = 2,
    'candidate_worse' = 3, 'different' = 4, 'refusal_wrong' = 5, 'format_ok' = 6, 'skip' = 7,
    'acceptable' = 8);
ALTER TABLE reviews ADD COLUMN IF NOT EXISTS queue LowCardinality(String) DEFAULT '' AFTER note;

-- migration 5: plain stats view
-- Generated in judge/store/schema.py (`STATS_VIEW`): `comparison_stats`, the hourly aggregates
-- merged into plain numbers (no -Merge functions to know) for Grafana or ad-hoc SQL.

-- migration 6: rollout previous weight
-- Every rollout change says from what weight it moved, so the audit trail reads "who, when,
-- from what to what" without a window function.
ALTER TABLE rollout ADD COLUMN IF NOT EXISTS previous Float64 DEFAULT 0 AFTER weight;

-- migration 7: refusal tier
-- Which tier decided each side's refusal verdict: `rules` (the detector, or the API's own refusal
-- flag) or `llm` (the LLM judge, asked when the rules' score lies in judge.refusal_tier.band).
-- Rows written before the tier existed were decided by the rules: the DEFAULT says so.
ALTER TABLE comparisons ADD COLUMN IF NOT EXISTS refusal_primary_tier LowCardinality(String)
    DEFAULT 'rules' AFTER refusal_evidence;
ALTER TABLE comparisons ADD COLUMN IF NOT EXISTS refusal_candidate_tier LowCardinality(String)
    DEFAULT 'rules' AFTER refusal_primary_tier;

-- migration 8: approximate translations
-- What the runner's translation of the candidate's request changed (ArmResult.approximations,
-- one note each, e.g. 'json_object as forced tool use'); empty for a faithful request. Then,
-- generated in judge/store/schema.py (`STATS_COLUMNS_8`): the stats table counts such pairs
-- (`approximate_pairs`, `approximation_counts`) and puts every pair in the segment
-- `translation=faithful` or `translation=approximate`, recomputed from `comparisons FINAL`.
ALTER TABLE comparisons ADD COLUMN IF NOT EXISTS candidate_approximations
    Array(LowCardinality(String)) DEFAULT [];

-- migration 9: embedding reference set
-- An embedding migration's reference set (mirror.runner.embedding_arm): texts sampled from
-- traffic by bottom-k of their SHA-256 per stratum (role, segment_key), with both models'
-- vectors. Vectors are sensitive: a row lives `retention_days` (the migration's
-- `embeddings.retention_days`, written on each row) after the call was seen, then the TTL
-- deletes it; readers also filter on it. A text may be sent twice (a runner restarted, a pair
-- replayed): ReplacingMergeTree keeps one per key, readers use FINAL or LIMIT 1 BY the key.
CREATE TABLE IF NOT EXISTS embedding_reference (
    migration LowCardinality(String),
    arm LowCardinality(String),
    role Enum8('query' = 1, 'document' = 2),
    segment_key String,
    segment Map(LowCardinality(String), String),
    text_hash String,
    text String CODEC(ZSTD(3)),
    primary_model LowCardinality(String),
    primary_version LowCardinality(String),
    candidate_model LowCardinality(String),
    candidate_version LowCardinality(String),
    primary_vector Array(Float32),
    candidate_vector Array(Float32),
    call_id String,
    seen_at DateTime64(6, 'UTC'),
    retention_days UInt16 DEFAULT 30,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(inserted_at)
ORDER BY (migration, arm, role, segment_key, text_hash)
TTL toDateTime(seen_at) + toIntervalDay(retention_days);

-- migration 10: refusal tier counts and crossed segments
-- Generated in judge/store/schema.py (`STATS_COLUMNS_10`, `CROSS`): the stats table counts each
-- side's refusal verdicts the LLM tier decided (`refusal_llm_decided_*`) and the refusals among
-- them (`refusal_llm_found_*`), and every labelled segment is also crossed with the pair's
-- `translation=` segment (`translation=approximate,tenant=acme`), so a segment can be read
-- without (or with only) its approximate pairs; recomputed from `comparisons FINAL`.

-- migration 11: embedding list verdicts
-- The LLM judge's answer to "which neighbour list serves this query better" for an embedding
-- migration's least-agreeing queries (dashboards.analysis.list_judge): one row per (migration,
-- arm, model pair, query, both lists, judge, prompt version). Only hashes: the query's SHA-256
-- and a digest of both lists' ids, never a text. `verdict` is from the candidate's side
-- (`candidate_better`: the new model's list serves the query better); `error` is a call that
-- gave no verdict (asked again next time). Kept as long as the reference rows they judge: the
-- migration's `retention_days` after `judged_at`, per row. A verdict asked again replaces the
-- older one (ReplacingMergeTree on the key; readers take the latest, LIMIT 1 BY the key).
CREATE TABLE IF NOT EXISTS embedding_list_verdicts (
    migration LowCardinality(String),
    arm LowCardinality(String),
    primary_model LowCardinality(String),
    primary_version LowCardinality(String),
    candidate_model LowCardinality(String),
    candidate_version LowCardinality(String),
    query_hash String,
    lists_digest String,
    judge LowCardinality(String),
    prompt_version LowCardinality(String),
    verdict Enum8('candidate_better' = 1, 'primary_better' = 2, 'same' = 3, 'error' = 4),
    reason String,
    judged_at DateTime64(6, 'UTC'),
    retention_days UInt16 DEFAULT 30,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(inserted_at)
ORDER BY (migration, arm, primary_model, primary_version, candidate_model, candidate_version,
    query_hash, lists_digest, judge, prompt_version)
TTL toDateTime(judged_at) + toIntervalDay(retention_days);
