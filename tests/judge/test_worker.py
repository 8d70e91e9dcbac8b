"""The judge worker in one process: memory bus, chDB, the deterministic scorers."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from judge.config import JudgeSettings
from judge.errors import StoreUnavailableError
from judge.rejudge import rejudge
from judge.scoring import Scorer
from judge.store.rows import comparison_row
from judge.store.schema import reason_cause
from judge.store.store import AsyncStore
from judge.worker import JudgeWorker, young_objects
from mirror.bus.memory import MemoryBus
from mirror.config import TopicSettings
from mirror.events import dump_event, parse_shadow_pair
from mirror.pricing import PriceTable
from tests.demo_mix import demo_pairs
from tests.judge.store.test_store import T0, make_pair

TOPICS = TopicSettings()


@pytest.fixture
def store(migrated_store: AsyncStore) -> AsyncStore:
    return migrated_store  # tests/conftest.py


def scorer(**judge: Any) -> Scorer:
    return Scorer(JudgeSettings(**judge), {}, PriceTable(), None)


async def run_worker(
    bus: MemoryBus, store: AsyncStore, scorer: Scorer, records: int, **options: Any
) -> JudgeWorker:
    worker = JudgeWorker(
        bus=bus,
        topics=TOPICS,
        scorer=scorer,
        store=store,
        batch_rows=options.pop("batch_rows", 50),
        batch_seconds=0.05,
        **options,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    log = bus.topic(TOPICS.pairs)
    for _ in range(1000):
        if log.committed.get("shadowjudge-judge", 0) >= records:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    return worker


async def test_writes_every_pair_once_and_dead_letters_poison(store: AsyncStore) -> None:
    bus = MemoryBus()
    pairs = [make_pair(i) for i in range(120)]
    for i, pair in enumerate(pairs):
        await bus.send(TOPICS.pairs, dump_event(pair))
        if i == 60:
            await bus.send(TOPICS.pairs, b'{"schema_version": 1, "call": 3}')
    for pair in pairs[:30]:  # a replay: the same pairs again
        await bus.send(TOPICS.pairs, dump_event(pair))
    worker = await run_worker(bus, store, scorer(), records=151)
    version = scorer().version
    assert await store.run(store.store.count_comparisons, "m1", version) == 120
    counts = await store.run(store.store.aggregate_counts, "m1", judge_version=version)
    assert counts["pairs"] == 120
    assert counts["candidate_errors"] == sum(1 for p in pairs if p.result.error)
    (dead,) = bus.topic(TOPICS.dlq).log
    assert dict(dead.headers)["error"].startswith(b"not a ShadowPair")
    samples = worker.metrics.registry.get_sample_value
    assert samples("shadowjudge_judge_written_total") == 120
    assert samples("shadowjudge_judge_duplicates_total") == 30
    assert samples("shadowjudge_judge_dead_letters_total", {"kind": "poison"}) == 1


async def test_store_unavailable_holds_the_batch_and_commits_nothing(
    store: AsyncStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = MemoryBus()
    for i in range(20):
        await bus.send(TOPICS.pairs, dump_event(make_pair(i)))
    real = store.insert_pairs
    failures = 0
    committed_while_failing: list[int] = []

    async def flaky(*args: Any, **kwargs: Any) -> int:
        nonlocal failures
        if failures < 3:
            failures += 1
            committed_while_failing.append(
                bus.topic(TOPICS.pairs).committed.get("shadowjudge-judge", 0)
            )
            raise StoreUnavailableError("connection refused")
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, "insert_pairs", flaky)
    worker = await run_worker(bus, store, scorer(), records=20, batch_rows=100)
    assert failures == 3 and committed_while_failing == [0, 0, 0]
    assert await store.run(store.store.count_comparisons, "m1") == 20
    assert (
        worker.metrics.registry.get_sample_value(
            "shadowjudge_judge_store_errors_total", {"retriable": "true"}
        )
        == 3
    )
    assert bus.topic(TOPICS.pairs).committed["shadowjudge-judge"] == 20


async def test_rejudge_writes_beside_the_old_verdicts(store: AsyncStore) -> None:
    bus = MemoryBus()
    for i in range(40):
        await bus.send(TOPICS.pairs, dump_event(make_pair(i)))
    old = scorer()
    await run_worker(bus, store, old, records=40)
    new = scorer(length_ratio_bounds=(0.25, 4.0))
    assert new.version != old.version
    report = await rejudge(store, new, "m1", T0 - timedelta(hours=1))
    assert (report.scored, report.written) == (40, 40)
    again = await rejudge(store, new, "m1", T0 - timedelta(hours=1))
    assert again.written == 0  # idempotent at a version
    assert await store.run(store.store.count_comparisons, "m1", old.version) == 40
    assert await store.run(store.store.count_comparisons, "m1", new.version) == 40
    assert (await store.run(store.store.aggregate_counts, "m1", judge_version=new.version))[
        "pairs"
    ] == 40


async def test_verdict_metrics_equal_a_count_of_the_stored_rows(store: AsyncStore) -> None:
    """`/metrics` counts stored rows, once: a replay of the same pairs changes nothing. The
    demo traffic mix gives every kind of verdict, refusals and format findings."""
    bus = MemoryBus()
    pairs = list(demo_pairs(200))
    for pair in pairs + pairs[:50]:  # the last 50 are a replay
        await bus.send(TOPICS.pairs, dump_event(pair))
    worker = await run_worker(bus, store, scorer(), records=250)

    def rows() -> list[tuple[Any, ...]]:
        with store.store._call("count verdicts") as ch:
            return list(
                ch.query(
                    "SELECT migration, arm, verdict, tier, verdict_reason, refusal_primary,"
                    " refusal_candidate, format_findings FROM comparisons"
                ).result_rows
            )

    stored = await store.run(rows)
    assert len(stored) == 200
    sample = worker.metrics.registry.get_sample_value
    verdicts = Counter((m, arm, verdict, tier) for m, arm, verdict, tier, *_ in stored)
    assert len({v for _, _, v, _ in verdicts}) >= 2
    for (m, arm, verdict, tier), n in verdicts.items():
        labels = {"migration": m, "arm": arm, "verdict": verdict, "tier": tier}
        assert sample("shadowjudge_judge_verdicts_total", labels) == n
    causes = Counter(
        (m, arm, reason_cause(reason))
        for m, arm, verdict, _, reason, *_ in stored
        if verdict == "not_judged"
    )
    assert causes
    for (m, arm, cause), n in causes.items():
        labels = {"migration": m, "arm": arm, "cause": cause}
        assert sample("shadowjudge_judge_not_judged_total", labels) == n
    refusals = Counter(
        (row[0], row[1], side)
        for row in stored
        for side, column in (("primary", 5), ("candidate", 6))
        if row[column]
    )
    assert refusals
    for (m, arm, side), n in refusals.items():
        labels = {"migration": m, "arm": arm, "side": side}
        assert sample("shadowjudge_judge_refusals_total", labels) == n
    kinds = Counter((row[0], row[1], kind) for row in stored for kind in row[7])
    assert kinds
    for (m, arm, kind), n in kinds.items():
        labels = {"migration": m, "arm": arm, "kind": kind}
        assert sample("shadowjudge_judge_format_findings_total", labels) == n
    total = sum(
        s.value
        for metric in worker.metrics.registry.collect()
        if metric.name == "shadowjudge_judge_verdicts"
        for s in metric.samples
        if s.name.endswith("_total")
    )
    assert total == 200


def test_not_judged_causes_are_short() -> None:
    assert reason_cause("candidate skipped: untranslatable: messages[3]") == (
        "candidate skipped: untranslatable"
    )
    assert reason_cause("primary failed (http): 500 upstream") == "primary failed"
    assert reason_cause("no LLM judge configured") == "no LLM judge configured"


async def test_a_batch_in_flight_holds_less_than_its_share_of_the_young_generation() -> None:
    """`young_objects` is set above the objects of three batches in flight (collected, scored,
    written), so no young collection scans a batch that cannot be freed yet: one batch of the
    demo mix, parsed, scored and made into rows, holds less than a third of it."""
    raws = [dump_event(pair) for pair in demo_pairs(1000)]
    judge = scorer()
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        pairs = [parse_shadow_pair(raw) for raw in raws]
        comparisons = await judge.score_many(pairs)
        rows = [comparison_row(c) for c in comparisons]
        held = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert len(rows) == 1000
    assert 0 < held < young_objects(1000) / 3
