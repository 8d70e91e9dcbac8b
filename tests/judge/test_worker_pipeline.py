"""The judge worker's two stages: the next batch is scored while the one before is written.

Memory bus, chDB and the deterministic scorers; the store's write of the first batch is held
until the test lets it go, so what the worker does meanwhile can be seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from judge.comparison import Comparison
from judge.config import JudgeSettings
from judge.errors import StoreClosedError
from judge.scoring import Scorer
from judge.store.store import AsyncStore
from judge.worker import JudgeWorker
from mirror.bus.memory import MemoryBus
from mirror.config import TopicSettings
from mirror.events import ShadowPair, dump_event
from mirror.pricing import PriceTable
from tests.judge.store.test_store import make_pair

TOPICS = TopicSettings()
GROUP = "shadowjudge-judge"
BATCH = 10


@pytest.fixture
def store(migrated_store: AsyncStore) -> AsyncStore:
    return migrated_store  # tests/conftest.py


class CountingScorer(Scorer):
    """The deterministic scorer, counting the batches it scored."""

    def __init__(self) -> None:
        super().__init__(JudgeSettings(), {}, PriceTable(), None)
        self.batches = 0

    async def score_many(self, pairs: Sequence[ShadowPair]) -> list[Comparison]:
        self.batches += 1
        return await super().score_many(pairs)


async def wait_for(condition: Any, what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_next_batch_is_scored_during_a_write_and_commits_keep_their_order(
    store: AsyncStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = MemoryBus()
    pairs = [make_pair(i) for i in range(4 * BATCH)]
    for pair in pairs[: 3 * BATCH]:
        await bus.send(TOPICS.pairs, dump_event(pair))
    real = store.insert_pairs
    release = asyncio.Event()
    writes: list[int] = []

    async def held(*args: Any, **kwargs: Any) -> int:
        writes.append(len(args[0]))
        if len(writes) == 1:
            await release.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, "insert_pairs", held)
    scorer = CountingScorer()
    worker = JudgeWorker(
        bus=bus, topics=TOPICS, scorer=scorer, store=store, batch_rows=BATCH, batch_seconds=0.05
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    log = bus.topic(TOPICS.pairs)
    try:
        await wait_for(lambda: scorer.batches == 2, "the second batch scored")
        await asyncio.sleep(0.3)  # room for a (wrong) third batch or an early write or commit
        # One batch written (held), one scored ahead, no more: the third waits in the log.
        assert scorer.batches == 2 and writes == [BATCH]
        assert log.committed.get(GROUP, 0) == 0
        release.set()
        await wait_for(lambda: log.committed.get(GROUP, 0) == 3 * BATCH, "the commits")
        assert writes == [BATCH, BATCH, BATCH]
        # A late record: a batch of its own, written and committed after the others.
        for pair in pairs[3 * BATCH :]:
            await bus.send(TOPICS.pairs, dump_event(pair))
        await wait_for(lambda: log.committed.get(GROUP, 0) == 4 * BATCH, "the last commit")
    finally:
        release.set()
        stop.set()
        await task
    assert await store.run(store.store.count_comparisons, "m1") == 4 * BATCH
    assert worker.metrics.registry.get_sample_value("shadowjudge_judge_written_total") == 40


async def test_stopped_during_a_held_write_commits_nothing_after_it(
    store: AsyncStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = MemoryBus()
    for i in range(3 * BATCH):
        await bus.send(TOPICS.pairs, dump_event(make_pair(i)))
    real = store.insert_pairs
    writes = 0

    async def closed_on_first(*args: Any, **kwargs: Any) -> int:
        nonlocal writes
        writes += 1
        if writes == 1:  # the first batch cannot be written: the store went away at shutdown
            await asyncio.sleep(0.3)
            raise StoreClosedError("closing")
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, "insert_pairs", closed_on_first)
    scorer = CountingScorer()
    worker = JudgeWorker(
        bus=bus, topics=TOPICS, scorer=scorer, store=store, batch_rows=BATCH, batch_seconds=0.05
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await wait_for(lambda: scorer.batches == 2, "the second batch scored")
    await task  # the first write was not done: the worker stops without writing the second
    assert writes == 1
    assert bus.topic(TOPICS.pairs).committed.get(GROUP, 0) == 0
    assert await store.run(store.store.count_comparisons, "m1") == 0
    assert not stop.is_set()


class SizedScorer(CountingScorer):
    """Counts the pairs of each batch it scored."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    async def score_many(self, pairs: Sequence[ShadowPair]) -> list[Comparison]:
        self.sizes.append(len(pairs))
        return await super().score_many(pairs)


async def test_a_batch_larger_than_a_scoring_chunk_is_scored_in_chunks_and_written_whole(
    store: AsyncStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`store.batch_rows` is the block written; records are fetched and scored `SCORE_ROWS`
    at a time, so the time between two fetches stays one chunk's scoring. A poison record
    in a chunk still goes to the DLQ, and the rest of the batch is written once."""
    monkeypatch.setattr("judge.worker.SCORE_ROWS", 10)
    bus = MemoryBus()
    for i in range(70):
        await bus.send(TOPICS.pairs, dump_event(make_pair(i)))
        if i == 14:
            await bus.send(TOPICS.pairs, b"not a pair")
    real = store.insert_pairs
    writes: list[int] = []

    async def counted(*args: Any, **kwargs: Any) -> int:
        writes.append(len(args[0]))
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, "insert_pairs", counted)
    scorer = SizedScorer()
    worker = JudgeWorker(
        bus=bus, topics=TOPICS, scorer=scorer, store=store, batch_rows=35, batch_seconds=0.5
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    log = bus.topic(TOPICS.pairs)
    try:
        await wait_for(lambda: log.committed.get(GROUP, 0) == 71, "the commits")
    finally:
        stop.set()
        await task
    assert max(scorer.sizes) <= 10 and sum(scorer.sizes) == 70
    assert writes == [34, 35, 1]  # 35 records a batch, the poison one in the first
    assert await store.run(store.store.count_comparisons, "m1") == 70
    (dead,) = bus.topic(TOPICS.dlq).log
    assert dead.value == b"not a pair"
