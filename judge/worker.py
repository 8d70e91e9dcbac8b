"""The judge worker: consumes `shadow.pairs`, scores, writes to ClickHouse, then commits.

Batches are cut by size and time (`store.batch_rows`, `store.batch_seconds`). A batch is
scored, written (calls, pairs and comparisons, idempotently — see `judge.store.schema`), and only
then are its offsets committed, per partition. A crash at any point redoes at most the
uncommitted batches, and the store's idempotent writes make the redo count once.

A message that is not a ShadowPair goes to `shadow.dlq` with the reason, and is counted; its
offset is committed with the batch once the DLQ acknowledged it. When the store is
unavailable the worker holds its batch — consuming nothing, committing nothing — and retries
with backoff until the write succeeds or it is told to stop (then it exits without committing,
and the batch is redone by whoever owns the partition next). A store error that is not
retriable (a statement the store refuses) sends the batch's pairs to the DLQ with the reason
rather than wedging the partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from judge.errors import StoreClosedError, StoreError
from judge.scoring import Scorer
from judge.store.store import AsyncStore
from mirror.bus.base import Bus, BusConsumer, Record, TopicPartition, dead_letter
from mirror.bus.retry import deliver
from mirror.config import TopicSettings
from mirror.errors import BusError, SerializationError
from mirror.events import ShadowPair, parse_shadow_pair

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.2
RETRY_MAX_S = 10.0


class JudgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.pairs = Counter("shadowjudge_judge_pairs", "Pairs read from the bus.", registry=r)
        self.written = Counter(
            "shadowjudge_judge_written", "New comparison rows written.", registry=r
        )
        self.duplicates = Counter(
            "shadowjudge_judge_duplicates",
            "Pairs the store already had (replays after a crash or rebalance).",
            registry=r,
        )
        self.dead_letters = Counter(
            "shadowjudge_judge_dead_letters", "Messages sent to the DLQ.", ["reason"], registry=r
        )
        self.store_errors = Counter(
            "shadowjudge_judge_store_errors", "Failed store writes.", ["retriable"], registry=r
        )
        self.lag = Gauge(
            "shadowjudge_judge_lag",
            "Pairs on this judge's partitions not yet read, after the last commit (-1: unknown).",
            registry=r,
        )
        self.batch_seconds = Gauge(
            "shadowjudge_judge_last_batch_seconds",
            "Time to score and write the last batch.",
            registry=r,
        )


class JudgeWorker:
    def __init__(
        self,
        *,
        bus: Bus,
        topics: TopicSettings,
        scorer: Scorer,
        store: AsyncStore,
        batch_rows: int,
        batch_seconds: float,
        group: str = "shadowjudge-judge",
        metrics: JudgeMetrics | None = None,
    ) -> None:
        self._bus = bus
        self._topics = topics
        self._scorer = scorer
        self._store = store
        self._batch_rows = batch_rows
        self._batch_seconds = batch_seconds
        self._group = group
        self.metrics = metrics or JudgeMetrics()
        self._consumer: BusConsumer | None = None

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self._bus.consumer([self._topics.pairs], group=self._group)
        self._consumer = consumer
        await consumer.start()
        try:
            self.metrics.lag.set(-1)
            while not stop.is_set():
                batch = await self._collect(consumer, stop)
                if not batch:
                    lag = await consumer.lag()
                    self.metrics.lag.set(-1 if lag is None else lag)
                    continue
                if await self._handle(batch, stop):
                    await self._commit(consumer, batch)
                    lag = await consumer.lag()
                    self.metrics.lag.set(-1 if lag is None else lag)
        finally:
            self._consumer = None
            await consumer.stop()

    async def _collect(self, consumer: BusConsumer, stop: asyncio.Event) -> list[Record]:
        batch: list[Record] = []
        deadline = time.monotonic() + self._batch_seconds
        while len(batch) < self._batch_rows and not stop.is_set():
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0 and batch:
                break
            records = await consumer.getmany(
                timeout_ms=max(left_ms, 1) if batch else 500,
                max_records=self._batch_rows - len(batch),
            )
            batch.extend(records)
            if not batch and left_ms <= 0:
                deadline = time.monotonic() + self._batch_seconds
        return batch

    async def _handle(self, batch: Sequence[Record], stop: asyncio.Event) -> bool:
        """Score and write a batch; True when every record is handled (written or DLQ'd)."""
        started = time.perf_counter()
        self.metrics.pairs.inc(len(batch))
        pairs: list[ShadowPair] = []
        raw: list[bytes] = []
        for record in batch:
            try:
                pairs.append(parse_shadow_pair(record.value))
                raw.append(record.value)
            except SerializationError as exc:
                await self._dead_letter([record], str(exc), "poison")
        if pairs:
            comparisons = await self._scorer.score_many(pairs)
            written = await self._write(pairs, comparisons, raw, batch, stop)
            if written is None:
                return False
            self.metrics.written.inc(written)
            self.metrics.duplicates.inc(len(pairs) - written)
        self.metrics.batch_seconds.set(time.perf_counter() - started)
        return True

    async def _write(
        self,
        pairs: list[ShadowPair],
        comparisons: list[Any],
        raw: list[bytes],
        batch: Sequence[Record],
        stop: asyncio.Event,
    ) -> int | None:
        delay = RETRY_MIN_S
        while True:
            try:
                return await self._store.insert_pairs(pairs, comparisons, raw_pairs=raw)
            except StoreClosedError:
                return None  # shutting down: commit nothing, the batch is redone
            except StoreError as exc:
                self.metrics.store_errors.labels(str(exc.retriable).lower()).inc()
                if not exc.retriable:
                    log.error("store refused a batch (%s); sending it to the DLQ", exc)
                    by_value = {r.value: r for r in batch}
                    records = [by_value[v] for v in raw]
                    await self._dead_letter(records, f"store refused: {exc}", "store")
                    return 0
                log.warning("store unavailable (%s); retrying in %.1fs", exc, delay)
            if stop.is_set():
                return None  # nothing committed: the batch is redone after a restart
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, RETRY_MAX_S)

    async def _commit(self, consumer: BusConsumer, batch: Sequence[Record]) -> None:
        points: dict[TopicPartition, int] = {}
        for record in batch:
            points[record.tp] = max(points.get(record.tp, 0), record.offset + 1)
        assigned = consumer.assignment()
        points = {tp: o for tp, o in points.items() if tp in assigned}
        try:
            await consumer.commit(points)
        except BusError as exc:  # a rebalance took the partitions: their owner redoes them
            log.warning("commit failed: %s", exc)

    async def _dead_letter(self, records: Sequence[Record], reason: str, kind: str) -> None:
        self.metrics.dead_letters.labels(kind).inc(len(records))
        log.warning("%d message(s) to the DLQ: %s", len(records), reason)
        await deliver(self._bus, [dead_letter(self._topics.dlq, r, reason) for r in records])
