"""The ClickHouse store against chDB, and a real server when SHADOWJUDGE_TEST_CLICKHOUSE_URL is set.

chDB hosts one engine per process, on one directory: a client on a second directory fails
while any client on the first is open, and succeeds (in ~30 ms) once they are all closed. So
every test here shares one session directory and gets a database of its own (`?database=`),
and closes what it opens; a test that needs another directory closes its store before the next.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from judge.comparison import Comparison, RefusalFinding, RefusalTier, Tier, Verdict
from judge.config import StoreSettings
from judge.errors import StoreClosedError, StoreError, StoreUnavailableError, store_error
from judge.store.list_verdicts import ListVerdictRow
from judge.store.rows import COMPARISON_FIELDS, ReferenceRow, comparison_row, insert
from judge.store.schema import (
    APPROXIMATE_SEGMENT,
    CAUSE_SQL,
    FAITHFUL_SEGMENT,
    MIGRATIONS,
    SCHEMA_VERSIONS,
    STATS_COLUMNS_3,
    crossed_segment,
    reason_cause,
    split_segment,
)
from judge.store.store import AsyncStore, Store
from mirror.events import (
    Api,
    Arm,
    ArmKind,
    ArmResult,
    CapturedCall,
    ErrorInfo,
    ErrorKind,
    FinishReason,
    Output,
    ReferenceText,
    ShadowPair,
    Usage,
    dump_event,
    encode_vector,
    new_call_id,
)
from tests.chdb import database_url

#: Recent, so the body TTL (applied at insert too) leaves the bodies in place.
T0 = (datetime.now(UTC) - timedelta(days=2)).replace(minute=15, second=0, microsecond=0)


# -- builders (also used by tests/benchmarks/store_insert.py) ----------------------------------


def make_pair(
    i: int,
    *,
    migration: str = "m1",
    arm: str = "cand",
    kind: ArmKind = ArmKind.CANDIDATE,
    call: CapturedCall | None = None,
    body_bytes: int = 200,
) -> ShadowPair:
    """A pair with a ~`body_bytes` request; segment tenant acme/globex, route /a or /b."""
    if call is None:
        call = CapturedCall(
            call_id=new_call_id(),
            captured_at=T0 + timedelta(minutes=7 * i, microseconds=i),
            api=Api.OPENAI_CHAT,
            segment={"tenant": "acme" if i % 3 else "globex", "route": f"/{'ab'[i % 2]}"},
            request={
                "model": "gpt-primary",
                "messages": [{"role": "user", "content": f"question {i} " + "x" * body_bytes}],
                "temperature": 0.2,
            },
            primary=ArmResult(
                provider="openai",
                model="gpt-primary",
                status_code=200,
                latency_ms=100.0 + i,
                ttft_ms=20.0 + i if i % 2 else None,
                output=Output(
                    text=f"answer {i}", finish_reason=FinishReason.STOP, parsed_json=None
                ),
                usage=Usage(input_tokens=50 + i, output_tokens=10 + i),
            ),
        )
    failed = i % 11 == 5
    result = ArmResult(
        provider="anthropic",
        model="claude-candidate",
        status_code=529 if failed else 200,
        error=ErrorInfo(kind=ErrorKind.HTTP, message="overloaded") if failed else None,
        latency_ms=150.0 + 2 * i,
        output=None if failed else Output(text=f"reply {i}", finish_reason=FinishReason.STOP),
        usage=None if failed else Usage(input_tokens=55 + i, output_tokens=12 + i),
    )
    return ShadowPair(call=call, migration=migration, arm=Arm(name=arm, kind=kind), result=result)


_VERDICTS = [Verdict.EQUIVALENT, Verdict.DIFFERENT, Verdict.CANDIDATE_WORSE, Verdict.EQUIVALENT]


def make_comparison(pair: ShadowPair, i: int, *, judge_version: str = "v1") -> Comparison:
    call, cand = pair.call, pair.result
    failed = cand.error is not None
    refused = (i % 4 == 1, i % 5 == 2)  # (primary, candidate)
    finding = {
        (False, False): RefusalFinding.NONE,
        (True, False): RefusalFinding.PRIMARY_ONLY,
        (False, True): RefusalFinding.CANDIDATE_ONLY,
        (True, True): RefusalFinding.BOTH,
    }[refused]
    verdict = Verdict.NOT_JUDGED if failed else _VERDICTS[i % 4]
    return Comparison(
        call_id=call.call_id,
        migration=pair.migration,
        arm=pair.arm.name,
        arm_kind=pair.arm.kind.value,
        judge_version=judge_version,
        captured_at=call.captured_at,
        judged_at=call.captured_at + timedelta(seconds=3),
        api=call.api.value,
        segment=dict(call.segment),
        primary_provider=call.primary.provider,
        primary_model=call.primary.model or "",
        candidate_provider=cand.provider,
        candidate_model=cand.model or "",
        stream=call.primary.stream,
        primary_status=call.primary.status_code or 0,
        candidate_status=cand.status_code or 0,
        primary_error="",
        candidate_error=cand.error.kind.value if cand.error else "",
        candidate_error_message=cand.error.message if cand.error else "",
        verdict=verdict,
        tier=Tier.NONE if failed else [Tier.EXACT, Tier.LLM, Tier.LLM, Tier.JSON][i % 4],
        verdict_reason="" if failed else f"reason {i}",
        judge_orders_agree=None if i % 4 in (0, 3) else i % 3 == 0,
        judge_cached=i % 6 == 0,
        refusal_primary=refused[0],
        refusal_candidate=refused[1],
        refusal_primary_score=0.9 if refused[0] else 0.05,
        refusal_candidate_score=0.8 if refused[1] else 0.1,
        refusal_finding=finding,
        refusal_evidence="I can't help with that." if any(refused) else "",
        format_drift=i % 7 == 3,
        format_findings=("json_fence", "finish_reason") if i % 7 == 3 else (),
        length_ratio=None if failed else 1.0 + i / 100,
        primary_latency_ms=call.primary.latency_ms,
        candidate_latency_ms=cand.latency_ms,
        primary_ttft_ms=call.primary.ttft_ms,
        candidate_ttft_ms=None,
        primary_input_tokens=50 + i,
        primary_output_tokens=10 + i,
        candidate_input_tokens=None if failed else 55 + i,
        candidate_output_tokens=None if failed else 12 + i,
        primary_cost_usd=0.001 * (i + 1),
        candidate_cost_usd=None if failed else 0.0005 * (i + 1),
    )


def batch(n: int, **pair_options: Any) -> tuple[list[ShadowPair], list[Comparison]]:
    pairs = [make_pair(i, **pair_options) for i in range(n)]
    return pairs, [make_comparison(p, i) for i, p in enumerate(pairs)]


def expected_counts(comparisons: Sequence[Comparison], segment: str = "*") -> dict[str, Any]:
    """What the aggregates must say, counted directly in Python."""
    label = segment.partition("=")
    rows = [c for c in comparisons if segment == "*" or c.segment.get(label[0]) == label[2]]
    return {
        "pairs": len(rows),
        "judged": sum(c.verdict not in (Verdict.ERROR, Verdict.NOT_JUDGED) for c in rows),
        **{f"verdict_{v.value}": sum(c.verdict is v for c in rows) for v in Verdict},
        **{f"tier_{t.value}": sum(c.tier is t for c in rows) for t in Tier},
        "refusals_primary": sum(c.refusal_primary for c in rows),
        "refusals_candidate": sum(c.refusal_candidate for c in rows),
        "refusal_candidate_only": sum(
            c.refusal_finding is RefusalFinding.CANDIDATE_ONLY for c in rows
        ),
        "refusal_both": sum(c.refusal_finding is RefusalFinding.BOTH for c in rows),
        "format_drifts": sum(c.format_drift for c in rows),
        "candidate_errors": sum(c.candidate_error != "" for c in rows),
        "judge_orders_disagree": sum(c.judge_orders_agree is False for c in rows),
        "candidate_input_tokens_sum": sum(c.candidate_input_tokens or 0 for c in rows),
        "candidate_priced": sum(c.candidate_cost_usd is not None for c in rows),
        "primary_cost_usd_sum": pytest.approx(sum(c.primary_cost_usd or 0 for c in rows)),
        "candidate_cost_usd_sum": pytest.approx(sum(c.candidate_cost_usd or 0 for c in rows)),
        "length_ratio_sum": pytest.approx(sum(c.length_ratio or 0 for c in rows)),
    }


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def settings(chdb_dir: Path) -> Iterator[StoreSettings]:
    with database_url(chdb_dir, "t") as url:
        yield StoreSettings(url=url)


@pytest.fixture
def store(settings: StoreSettings) -> Iterator[Store]:
    with Store.open(settings) as opened:
        opened.migrate()
        yield opened


def _sql(store: Store, query: str) -> list[tuple[Any, ...]]:
    with store._call("test query") as ch:
        return list(ch.query(query).result_rows)


# -- schema ------------------------------------------------------------------------------------


def test_migrate_twice_is_a_no_op(settings: StoreSettings) -> None:
    with Store.open(settings) as store:
        assert store.migrate() == [m.version for m in MIGRATIONS]
        assert store.migrate() == []
        engines = dict(
            _sql(store, "SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
        )
    assert engines == {
        "calls": "ReplacingMergeTree",
        "pairs": "ReplacingMergeTree",
        "comparisons": "ReplacingMergeTree",
        "reviews": "MergeTree",
        "trigger_decisions": "MergeTree",
        "rollout": "MergeTree",
        "comparison_stats_hourly": "AggregatingMergeTree",
        "comparison_stats_hourly_mv": "MaterializedView",
        "comparison_stats": "View",
        "schema_versions": "ReplacingMergeTree",
        "write_journal": "ReplacingMergeTree",
        "embedding_reference": "ReplacingMergeTree",
        "embedding_list_verdicts": "ReplacingMergeTree",
    }


def test_body_columns_have_the_ttl_and_follow_the_setting(settings: StoreSettings) -> None:
    def ttls(store: Store) -> dict[str, str]:
        rows = _sql(
            store,
            "SELECT name, create_table_query FROM system.tables"
            " WHERE database = currentDatabase() AND name IN ('calls', 'pairs')",
        )
        return dict(rows)

    with Store.open(settings) as store:
        store.migrate()
        created = ttls(store)
    for table, column in [
        ("calls", "request_body"),
        ("calls", "primary_output"),
        ("pairs", "pair_json"),
    ]:
        assert (
            f"`{column}` String CODEC(ZSTD(3)) TTL toDateTime(captured_at) + toIntervalDay(30)"
            in created[table]
        )
    with Store.open(settings.model_copy(update={"body_ttl_days": 7})) as store:
        assert store.migrate() == []
        changed = ttls(store)
    assert changed["calls"].count("toIntervalDay(7)") == 2
    assert "toIntervalDay(7)" in changed["pairs"]


def test_comparisons_has_a_column_per_field_and_enums_cover_the_contract(store: Store) -> None:
    types = dict(
        _sql(
            store,
            "SELECT name, type FROM system.columns"
            " WHERE database = currentDatabase() AND table = 'comparisons'",
        )
    )
    assert set(Comparison._fields) <= set(types)
    for column, enum in [("verdict", Verdict), ("tier", Tier), ("refusal_finding", RefusalFinding)]:
        for member in enum:
            assert f"'{member.value}'" in types[column], (
                f"{column} lacks {member.value}: add a migration"
            )
    assert types["format_findings"] == "Array(LowCardinality(String))"
    assert types["length_ratio"] == "Nullable(Float64)"


def test_a_batch_prepared_before_an_overlapping_write_writes_only_what_is_left(
    store: Store,
) -> None:
    """The judge prepares a batch while the one before is written (`judge.worker`): rows the
    store took meanwhile (a replay across the two) are left out when it is written."""
    pairs, comparisons = batch(20)
    raw = [dump_event(pair) for pair in pairs]
    prepared = Store.prepare(pairs, comparisons, raw_pairs=raw)
    assert store.insert_pairs(pairs[:6], comparisons[:6]) == 6
    written: list[Comparison] = []
    kwargs: dict[str, Any] = {"raw_pairs": raw, "written": written, "prepared": prepared}
    assert store.insert_pairs(pairs, comparisons, **kwargs) == 14
    assert {c.call_id for c in written} == {p.call.call_id for p in pairs[6:]}
    assert _sql(store, "SELECT count(), uniqExact(call_id) FROM calls") == [(20, 20)]
    assert _sql(store, "SELECT count() FROM pairs") == [(20,)]
    assert _sql(store, "SELECT count() FROM comparisons") == [(20,)]
    stored = dict(_sql(store, "SELECT call_id, pair_json FROM pairs"))
    assert {stored[p.call.call_id].encode() for p in pairs} == set(raw)
    # nothing left: the prepared rows are not written again
    assert store.insert_pairs(pairs, comparisons, prepared=prepared) == 0
    assert _sql(store, "SELECT count() FROM comparisons") == [(20,)]


def test_cluster_schema_matches_the_single_node_one() -> None:
    cluster = (Path(__file__).parents[3] / "deploy/clickhouse/cluster.sql").read_text()
    reference = next(m for m in MIGRATIONS if m.name == "embedding reference set")
    verdicts = next(m for m in MIGRATIONS if m.name == "embedding list verdicts")
    for statement in MIGRATIONS[0].statements + reference.statements + verdicts.statements:
        statement = statement.replace("{body_ttl_days}", "30")
        if statement.startswith("CREATE TABLE"):
            columns = statement[statement.index("(\n") : statement.index("\n) ENGINE")]
        else:  # the view: its SELECT, over each shard's local table
            columns = statement[statement.index("SELECT") :].replace(
                "FROM comparisons\n", "FROM comparisons_local\n"
            )
        assert columns in cluster, f"deploy/clickhouse/cluster.sql differs: {statement[:60]}"


# -- exactly once ------------------------------------------------------------------------------


def test_replays_in_other_batches_count_once(store: Store) -> None:
    pairs, comparisons = batch(40)
    assert store.insert_pairs(pairs[:7], comparisons[:7]) == 7
    assert store.insert_pairs(pairs[7:30], comparisons[7:30]) == 23
    # A crash replay: the same rows again, split and ordered differently, with duplicates
    # inside a batch, plus the 10 rows never written.
    order = list(range(40))
    random.Random(1).shuffle(order)
    replay_pairs = [pairs[i] for i in order] + pairs[:5]
    replay_comparisons = [comparisons[i] for i in order] + comparisons[:5]
    written = store.insert_pairs(replay_pairs[:13], replay_comparisons[:13])
    written += store.insert_pairs(replay_pairs[13:], replay_comparisons[13:])
    assert written == 10
    assert store.insert_pairs(pairs, comparisons) == 0

    assert store.count_comparisons("m1") == 40
    assert _sql(store, "SELECT count() FROM comparisons") == [(40,)]
    assert _sql(store, "SELECT count(), uniqExact(call_id) FROM calls") == [(40, 40)]
    assert _sql(store, "SELECT count() FROM pairs") == [(40,)]
    for segment in ["*", "tenant=acme", "tenant=globex", "route=/a"]:
        got = store.aggregate_counts("m1", segment=segment)
        want = expected_counts(comparisons, segment)
        assert {k: got[k] for k in want} == want, segment
    assert store.aggregate_counts("m1", segment="tenant=acme")["pairs"] > 0
    assert store.verify_stats(T0 - timedelta(days=1), T0 + timedelta(days=1)) == []


def test_aggregates_carry_latency_and_label_counters(store: Store) -> None:
    pairs, comparisons = batch(30)
    store.insert_pairs(pairs, comparisons)
    got = store.aggregate_counts("m1", arm="cand", judge_version="v1")
    ok = [c.candidate_latency_ms for c in comparisons if c.candidate_error == ""]
    assert len(got["candidate_latency_ms_q"]) == 4
    assert min(ok) <= got["candidate_latency_ms_q"][0] <= max(ok)
    assert got["primary_ttft_ms_q"][0] == pytest.approx(
        sorted(c.primary_ttft_ms for c in comparisons if c.primary_ttft_ms)[7], abs=4
    )
    drifted = sum(c.format_drift for c in comparisons)
    assert got["format_finding_counts"] == {"json_fence": drifted, "finish_reason": drifted}
    assert got["candidate_error_kinds"] == {
        "http": sum(c.candidate_error == "http" for c in comparisons)
    }


@pytest.mark.parametrize(
    "reason",
    [
        "candidate failed (http): 500",
        "candidate skipped: untranslatable: messages[3].content[1]: input_audio",
        "candidate skipped: the primary rejected it (400)",
        "primary skipped:  ",
        "no LLM judge configured",
        "request not captured: the judge needs the question",
        "",
        ":",
        "é" * 80,
        "x skipped: (y): z",
    ],
)
def test_reason_causes_in_sql_equal_the_python_ones(store: Store, reason: str) -> None:
    query = f"SELECT {CAUSE_SQL}[1]".replace("verdict_reason", "{r:String}")
    with store._call("cause") as ch:
        assert ch.query(query, parameters={"r": reason}).result_rows[0][0] == reason_cause(reason)


def test_aggregates_count_coverage_and_causes(store: Store) -> None:
    pairs, comparisons = batch(30)
    comparisons[2] = comparisons[2]._replace(
        verdict=Verdict.NOT_JUDGED, verdict_reason="no LLM judge configured"
    )
    comparisons[3] = comparisons[3]._replace(verdict=Verdict.ERROR, verdict_reason="judge failed")
    store.insert_pairs(pairs, comparisons)
    got = store.aggregate_counts("m1")
    causes: dict[str, int] = {}
    for c in comparisons:
        if c.verdict is Verdict.NOT_JUDGED:
            causes[reason_cause(c.verdict_reason)] = (
                causes.get(reason_cause(c.verdict_reason), 0) + 1
            )
    assert got["not_judged_causes"] == causes
    assert got["error_causes"] == {"judge failed": 1}
    assert got["candidate_tokens_known"] == sum(
        c.candidate_input_tokens is not None for c in comparisons
    )
    assert got["primary_ttft_n"] == sum(c.primary_ttft_ms is not None for c in comparisons)
    assert got["candidate_ttft_n"] == 0


def test_migration_3_fills_the_coverage_columns_of_stored_pairs(store: Store) -> None:
    pairs, comparisons = batch(20)
    store.insert_pairs(pairs, comparisons)
    with store._call("back to version 2") as ch:
        ch.command("DROP VIEW comparison_stats_hourly_mv")
        for name, _, _ in STATS_COLUMNS_3:
            ch.command(f"ALTER TABLE comparison_stats_hourly DROP COLUMN {name}")
        ch.command(
            "ALTER TABLE schema_versions DELETE WHERE version = 3", settings={"mutations_sync": 2}
        )
    assert store.migrate() == [3]
    got = store.aggregate_counts("m1")
    assert got["pairs"] == 20
    assert got["candidate_tokens_known"] == sum(
        c.candidate_input_tokens is not None for c in comparisons
    )
    more, more_comparisons = batch(5)
    store.insert_pairs(more, more_comparisons)  # the re-created view counts new pairs
    assert store.aggregate_counts("m1")["pairs"] == 25


NOTES = ("json_object as forced tool use", "temperature not sent")


def with_approximations(comparisons: list[Comparison]) -> list[Comparison]:
    """Every third pair approximate: one note, or both on every other one of those."""
    return [
        c._replace(candidate_approximations=NOTES[: 1 + i % 2]) if i % 3 == 0 else c
        for i, c in enumerate(comparisons)
    ]


def test_approximate_pairs_are_stored_counted_and_a_segment(store: Store) -> None:
    pairs, plain = batch(30)
    comparisons = with_approximations(plain)
    store.insert_pairs(pairs, comparisons)
    stored = dict(_sql(store, "SELECT call_id, candidate_approximations FROM comparisons"))
    assert stored == {c.call_id: list(c.candidate_approximations) for c in comparisons}
    approximate = [c for c in comparisons if c.candidate_approximations]
    got = store.aggregate_counts("m1")
    assert got["approximate_pairs"] == len(approximate) == 10
    assert got["approximation_counts"] == {NOTES[0]: 10, NOTES[1]: 5}
    only = store.aggregate_counts("m1", segment=APPROXIMATE_SEGMENT)
    without = store.aggregate_counts("m1", segment=FAITHFUL_SEGMENT)
    assert (only["pairs"], without["pairs"]) == (10, 20)
    assert (only["approximate_pairs"], without["approximate_pairs"]) == (10, 0)
    for segment, rows in ((APPROXIMATE_SEGMENT, approximate), (FAITHFUL_SEGMENT, None)):
        rows = rows or [c for c in comparisons if not c.candidate_approximations]
        counts = store.aggregate_counts("m1", segment=segment)
        assert counts["verdict_equivalent"] == sum(c.verdict is Verdict.EQUIVALENT for c in rows)
    # The call's own labels are segments as before, and still add up to all pairs.
    assert store.aggregate_counts("m1", segment="tenant=acme")["pairs"] == sum(
        c.segment.get("tenant") == "acme" for c in comparisons
    )


def test_migration_8_counts_the_stored_pairs_as_faithful(settings: StoreSettings) -> None:
    _, comparisons = batch(12)
    with Store.open(settings) as store:
        with store._call("up to version 7") as ch:
            ch.command(SCHEMA_VERSIONS)
            for migration in MIGRATIONS:
                if migration.version >= 8:
                    continue
                for statement in migration.statements:
                    ch.command(statement.replace("{body_ttl_days}", "30"))
                ch.insert(
                    "schema_versions",
                    [[migration.version, migration.name, datetime.now(UTC)]],
                    column_names=["version", "name", "applied_at"],
                )
            old_columns = COMPARISON_FIELDS[:-1]  # no candidate_approximations yet
            assert COMPARISON_FIELDS[-1] == "candidate_approximations"
            insert(
                ch, "comparisons", old_columns, [comparison_row(c)[:-1] for c in comparisons], "t7"
            )
        assert store.migrate() == [m.version for m in MIGRATIONS if m.version >= 8]
        got = store.aggregate_counts("m1")
        assert (got["pairs"], got["approximate_pairs"], got["approximation_counts"]) == (12, 0, {})
        assert store.aggregate_counts("m1", segment=FAITHFUL_SEGMENT)["pairs"] == 12
        more_pairs, more = batch(3)
        store.insert_pairs(more_pairs, [c._replace(candidate_approximations=NOTES) for c in more])
        # The re-created views count new pairs with the new column.
        assert store.aggregate_counts("m1", segment=APPROXIMATE_SEGMENT)["pairs"] == 3
        rows = _sql(
            store,
            "SELECT sum(pairs), sum(approximate_pairs) FROM comparison_stats"
            " WHERE migration = 'm1' AND segment = '*'",
        )
        assert rows == [(15, 3)]


def with_tiers_and_approximations(comparisons: list[Comparison]) -> list[Comparison]:
    """Two pairs in five approximate (in every tenant and route of `make_pair`), odd pairs'
    primary side and every third candidate side decided by the LLM tier (some of them
    refusals, some not: see `make_comparison`)."""
    llm, rules = RefusalTier.LLM, RefusalTier.RULES
    return [
        c._replace(
            candidate_approximations=NOTES[:1] if i % 5 < 2 else (),
            refusal_primary_tier=llm if i % 2 == 1 else rules,
            refusal_candidate_tier=llm if i % 3 == 2 else rules,
        )
        for i, c in enumerate(comparisons)
    ]


def check_crossed_and_tier_counts(store: Store, comparisons: list[Comparison]) -> None:
    """Each label crossed with each translation segment holds the pairs in both, and the
    refusal verdicts the LLM tier decided are counted per side with the refusals among them."""
    for translation, approximate in ((FAITHFUL_SEGMENT, False), (APPROXIMATE_SEGMENT, True)):
        for label in ("tenant=acme", "tenant=globex", "route=/a", "route=/b"):
            key, _, value = label.partition("=")
            rows = [
                c
                for c in comparisons
                if bool(c.candidate_approximations) is approximate and c.segment[key] == value
            ]
            segment = crossed_segment(label, translation)
            assert split_segment(segment) == (translation, label)
            got = store.aggregate_counts("m1", segment=segment)
            assert rows and got["pairs"] == len(rows), segment
            assert got["verdict_equivalent"] == sum(c.verdict is Verdict.EQUIVALENT for c in rows)
            assert got["approximate_pairs"] == (len(rows) if approximate else 0)
    got = store.aggregate_counts("m1")
    for side in ("primary", "candidate"):
        decided = [c for c in comparisons if getattr(c, f"refusal_{side}_tier") is RefusalTier.LLM]
        found = sum(getattr(c, f"refusal_{side}") for c in decided)
        assert 0 < found < len(decided)
        assert (got[f"refusal_llm_decided_{side}"], got[f"refusal_llm_found_{side}"]) == (
            len(decided),
            found,
        )


def test_labels_are_crossed_with_the_translation_and_tier_refusals_counted(store: Store) -> None:
    pairs, plain = batch(60)
    comparisons = with_tiers_and_approximations(plain)
    store.insert_pairs(pairs, comparisons)
    check_crossed_and_tier_counts(store, comparisons)
    # The segments of the call's own labels, and `translation=` alone, are as before.
    assert store.aggregate_counts("m1", segment="tenant=acme")["pairs"] == sum(
        c.segment["tenant"] == "acme" for c in comparisons
    )
    assert store.aggregate_counts("m1", segment=FAITHFUL_SEGMENT)["pairs"] == 36
    with pytest.raises(ValueError, match="not a translation segment"):
        crossed_segment("tenant=acme", "tenant=globex")
    assert split_segment("tenant=translation=faithful,x") == (None, "tenant=translation=faithful,x")


def test_migration_10_counts_and_crosses_the_stored_pairs(settings: StoreSettings) -> None:
    pairs, plain = batch(30)
    comparisons = with_tiers_and_approximations(plain)
    with Store.open(settings) as store:
        with store._call("up to version 9") as ch:
            ch.command(SCHEMA_VERSIONS)
            for migration in MIGRATIONS:
                if migration.version >= 10:
                    continue
                for statement in migration.statements:
                    ch.command(statement.replace("{body_ttl_days}", "30"))
                ch.insert(
                    "schema_versions",
                    [[migration.version, migration.name, datetime.now(UTC)]],
                    column_names=["version", "name", "applied_at"],
                )
            rows = [comparison_row(c) for c in comparisons]
            insert(ch, "comparisons", COMPARISON_FIELDS, rows, "t9")
            crossed = "SELECT count() FROM comparison_stats_hourly WHERE segment LIKE '%,%'"
            assert ch.query(crossed).result_rows == [(0,)]  # version 9's view crosses nothing
        assert store.migrate() == [m.version for m in MIGRATIONS if m.version >= 10]
        check_crossed_and_tier_counts(store, comparisons)
        more_pairs, more_plain = batch(30)
        more = with_tiers_and_approximations(more_plain)
        store.insert_pairs(more_pairs, more)  # the re-created view counts new pairs
        check_crossed_and_tier_counts(store, comparisons + more)
        rows = _sql(
            store,
            "SELECT sum(pairs), sum(refusal_llm_decided_candidate) FROM comparison_stats"
            " WHERE migration = 'm1' AND segment = '*'",
        )
        assert rows == [(60, 20)]


def test_the_plain_stats_view_needs_no_merge_functions(store: Store) -> None:
    pairs, comparisons = batch(30)
    store.insert_pairs(pairs, comparisons)
    store.insert_pairs(pairs[:5], comparisons[:5])  # another part for the same hours
    rows = _sql(
        store,
        "SELECT sum(pairs), sum(verdict_equivalent), sum(refusals_candidate)"
        " FROM comparison_stats WHERE migration = 'm1' AND segment = '*'",
    )
    got = store.aggregate_counts("m1")
    assert rows == [(got["pairs"], got["verdict_equivalent"], got["refusals_candidate"])]
    assert rows[0][0] == 30


def test_distinct_batches_with_identical_aggregates_both_count(store: Store) -> None:
    # Same hour, labels and figures, different call_ids: the view's blocks are identical;
    # block deduplication (on, for the tokens) must not take the second for a resend.
    first = make_pair(1)
    second = make_pair(1)
    store.insert_pairs([first], [make_comparison(first, 1)])
    store.insert_pairs([second], [make_comparison(second, 1)])
    assert store.aggregate_counts("m1")["pairs"] == 2


def test_a_resent_insert_is_dropped_views_included(store: Store) -> None:
    # What the HTTP client does after a dropped connection: the same insert, same token.
    pairs, comparisons = batch(6)
    rows = [comparison_row(c) for c in comparisons]
    with store._call("resend") as ch:
        insert(ch, "comparisons", COMPARISON_FIELDS, rows, "token-1")
        insert(ch, "comparisons", COMPARISON_FIELDS, rows, "token-1")
    assert _sql(store, "SELECT count() FROM comparisons") == [(6,)]
    assert store.aggregate_counts("m1")["pairs"] == 6


def test_existing_keys(store: Store) -> None:
    pairs, comparisons = batch(5)
    store.insert_pairs(pairs[:3], comparisons[:3])
    keys = [c.key for c in comparisons]
    assert store.existing_keys(keys + [("nope", "m1", "cand", "v1")]) == set(keys[:3])
    assert store.existing_keys([]) == set()
    odd = comparisons[3]._replace(call_id="a'b\\c\0d")
    store.insert_pairs([], [odd])
    assert store.existing_keys([odd.key, keys[4]]) == {odd.key}


def test_rebuild_repairs_double_counted_hours(store: Store) -> None:
    pairs, comparisons = batch(12)
    store.insert_pairs(pairs, comparisons)
    # Two writers racing (the rebalance case) both insert the same rows past the filter.
    with store._call("racing writer") as ch:
        insert(
            ch,
            "comparisons",
            COMPARISON_FIELDS,
            [comparison_row(c) for c in comparisons[:4]],
            "racer",
        )
    span = (T0 - timedelta(hours=2), T0 + timedelta(days=1))
    assert store.aggregate_counts("m1")["pairs"] == 16
    assert store.verify_stats(*span) != []
    store.rebuild_stats(*span)
    assert store.verify_stats(*span) == []
    got = store.aggregate_counts("m1", segment="tenant=acme")
    want = expected_counts(comparisons, "tenant=acme")
    assert {k: got[k] for k in want} == want


# -- rejudge -----------------------------------------------------------------------------------


def test_read_pairs_round_trips_in_pages(store: Store) -> None:
    pairs, comparisons = batch(25)
    other, other_comparisons = batch(4, migration="m2")
    noise = [
        make_pair(i, arm="noise", kind=ArmKind.NOISE, call=p.call) for i, p in enumerate(pairs[:5])
    ]
    store.insert_pairs(
        pairs + other + noise,
        comparisons + other_comparisons + [make_comparison(p, i) for i, p in enumerate(noise)],
    )
    store.insert_pairs(pairs[:3], comparisons[:3])  # harmless duplicates
    want = sorted(pairs + noise, key=lambda p: (p.call.call_id, p.arm.name))
    assert list(store.read_pairs("m1", T0 - timedelta(hours=1), page_rows=4)) == want
    assert list(store.read_pairs("m1", T0, limit=6, page_rows=4)) == want[:6]
    until = pairs[10].call.captured_at
    assert list(store.read_pairs("m1", pairs[2].call.captured_at, until)) == [
        p for p in want if pairs[2].call.captured_at <= p.call.captured_at < until
    ]
    with pytest.raises(ValueError, match="timezone-aware"):
        list(store.read_pairs("m1", datetime(2026, 1, 1)))  # noqa: DTZ001


def test_rejudge_writes_a_new_version_beside_the_old(store: Store) -> None:
    pairs, comparisons = batch(10)
    store.insert_pairs(pairs, comparisons)

    def counts(version: str) -> dict[str, Any]:  # quantiles left out: nan != nan
        got = store.aggregate_counts("m1", judge_version=version)
        return {k: v for k, v in got.items() if not k.endswith("_q")}

    before = counts("v1")
    stored = list(store.read_pairs("m1", T0))
    rejudged = [make_comparison(p, i + 1, judge_version="v2") for i, p in enumerate(stored)]
    assert store.insert_pairs(stored, rejudged) == 10
    assert store.insert_pairs(stored, rejudged) == 0
    assert store.count_comparisons("m1", "v1") == 10
    assert store.count_comparisons("m1", "v2") == 10
    assert counts("v1") == before
    assert counts("v2")["pairs"] == 10
    assert _sql(store, "SELECT count() FROM pairs") == [(10,)]


# -- errors and lifecycle ----------------------------------------------------------------------


def test_bad_sql_is_not_retriable(store: Store) -> None:
    with pytest.raises(StoreError) as caught, store._call("test query") as ch:
        ch.command("SELEC 1")
    assert not caught.value.retriable
    assert caught.value.code == 62
    assert caught.value.__cause__ is not None


def test_missing_tables_are_a_wait_not_a_verdict_on_the_rows(settings: StoreSettings) -> None:
    """A table dropped under a running judge is fixed by an operator, not by the data: the
    judge keeps the rows and waits (retriable), and the message says what to run."""
    pairs, comparisons = batch(1)
    with Store.open(settings) as store, pytest.raises(StoreUnavailableError) as caught:
        store.insert_pairs(pairs, comparisons)
    assert caught.value.retriable and caught.value.condition == "schema"
    assert "comparisons" in str(caught.value) and "shadowjudge migrate" in str(caught.value)


@pytest.mark.parametrize(
    ("error", "condition"),
    [
        (DatabaseError("Code: 243. Cannot reserve 1.00 MiB, not enough space.", code=243), "full"),
        (DatabaseError("Code: 75. Cannot write: No space left on device", code=75), "full"),
        (DatabaseError("Code: 252. Too many parts (TOO_MANY_PARTS)", code=252), "overloaded"),
        (DatabaseError("Code: 516. Authentication failed", code=516), "schema"),
        (OperationalError("Connection refused"), "unreachable"),
        (
            DatabaseError(
                "Unable to open the chdb engine: Code: 76. Cannot lock file /x/status. Another "
                "server instance in same directory is already running. (CANNOT_OPEN_FILE)"
            ),
            "locked",
        ),
    ],
)
def test_store_errors_by_what_fixes_them(error: Exception, condition: str) -> None:
    translated = store_error(error, "insert into comparisons")
    assert isinstance(translated, StoreUnavailableError) and translated.retriable
    assert translated.condition == condition


def test_a_directory_held_by_another_process_is_a_wait(tmp_path: Path) -> None:
    """chDB allows one process per directory: a second one waits with a message that says so
    (it used to exit with `Error initializing EmbeddedServer: . (BAD_ARGUMENTS)`)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, clickhouse_connect\n"
            "held = clickhouse_connect.get_client(dsn=sys.argv[1])\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
            f"chdb://{tmp_path}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\n"
                "from judge.config import StoreSettings\n"
                "from judge.errors import StoreLockedError\n"
                "from judge.store.store import Store\n"
                "try:\n"
                "    Store.open(StoreSettings(url=sys.argv[1]))\n"
                "except StoreLockedError as exc:\n"
                "    print(exc.retriable, exc.condition, exc)\n",
                f"chdb://{tmp_path}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.communicate("", timeout=30)
    assert probe.stdout.startswith("True locked "), probe.stdout + probe.stderr
    assert "held by another process" in probe.stdout


def test_closed_store_refuses(settings: StoreSettings) -> None:
    store = Store.open(settings)
    store.close()
    store.close()
    with pytest.raises(StoreClosedError) as caught:
        store.count_comparisons()
    assert not caught.value.retriable


def test_closed_client_underneath_is_a_store_error(store: Store) -> None:
    with store._call("close underneath") as ch:
        ch.close()
    with pytest.raises(StoreClosedError):
        store.count_comparisons()


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (DatabaseError("Code: 252. Too many parts (TOO_MANY_PARTS)", code=252), True),
        (DatabaseError("Code: 241. (MEMORY_LIMIT_EXCEEDED)", code=241), True),
        (OperationalError("Error HTTPConnectionPool ... Connection refused"), True),
        (TimeoutError("timed out"), True),
        (DatabaseError("Code: 60. Unknown table (UNKNOWN_TABLE)", code=60), True),
        (DatabaseError("Code: 53. Type mismatch (TYPE_MISMATCH)", code=53), False),
        (ValueError("a value of the wrong type"), False),
    ],
)
def test_error_translation(error: Exception, retriable: bool) -> None:
    translated = store_error(error, "insert into comparisons")
    assert isinstance(translated, StoreError)
    assert translated.retriable is retriable
    assert str(translated).startswith("insert into comparisons: ")


def test_unreachable_server_is_retriable() -> None:
    with pytest.raises(StoreUnavailableError) as caught:
        Store.open(StoreSettings(url="http://127.0.0.1:9/shadowjudge"))
    assert caught.value.retriable


def test_relative_chdb_directory_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for url, directory in [("chdb:///./var/a", "var/a"), ("chdb://var/b", "var/b")]:
        with Store.open(StoreSettings(url=url)) as store:
            store.migrate()
        assert (tmp_path / directory).is_dir()


async def test_async_store(settings: StoreSettings) -> None:
    pairs, comparisons = batch(20)
    async with await AsyncStore.open(settings) as store:
        await store.migrate()
        import asyncio

        written = await asyncio.gather(
            *(
                store.insert_pairs(pairs[i : i + 5], comparisons[i : i + 5])
                for i in range(0, 20, 5)
            ),
            store.insert_pairs(pairs, comparisons),
        )
        assert sum(written) == 20
        keys = await store.run(store.store.existing_keys, [comparisons[0].key])
        assert keys == {comparisons[0].key}
        assert [p async for p in store.read_pairs("m1", T0, page_rows=6)] == sorted(
            pairs, key=lambda p: p.call.call_id
        )
        assert await store.run(store.store.count_comparisons, "m1") == 20
        counts = await store.run(store.store.aggregate_counts, "m1", segment="route=/a")
        assert counts["pairs"] == 10


# -- a real server -----------------------------------------------------------------------------


@pytest.mark.clickhouse_server
@pytest.mark.skipif(
    not os.environ.get("SHADOWJUDGE_TEST_CLICKHOUSE_URL"),
    reason="SHADOWJUDGE_TEST_CLICKHOUSE_URL is not set (http://user:pass@host:8123)",
)
def test_real_server_round_trip() -> None:
    base = os.environ["SHADOWJUDGE_TEST_CLICKHOUSE_URL"].rstrip("/")
    database = f"shadowjudge_test_{uuid.uuid4().hex[:10]}"
    with Store.open(StoreSettings(url=f"{base}/{database}")) as store:
        try:
            assert store.migrate() == [m.version for m in MIGRATIONS]
            assert store.migrate() == []
            pairs, comparisons = batch(30)
            assert store.insert_pairs(pairs[:20], comparisons[:20]) == 20
            assert store.insert_pairs(pairs[10:], comparisons[10:]) == 10
            assert store.count_comparisons("m1") == 30
            want = expected_counts(comparisons, "tenant=acme")
            got = store.aggregate_counts("m1", segment="tenant=acme")
            assert {k: got[k] for k in want} == want
            assert list(store.read_pairs("m1", T0, page_rows=7)) == sorted(
                pairs, key=lambda p: p.call.call_id
            )
        finally:
            with store._call("drop test database") as ch:
                ch.command(f"DROP DATABASE IF EXISTS {database}")


def test_recover_rebuilds_hours_a_cut_off_write_left(store: Store) -> None:
    # A batch cut off after its comparisons part but before its view's part: simulate by
    # writing, then deleting that hour's aggregates and leaving the journal "started".
    pairs = [make_pair(i) for i in range(12)]
    store.insert_pairs(pairs, [make_comparison(p, i) for i, p in enumerate(pairs)])
    first = pairs[0].call.captured_at.replace(minute=0, second=0, microsecond=0)
    with store._call("test") as ch:  # noqa: SLF001
        ch.command(
            "ALTER TABLE comparison_stats_hourly DELETE WHERE hour = {h:DateTime64(6, 'UTC')}",
            parameters={"h": first},
            settings={"mutations_sync": 2},
        )
        ch.insert(
            "write_journal",
            [["cut", [int(first.timestamp()) * 1_000_000], "started"]],
            column_names=["token", "hours", "state"],
        )
    assert store.aggregate_counts("m1")["pairs"] < 12
    assert store.recover() == [first]
    assert store.aggregate_counts("m1")["pairs"] == 12
    assert store.recover() == []  # the journal entry is closed


# -- embedding reference set -------------------------------------------------------------------


def reference(
    text_hash: str, *, seen_days_ago: float = 0, retention_days: int = 30
) -> ReferenceRow:
    return ReferenceRow(
        migration="m",
        arm="e5",
        role="query",
        segment_key="tenant=acme",
        segment={"tenant": "acme"},
        text_hash=text_hash,
        text=f"text {text_hash}",
        primary_model="wordllama-l2",
        primary_version="wordllama-l2",
        candidate_model="multilingual-e5-small",
        candidate_version="v1",
        primary_vector=[0.5] * 256,
        candidate_vector=[0.25] * 384,
        call_id="c-" + text_hash,
        seen_at=datetime.now(UTC) - timedelta(days=seen_days_ago),
        retention_days=retention_days,
    )


def test_reference_rows_collapse_by_key_and_expire_by_their_retention(store: Store) -> None:
    rows = [reference("a"), reference("b"), reference("old", seen_days_ago=40)]
    kept = reference("kept", seen_days_ago=40, retention_days=60)
    assert store.insert_references([*rows, kept]) == 4
    assert store.insert_references(rows[:2]) == 2  # sent again: a replay, another runner
    assert store.insert_references([]) == 0
    assert len(_sql(store, "SELECT 1 FROM embedding_reference")) <= 6
    _sql(store, "OPTIMIZE TABLE embedding_reference FINAL")
    found = _sql(
        store,
        "SELECT text_hash, role, length(primary_vector), length(candidate_vector),"
        " primary_vector[1], candidate_vector[384], text"
        " FROM embedding_reference FINAL ORDER BY text_hash",
    )
    assert found == [
        ("a", "query", 256, 384, 0.5, 0.25, "text a"),
        ("b", "query", 256, 384, 0.5, 0.25, "text b"),
        ("kept", "query", 256, 384, 0.5, 0.25, "text kept"),
    ]


def test_a_reference_row_refuses_an_unknown_role() -> None:
    with pytest.raises(ValueError, match="role must be query or document"):
        replace(reference("a"), role="passage")


def test_a_pair_brings_its_reference_rows_once_and_keeps_no_vector_in_its_json(
    store: Store,
) -> None:
    pairs, comparisons = batch(3)
    texts = tuple(
        ReferenceText(
            text_hash=hashlib.sha256(t.encode()).hexdigest(),
            text=t,
            role="document",
            segment_key="route=/a,tenant=acme",
            primary_model="wordllama-l2",
            primary_version="wordllama-l2",
            candidate_model="multilingual-e5-small",
            candidate_version="multilingual-e5-small",
            primary_vector=encode_vector([0.5] * 256),
            candidate_vector=encode_vector([-0.25] * 384),
            retention_days=7,
        )
        for t in ("first text", "second text")
    )
    pairs[1] = pairs[1].model_copy(update={"reference": texts})
    raw = [dump_event(p) for p in pairs]
    written: list[ReferenceRow] = []
    assert store.insert_pairs(pairs, comparisons, raw_pairs=raw, written_references=written) == 3
    assert [r.text for r in written] == ["first text", "second text"]
    assert store.insert_pairs(pairs, comparisons, raw_pairs=raw, written_references=written) == 0
    assert len(written) == 2  # a replay writes no reference row
    rows = _sql(
        store,
        "SELECT text, role, segment_key, segment, call_id, retention_days,"
        " length(primary_vector), candidate_vector[1], seen_at FROM embedding_reference"
        " ORDER BY text",
    )
    call = pairs[1].call
    assert [row[:6] for row in rows] == [
        (t, "document", "route=/a,tenant=acme", call.segment, call.call_id, 7)
        for t in ("first text", "second text")
    ]
    assert all(row[6] == 256 and row[7] == -0.25 and row[8] == call.captured_at for row in rows)
    stored = _sql(store, f"SELECT pair_json FROM pairs WHERE call_id = '{call.call_id}'")
    assert b"vector" not in stored[0][0].encode() and b"reference" not in stored[0][0].encode()


# -- embedding list verdicts -------------------------------------------------------------------

MODELS = ("wordllama-l2", "wordllama-l2", "multilingual-e5-small", "v1")


def list_verdict(
    query_hash: str,
    verdict: str,
    *,
    digest: str = "d1",
    judge: str = "local/judge-model",
    days_ago: float = 0,
    retention_days: int = 30,
    reason: str = "",
) -> ListVerdictRow:
    return ListVerdictRow(
        "m", "e5", *MODELS, query_hash=query_hash, lists_digest=digest, judge=judge,
        prompt_version="lists-v1", verdict=verdict, reason=reason or f"{verdict} {query_hash}",
        judged_at=datetime.now(UTC) - timedelta(days=days_ago), retention_days=retention_days,
    )  # fmt: skip


def test_list_verdicts_round_trip_latest_per_key_and_a_verdict_before_an_error(
    store: Store,
) -> None:
    read = partial(
        store.list_verdicts, migration="m", arm="e5", models=MODELS, prompt_version="lists-v1"
    )
    assert read(query_hashes=["q1"]) == []
    rows = [
        list_verdict("q1", "same", days_ago=0.1),
        list_verdict("q1", "candidate_better"),  # asked again: the newer one is read
        list_verdict("q2", "primary_better", digest="d1"),
        list_verdict("q2", "error", digest="d2"),  # other lists: another key
        list_verdict("q3", "candidate_better", days_ago=0.1),
        list_verdict("q3", "error", judge="other/judge"),  # a later error hides no verdict
        list_verdict("old", "same", days_ago=40),  # past the retention
        list_verdict("kept", "same", days_ago=40, retention_days=60),
        list_verdict("long", "same", reason="x" * 5000),
    ]
    assert store.insert_list_verdicts(rows) == len(rows)
    assert store.insert_list_verdicts([]) == 0
    found = {
        (r.query_hash, r.lists_digest): (r.verdict, r.judge, r.reason)
        for r in read(query_hashes=["q1", "q2", "q3", "old", "long", "absent"])
    }
    assert found == {
        ("q1", "d1"): ("candidate_better", "local/judge-model", "candidate_better q1"),
        ("q2", "d1"): ("primary_better", "local/judge-model", "primary_better q2"),
        ("q2", "d2"): ("error", "local/judge-model", "error q2"),
        ("q3", "d1"): ("candidate_better", "local/judge-model", "candidate_better q3"),
        ("long", "d1"): ("same", "local/judge-model", "x" * 1000),
    }
    assert [r.verdict for r in read(query_hashes=["kept"], days=60)] == ["same"]
    assert read(query_hashes=["q1"], prompt_version="lists-v2") == []
    assert read(query_hashes=["q1"], models=(*MODELS[:3], "v2")) == []  # another model pair
    # hashes only: no text column
    columns = [r[0] for r in _sql(store, "SELECT name FROM system.columns WHERE table ="
                                         " 'embedding_list_verdicts'")]  # fmt: skip
    assert "text" not in columns and "query" not in columns


def test_a_list_verdict_refuses_an_unknown_verdict() -> None:
    with pytest.raises(ValueError, match="verdict must be one of"):
        replace(list_verdict("q", "same"), verdict="better")
