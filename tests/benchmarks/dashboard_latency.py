"""Dashboard latency: the overview page and the analysis API over a million comparisons in chDB.

    .venv/bin/python -m tests.benchmarks.dashboard_latency [--rows 1000000] [--requests 50]
    .venv/bin/python tests/benchmarks/dashboard_latency.py --rows 100000 --requests 20 --trace

Fills a fresh chDB store by SQL (`INSERT ... SELECT ... FROM numbers()`, in `--chunks` inserts
ordered by time, as a live judge writes them; the materialized view fills
`comparison_stats_hourly` from them): `--rows` comparisons of 3 migrations, each with two
candidate arms and a noise arm, captured over the last 30 days (UUIDv7-style call ids, so the
primary key follows capture time as in production), segments `tenant` (20 values, skewed) and
`route` (5), a realistic verdict mix (not-judged and error causes included), refusals, format
findings, log-normal latencies, some unknown tokens and costs. Then `--reviews` labels (mostly
the calibration queue) on judged pairs of the last 7 days and `--decisions` trigger decisions,
so the corrections and trigger-state queries read real rows.

The dashboards app is served by uvicorn on 127.0.0.1 in a thread of this process and asked by
one httpx client, one request at a time, `--requests` times per URL after 3 warm-up requests:
the overview page and each migration's analysis API (the acceptance: p95 <= 300 ms), and for
information the migration page (charts, segments) and the review queue, all with `window=7d`.
Prints a p50/p95/max table, then e.g. `dashboard p95 overview 142 ms, analysis 98 ms
(1,000,000 comparisons in chDB; target 300 ms; ratio 0.47)`, the ratio being the worse p95
over the target; `OVER TARGET` is appended when it exceeds 1 (the exit code stays 0: it is a
measurement). `--trace` then times each `Store.select` during a few more requests per URL and
prints each URL's slowest queries.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn

from dashboards.web.app import WebConfig, create_app
from judge.config import StoreSettings
from judge.store.store import Store

TARGET_MS = 300.0
WINDOW = "7d"
JUDGE_VERSION = "cascade-1+rubric-2"
DAYS = 30

#: (migration, api, primary provider, primary model, arms): arms are (name, provider, model);
#: the last arm is the noise arm (the primary's model asked again).
MIGRATIONS = (
    (
        "support-bot-claude",
        "openai.chat_completions",
        "openai",
        "gpt-4o",
        (
            ("claude-sonnet-4", "anthropic", "claude-sonnet-4"),
            ("claude-haiku-4", "anthropic", "claude-haiku-4"),
            ("noise", "openai", "gpt-4o"),
        ),
    ),
    (
        "summaries-mini",
        "anthropic.messages",
        "anthropic",
        "claude-sonnet-4",
        (
            ("gpt-4.1-mini", "openai", "gpt-4.1-mini"),
            ("claude-haiku-4", "anthropic", "claude-haiku-4"),
            ("noise", "anthropic", "claude-sonnet-4"),
        ),
    ),
    (
        "search-rerank-41",
        "openai.responses",
        "openai",
        "gpt-4o-mini",
        (
            ("gpt-4.1", "openai", "gpt-4.1"),
            ("gpt-4.1-nano", "openai", "gpt-4.1-nano"),
            ("noise", "openai", "gpt-4o-mini"),
        ),
    ),
)
#: Cumulative shares of equivalent, better, worse, different, error (the rest: not judged),
#: for the first candidate, the second (a weaker model) and the noise arm.
VERDICT_CDF = (
    (0.70, 0.74, 0.79, 0.89, 0.91),
    (0.58, 0.61, 0.73, 0.88, 0.90),
    (0.86, 0.88, 0.90, 0.94, 0.95),
)
#: Not-judged reasons, with the candidate/primary error each implies.
NOT_JUDGED = (
    ("no LLM judge configured", "", 200, ""),
    ("candidate skipped: untranslatable: messages[1]: x", "skipped", 0, ""),
    ("candidate skipped: cap: max_concurrency reached", "skipped", 0, ""),
    ("candidate failed (http): 429", "http", 429, ""),
    ("candidate failed (timeout)", "timeout", 0, ""),
    ("request not captured: the judge needs the question", "", 200, ""),
    ("primary failed (http): 500", "", 200, "http"),
)
ERRORS = ("judge timed out after 30 s", "judge failed (http): 529", "judge answer unparseable")
FINDINGS = (
    "fence_added",
    "fence_removed",
    "json_lost",
    "keys_added",
    "keys_removed",
    "type_changed",
    "tool_args_changed",
    "finish_reason_changed",
    "length_ratio_high",
    "length_ratio_low",
)
ROUTES = ("/chat", "/summarize", "/search", "/classify", "/extract")
#: USD per million tokens (input, output) by model; a model missing here is unpriced (NULL).
PRICES = {
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-haiku-4": (1.0, 5.0),
}
RULES = ("equivalence_drop", "candidate_worse_rate", "refusal_rate", "p99_latency")

COLUMNS = (
    "call_id, migration, arm, arm_kind, judge_version, captured_at, judged_at, api, segment,"
    " primary_provider, primary_model, candidate_provider, candidate_model, stream,"
    " primary_status, candidate_status, primary_error, candidate_error, candidate_error_message,"
    " verdict, tier, verdict_reason, judge_orders_agree, judge_cached, refusal_primary,"
    " refusal_candidate, refusal_primary_score, refusal_candidate_score, refusal_finding,"
    " refusal_evidence, format_drift, format_findings, length_ratio, primary_latency_ms,"
    " candidate_latency_ms, primary_ttft_ms, candidate_ttft_ms, primary_input_tokens,"
    " primary_output_tokens, candidate_input_tokens, candidate_output_tokens, primary_cost_usd,"
    " candidate_cost_usd"
)


def q(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def array(values: Any) -> str:
    """A ClickHouse array literal of strings, numbers or nested tuples/arrays."""
    if isinstance(values, str):
        return q(values)
    if isinstance(values, tuple | list):
        return "[" + ", ".join(array(v) for v in values) + "]"
    return repr(values)


def fill_sql(first: int, count: int, start_us: int, step_us: float) -> str:
    """Comparisons number `first` ... `first + count - 1`: three arms per call, calls
    `step_us` apart from `start_us`."""

    def per_migration(field: int) -> str:
        return "[" + ", ".join(q(str(x[field])) for x in MIGRATIONS) + "][m + 1]"

    def per_arm(field: int) -> str:
        return array([[arm[field] for arm in x[4]] for x in MIGRATIONS]) + "[m + 1][a + 1]"

    prices = {model: PRICES.get(model) for *_, arms in MIGRATIONS for _, _, model in arms}
    prices.update({m[3]: PRICES.get(m[3]) for m in MIGRATIONS})
    known = [model for model, price in prices.items() if price is not None]
    price_in = array([PRICES[model][0] for model in known])
    price_out = array([PRICES[model][1] for model in known])
    return f"""INSERT INTO comparisons ({COLUMNS})
SELECT
    concat(substring(h, 1, 8), '-', substring(h, 9, 4), '-7', substring(r, 1, 3), '-8',
        substring(r, 4, 3), '-', substring(r, 7, 10), substring(r, 17, 2)) AS call_id,
    {per_migration(0)} AS migration,
    {per_arm(0)} AS arm,
    if(a = 2, 'noise', 'candidate') AS arm_kind,
    {q(JUDGE_VERSION)} AS judge_version,
    fromUnixTimestamp64Micro(ts_us, 'UTC') AS captured_at,
    fromUnixTimestamp64Micro(ts_us + 1500000 + toInt64(bench_u(n, 'judged') * 9000000), 'UTC')
        AS judged_at,
    {per_migration(1)} AS api,
    map('tenant', concat('tenant-', leftPad(toString(tenant), 2, '0')),
        'route', {array(ROUTES)}[1 + cityHash64(c, 'route') % 5]) AS segment,
    {per_migration(2)} AS primary_provider,
    {per_migration(3)} AS primary_model,
    {per_arm(1)} AS candidate_provider,
    {per_arm(2)} AS candidate_model,
    bench_u(c, 'stream') < 0.35 AS stream,
    if(p_err = '', 200, 500) AS primary_status,
    if(verdict = 'not_judged', {array([x[2] for x in NOT_JUDGED])}[nj], 200) AS candidate_status,
    p_err AS primary_error,
    c_err AS candidate_error,
    multiIf(c_err = 'http', '{{"error": {{"type": "rate_limit_error"}}}}',
        c_err = 'timeout', 'no answer after 60 s', '') AS candidate_error_message,
    verdict,
    multiIf(verdict = 'not_judged', 'none', verdict != 'equivalent', 'llm',
        bench_u(n, 'tier') < 0.2, 'exact', bench_u(n, 'tier') < 0.3, 'json', 'llm') AS tier,
    multiIf(
        verdict = 'not_judged', {array([x[0] for x in NOT_JUDGED])}[nj],
        verdict = 'error', {array(ERRORS)}[1 + cityHash64(n, 'err') % {len(ERRORS)}],
        tier = 'exact', 'normalised answers are equal',
        tier = 'json', 'JSON answers are equal',
        verdict = 'different' AND NOT orders_agree,
        'judge orders disagree (primary shown first: same; candidate shown first: different):'
            || ' the answers agree / the candidate omits the refund deadline',
        verdict = 'equivalent', 'both answers give the same steps in the same order',
        verdict = 'candidate_better', 'the candidate also answers the follow-up question',
        verdict = 'candidate_worse', 'the candidate drops the second half of the question',
        'the answers recommend different plans') AS verdict_reason,
    if(tier = 'llm' AND verdict != 'error', orders_agree, NULL) AS judge_orders_agree,
    tier = 'llm' AND bench_u(n, 'cached') < 0.08 AS judge_cached,
    refused_p AS refusal_primary,
    refused_c AS refusal_candidate,
    if(refused_p, 0.8 + 0.2 * bench_u(n, 'sp'), 0.1 * bench_u(n, 'sp')) AS refusal_primary_score,
    if(refused_c, 0.8 + 0.2 * bench_u(n, 'sc'), 0.1 * bench_u(n, 'sc')) AS refusal_candidate_score,
    multiIf(refused_p AND refused_c, 'both', refused_c, 'candidate_only',
        refused_p, 'primary_only', 'none') AS refusal_finding,
    multiIf(refused_c, 'I can''t help with changing another customer''s order.',
        refused_p, 'I''m not able to share that information.', '') AS refusal_evidence,
    drift AS format_drift,
    if(drift, arrayDistinct([{array(FINDINGS)}[1 + cityHash64(n, 'f1') % {len(FINDINGS)}],
        {array(FINDINGS)}[1 + cityHash64(n, 'f2') % {len(FINDINGS)}]]), []) AS format_findings,
    if(answered, exp(0.25 * bench_z(n, 'len')), NULL) AS length_ratio,
    if(p_err = '', p_ms, 150 + 100 * bench_u(n, 'pe')) AS primary_latency_ms,
    multiIf(c_err = 'timeout', 60000, c_err = 'skipped', 0,
        c_err = 'http', 120 + 80 * bench_u(n, 'ce'), c_ms) AS candidate_latency_ms,
    if(stream AND p_err = '', p_ms * (0.15 + 0.2 * bench_u(n, 'pt')), NULL) AS primary_ttft_ms,
    if(stream AND c_err = '', c_ms * (0.15 + 0.2 * bench_u(n, 'ct')), NULL) AS candidate_ttft_ms,
    if(bench_u(c, 'ptok') < 0.04, NULL, toInt64(p_in)) AS primary_input_tokens,
    if(bench_u(c, 'ptok') < 0.04 OR p_err != '', NULL, toInt64(p_out)) AS primary_output_tokens,
    if(bench_u(n, 'ctok') < 0.04 OR c_err != '', NULL, toInt64(p_in * 1.05))
        AS candidate_input_tokens,
    if(bench_u(n, 'ctok') < 0.04 OR c_err != '', NULL, toInt64(p_out * length_ratio_or_1))
        AS candidate_output_tokens,
    if(p_price = 0 OR primary_output_tokens IS NULL, NULL,
        (primary_input_tokens * p_price + primary_output_tokens * p_price_out) / 1e6)
        AS primary_cost_usd,
    if(c_price = 0 OR candidate_output_tokens IS NULL, NULL,
        (candidate_input_tokens * c_price + candidate_output_tokens * c_price_out) / 1e6)
        AS candidate_cost_usd
FROM (
    SELECT number AS n, intDiv(number, 3) AS c, toUInt8(number % 3) AS a,
        multiIf(bench_u(c, 'mig') < 0.5, 0, bench_u(c, 'mig') < 0.8, 1, 2) AS m,
        toInt64({start_us} + c * {step_us!r} + bench_u(c, 'jit') * {step_us!r}) AS ts_us,
        leftPad(lower(hex(intDiv(ts_us, 1000))), 12, '0') AS h,
        leftPad(lower(hex(cityHash64(c, 'id'))), 16, '0') || lower(hex(toUInt8(a))) AS r,
        toUInt8(floor(20 * pow(bench_u(c, 'tenant'), 1.8))) AS tenant,
        bench_u(n, 'verdict') AS uv,
        {array(VERDICT_CDF)}[a + 1] AS cdf,
        multiIf(uv < cdf[1], 'equivalent', uv < cdf[2], 'candidate_better',
            uv < cdf[3], 'candidate_worse', uv < cdf[4], 'different', uv < cdf[5], 'error',
            'not_judged') AS verdict,
        toUInt8(1 + cityHash64(n, 'nj') % {len(NOT_JUDGED)}) AS nj,
        if(verdict = 'not_judged', {array([x[1] for x in NOT_JUDGED])}[nj], '') AS c_err,
        if(verdict = 'not_judged', {array([x[3] for x in NOT_JUDGED])}[nj], '') AS p_err,
        p_err = '' AND c_err = '' AS answered,
        bench_u(n, 'agree') > 0.3 OR verdict != 'different' AS orders_agree,
        bench_u(c, 'rp') < 0.02 AS refused_p,
        answered AND bench_u(n, 'rc') < [0.03, 0.05, 0.02][a + 1] AS refused_c,
        answered AND bench_u(n, 'drift') < [0.07, 0.12, 0.02][a + 1] AS drift,
        exp(log(900) + 0.5 * bench_z(c, 'plat')) AS p_ms,
        exp(log([750, 600, 900][a + 1]) + 0.55 * bench_z(n, 'clat')) AS c_ms,
        if(answered, exp(0.25 * bench_z(n, 'len')), 1) AS length_ratio_or_1,
        200 + cityHash64(c, 'in') % 3000 AS p_in,
        40 + cityHash64(c, 'out') % 800 AS p_out,
        {array(known)} AS priced,
        indexOf(priced, {per_migration(3)}) AS p_ix,
        indexOf(priced, {per_arm(2)}) AS c_ix,
        if(p_ix = 0, 0, {price_in}[p_ix]) AS p_price,
        if(p_ix = 0, 0, {price_out}[p_ix]) AS p_price_out,
        if(c_ix = 0, 0, {price_in}[c_ix]) AS c_price,
        if(c_ix = 0, 0, {price_out}[c_ix]) AS c_price_out
    FROM numbers({first}, {count})
)"""


#: bench_u(x, salt): a uniform in [0, 1) from a hash; bench_z(x, salt): a standard normal
#: (Box-Muller). Hashes, not rand(): the same data on every run.
FUNCTIONS = (
    "CREATE FUNCTION IF NOT EXISTS bench_u AS (x, salt) ->"
    " (cityHash64(x, salt) % 1000000) / 1000000",
    "CREATE FUNCTION IF NOT EXISTS bench_z AS (x, salt) ->"
    " sqrt(-2 * log((cityHash64(x, salt, 1) % 1000000 + 1) / 1000001))"
    " * cos(2 * pi() * (cityHash64(x, salt, 2) % 1000000) / 1000000)",
)

REVIEWS_SQL = """INSERT INTO reviews
    (call_id, migration, arm, judge_version, reviewer, label, note, queue, created_at)
SELECT call_id, migration, arm, judge_version,
    ['ana', 'ben', 'chen'][1 + cityHash64(call_id) % 3] AS reviewer,
    if(cityHash64(call_id, arm, 'agree') % 100 < 85, toString(verdict),
        ['equivalent', 'different', 'candidate_worse', 'acceptable', 'skip', 'format_ok']
            [1 + cityHash64(call_id, arm, 'label') % 6]) AS label,
    '' AS note,
    if(cityHash64(call_id, arm, 'queue') % 100 < 80, 'calibration', 'disagreements') AS queue,
    now64(3) - toIntervalSecond(cityHash64(call_id, 'at') % 86400) AS created_at
FROM comparisons
WHERE verdict IN ('equivalent', 'candidate_better', 'candidate_worse', 'different')
    AND captured_at >= now64(6) - INTERVAL 7 DAY
ORDER BY cityHash64(call_id, arm)
LIMIT {limit}"""

DECISIONS_SQL = """INSERT INTO trigger_decisions (decided_at, migration, arm, rule, segment,
    window_start, window_end, n, estimate, lower, upper, baseline, decision, config_hash)
SELECT now64(3) - toIntervalSecond(intDiv(number, {per_round}) * {every_s}) AS decided_at,
    {migrations}[1 + number % {per_round}] AS migration,
    {arms}[1 + number % {per_round}] AS arm,
    {rules}[1 + number % {per_round}] AS rule,
    '*' AS segment,
    decided_at - INTERVAL 1 HOUR AS window_start, decided_at AS window_end,
    1000 + cityHash64(number) % 3000 AS n,
    (cityHash64(number, 'e') % 1000) / 10000 AS estimate,
    estimate * 0.8 AS lower, estimate * 1.2 AS upper, 0.1 AS baseline,
    if(cityHash64(number, 'd') % 100 < 2, 'fire', 'hold') AS decision,
    'c0ffee' AS config_hash
FROM numbers({rows})"""


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def fill(store: Store, rows: int, chunks: int, reviews: int, decisions: int) -> None:
    now = datetime.now(UTC)
    start_us = int((now - timedelta(days=DAYS)).timestamp() * 1_000_000)
    calls = math.ceil(rows / 3)
    step_us = DAYS * 86_400_000_000 / calls * 0.999  # the last call a little before now
    size = math.ceil(rows / chunks)
    started = time.perf_counter()
    with store._call("fill") as ch:
        for statement in FUNCTIONS:
            ch.command(statement)
        for first in range(0, rows, size):
            count = min(size, rows - first)
            ch.command(fill_sql(first, count, start_us, step_us))
            say(f"  filled {first + count:,} / {rows:,} ({time.perf_counter() - started:.1f} s)")
        fill_s = time.perf_counter() - started
        ch.command(REVIEWS_SQL.format(limit=int(reviews)))
        if decisions:
            combos = [(m[0], arm[0], rule) for m in MIGRATIONS for arm in m[4] for rule in RULES]
            ch.command(
                DECISIONS_SQL.format(
                    per_round=len(combos),
                    every_s=max(60, DAYS * 86_400 * len(combos) // decisions),
                    migrations=array([x[0] for x in combos]),
                    arms=array([x[1] for x in combos]),
                    rules=array([x[2] for x in combos]),
                    rows=int(decisions),
                )
            )
        stored = ch.command("SELECT count() FROM comparisons")
        hourly = ch.command("SELECT count() FROM comparison_stats_hourly")
    say(
        f"fill: {int(stored):,} comparisons in {fill_s:.1f} s ({int(stored) / fill_s:,.0f} rows/s)"
        f", {int(hourly):,} aggregate rows, {reviews} reviews, {decisions:,} trigger decisions"
    )


def settle(store: Store, timeout_s: float) -> None:
    """Wait (a while) for the background merges the fill started, so they do not share the
    2 cores with the measured requests; report the active parts left."""
    deadline = time.monotonic() + timeout_s
    with store._call("settle") as ch:
        while time.monotonic() < deadline and int(ch.command("SELECT count() FROM system.merges")):
            time.sleep(0.5)
        parts = ch.query(
            "SELECT table, count() FROM system.parts WHERE active AND database = currentDatabase()"
            " AND table IN ('comparisons', 'comparison_stats_hourly') GROUP BY table ORDER BY table"
        ).result_rows
    say("active parts: " + ", ".join(f"{table} {n}" for table, n in parts))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(store: Store) -> Iterator[str]:
    app = create_app(lambda: store, WebConfig())
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def timed(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:300]}")
    return elapsed


def measure(client: httpx.Client, url: str, requests: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        timed(client, url)
    return [timed(client, url) for _ in range(requests)]


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[94]


class Tracer:
    """Times each `Store.select` (an instance attribute over the method) while `url` is set."""

    def __init__(self, store: Store) -> None:
        self.inner: Callable[..., list[dict[str, Any]]] = store.select
        self.url = ""
        #: url -> normalised SQL -> milliseconds of each call.
        self.times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        store.select = self.select  # type: ignore[method-assign]

    def select(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        started = time.perf_counter()
        try:
            return self.inner(sql, parameters)
        finally:
            if self.url:
                key = re.sub(r"\s+", " ", sql).strip()
                self.times[self.url][key].append((time.perf_counter() - started) * 1000)


def trace(client: httpx.Client, tracer: Tracer, urls: list[str], requests: int) -> list[str]:
    lines = []
    for url in urls:
        tracer.url = url
        total = sum(timed(client, url) for _ in range(requests)) / requests
        tracer.url = ""
        found = tracer.times[url]
        calls = sum(len(t) for t in found.values()) / requests
        in_store = sum(sum(t) for t in found.values()) / requests
        lines.append(
            f"trace GET {url}: {total:.0f} ms per request, {calls:.0f} store.select calls"
            f" taking {in_store:.0f} ms"
        )
        ranked = sorted(found.items(), key=lambda kv: -sum(kv[1]))
        for sql, times in ranked[:6]:
            per_request = sum(times) / requests
            lines.append(
                f"  {per_request:7.1f} ms/request  {len(times) / requests:3.0f}x"
                f"  mean {statistics.fmean(times):6.1f}  max {max(times):6.1f}  {sql[:120]}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="comparisons to store")
    parser.add_argument("--requests", type=int, default=50, help="measured requests per URL")
    parser.add_argument("--chunks", type=int, default=4, help="INSERT statements for the fill")
    parser.add_argument("--reviews", type=int, default=200, help="review labels")
    parser.add_argument("--decisions", type=int, default=100_000, help="trigger decisions")
    parser.add_argument("--settle", type=float, default=120.0, help="max s to wait for merges")
    parser.add_argument("--trace", action="store_true", help="time each store.select")
    parser.add_argument("--trace-requests", type=int, default=5)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as directory,
        Store.open(StoreSettings(url=f"chdb://{directory}")) as store,
    ):
        store.migrate()
        say(f"filling {args.rows:,} comparisons into chDB at {directory}")
        fill(store, args.rows, max(1, args.chunks), args.reviews, args.decisions)
        settle(store, args.settle)
        names = [m[0] for m in MIGRATIONS]
        tracer = Tracer(store) if args.trace else None
        results: list[tuple[str, str, list[float]]] = []
        with serving(store) as base, httpx.Client(base_url=base, timeout=120) as client:
            urls = [("overview", f"/?window={WINDOW}")]
            api = "/api/v1/migrations/{}/analysis?window=" + WINDOW
            urls += [("analysis", api.format(n)) for n in names]
            urls += [("migration page", f"/migrations/{n}?window={WINDOW}") for n in names]
            urls += [("review", f"/review?window={WINDOW}")]
            for kind, url in urls:
                times = measure(client, url, args.requests)
                results.append((kind, url, times))
                say(f"  {url}: p95 {p95(times):.0f} ms")
            say("load average (1, 5, 15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
            traced = (
                trace(client, tracer, [u for _, u in urls], args.trace_requests)
                if tracer is not None
                else []
            )

    width = max(len(url) for _, url, _ in results)
    lines = [f"{'GET':<{width}}  {'p50':>7}  {'p95':>7}  {'max':>7}  (ms, n={args.requests})"]
    for _, url, times in results:
        lines.append(
            f"{url:<{width}}  {statistics.median(times):7.1f}  {p95(times):7.1f}  {max(times):7.1f}"
        )
    overview = max(p95(t) for kind, _, t in results if kind == "overview")
    analysis = max(p95(t) for kind, _, t in results if kind == "analysis")
    ratio = max(overview, analysis) / TARGET_MS
    lines += traced
    lines.append(
        f"dashboard p95 overview {overview:.0f} ms, analysis {analysis:.0f} ms"
        f" ({args.rows:,} comparisons in chDB; target {TARGET_MS:.0f} ms; ratio {ratio:.2f})"
        + (" OVER TARGET" if ratio > 1 else "")
    )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
