"""The judge worker: consumes `shadow.pairs`, scores, writes to ClickHouse, then commits.

Batches are cut by size and time (`store.batch_rows`, `store.batch_seconds`). A batch is
scored, written (calls, pairs and comparisons, idempotently — see `judge.store.schema`), and only
then are its offsets committed, per partition. A crash at any point redoes at most the
uncommitted batches, and the store's idempotent writes make the redo count once.

Two stages, one batch each: while a batch is written (in the store's worker thread, where chDB
works without the interpreter lock for most of the insert) the next one is fetched and scored
on the event loop. Writes and commits stay one at a time and in the order of the batches — a
batch's write starts once the one before it is written and committed — so the store's
existence check sees every earlier batch, and no commit passes a batch not written. Scoring and
writing one after the other left the loop idle for the whole write (issue 17's profile). The
write's own Python (the rows and their JSON documents, `Store.prepare`) is done in the scoring
stage: once scoring cost less than the write, the write stage bounded the judge, and what is
left in it is the store's work, outside the interpreter lock. The existence check stays in the
write, after the batch before it, and a batch the store already holds some of has its rows
built again there (`Store.insert_prepared`).

An embedding pair's reference-set texts (`ShadowPair.reference`) are written by the same
`insert_pairs` call as the pair, to `embedding_reference`, so a replayed pair adds no row; the
pair itself is "not judged" as any embedding pair.

Pairs are parsed into `mirror.event_views`' msgspec twins of the contract's models (a third of
pydantic's cost; pydantic still decides and names the reason of whatever msgspec refuses).

A message that is not a ShadowPair goes to `shadow.dlq` with the reason, and is counted; its
offset is committed with the batch once the DLQ acknowledged it. A dead letter the bus will
not take is retried with backoff (its batch, and so its partitions, commit nothing meanwhile),
never allowed to stop the worker.

Store errors are sorted by what fixes them (`judge.errors`). When the store cannot take the
write now (unreachable, overloaded, full, locked, its schema broken) the worker holds its
batch (and at most the next one, scored meanwhile), fetching nothing more and committing
nothing, reports itself degraded (`health()`, the `shadowjudge_judge_degraded` gauge) and
retries with backoff until the write succeeds or it is told to stop (then it exits without
committing, and the batch is redone by whoever owns the partition next). A wait longer than
the consumer's poll interval costs a rebalance, and the batch is then redone by the partition's
next owner: idempotent writes make that harmless. When the store refuses the rows themselves,
the batch is split in halves until the rows it refuses are found alone; only those go to the
DLQ.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from judge.comparison import Comparison, RefusalFinding, RefusalTier, Verdict
from judge.errors import StoreClosedError, StoreError, StoreUnavailableError
from judge.scoring import Scorer
from judge.store.rows import ReferenceRow
from judge.store.schema import reason_cause
from judge.store.store import AsyncStore, PreparedBatch, Store
from mirror.bus.base import Bus, BusConsumer, Record, TopicPartition
from mirror.bus.dlq import DeadLetterKind, dead_letter
from mirror.bus.retry import deliver
from mirror.config import TopicSettings
from mirror.errors import BusError, SerializationError
from mirror.event_views import parse_shadow_pair_view
from mirror.events import ShadowPair, utc_now

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.2
RETRY_MAX_S = 10.0
#: Objects the cyclic collector tracks per pair in flight, with room: a pair parsed by pydantic
#: ~36 (10 models, each with its `__dict__` and fields-set, the request's dicts and lists),
#: by `mirror.event_views` ~6 (its structs are untracked: the request's dicts and lists, the
#: segment), its comparison and rows a few more.
_TRACKED_PER_PAIR = 50
#: Batches in flight at once: one collected, one scored, one written.
_IN_FLIGHT = 3
#: Records scored at a time: a batch larger than this (`store.batch_rows`, written as one
#: block per table) is fetched and scored in chunks of it.
SCORE_ROWS = 5_000


def young_objects(batch_rows: int) -> int:
    """A young-generation threshold for a process that judges batches of `batch_rows`: above
    the objects its batches in flight hold.

    Every object of a batch lives until the batch is written, so a young collection that
    comes while batches are in flight scans all their objects and frees none of them: with
    the threshold at 100,000 it ran twice per 5,000-pair batch, ~60 ms each, ~22 ms of CPU per
    1,000 pairs (issue 17). The count is of objects allocated less those freed, so above what
    the batches hold it is reached only by cyclic garbage and long-lived growth (caches):
    cycles are still collected, after that many objects."""
    return _TRACKED_PER_PAIR * _IN_FLIGHT * batch_rows


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
            "shadowjudge_judge_dead_letters",
            "Messages the DLQ acknowledged, by kind (poison, store).",
            ["kind"],
            registry=r,
        )
        self.store_errors = Counter(
            "shadowjudge_judge_store_errors", "Failed store writes.", ["retriable"], registry=r
        )
        self.store_waits = Counter(
            "shadowjudge_judge_store_waits",
            "Writes the store could not take for now, by condition (full, locked, ...).",
            ["condition"],
            registry=r,
        )
        self.degraded = Gauge(
            "shadowjudge_judge_degraded",
            "1 while the store cannot take writes: the judge holds its batch and fetches nothing.",
            registry=r,
        )
        self.offset_resets = Counter(
            "shadowjudge_judge_offset_resets",
            "Positions moved because they were not in the log (replaced, trimmed).",
            registry=r,
        )
        self.offsets_skipped = Counter(
            "shadowjudge_judge_offsets_skipped",
            "Offsets of shadow.pairs never read because the log no longer held them.",
            registry=r,
        )
        self.reference_rows = Counter(
            "shadowjudge_judge_embedding_reference_rows",
            "Embedding reference-set rows written with their pairs (replays write none).",
            ["migration", "arm"],
            registry=r,
        )
        self.lag = Gauge(
            "shadowjudge_judge_lag",
            "Pairs on this judge's partitions not yet read, after the last commit (-1: unknown).",
            registry=r,
        )
        labels = ["migration", "arm"]
        self.verdicts = Counter(
            "shadowjudge_judge_verdicts",
            "Comparisons stored, by verdict and the tier that decided it.",
            [*labels, "verdict", "tier"],
            registry=r,
        )
        self.not_judged = Counter(
            "shadowjudge_judge_not_judged",
            "Comparisons stored without an equivalence verdict, by cause.",
            [*labels, "cause"],
            registry=r,
        )
        self.refusals = Counter(
            "shadowjudge_judge_refusals",
            "Answers judged refusals, by side (primary, candidate).",
            [*labels, "side"],
            registry=r,
        )
        self.refusal_llm = Counter(
            "shadowjudge_judge_refusal_llm",
            "Answers whose refusal the LLM tier decided (rules score in the band), by side.",
            [*labels, "side"],
            registry=r,
        )
        self.refusal_tier_failures = Counter(
            "shadowjudge_judge_refusal_tier_failures",
            "LLM refusal-tier calls that failed or timed out; the rules' verdict stood.",
            registry=r,
        )
        self.refusal_findings = Counter(
            "shadowjudge_judge_refusal_findings",
            "Pairs where only one side refused, or both did.",
            [*labels, "finding"],
            registry=r,
        )
        self.format_findings = Counter(
            "shadowjudge_judge_format_findings",
            "Format changes found in the candidate's answer, by kind.",
            [*labels, "kind"],
            registry=r,
        )
        self.batch_seconds = Gauge(
            "shadowjudge_judge_last_batch_seconds",
            "Time to score and write the last batch.",
            registry=r,
        )

    def observe(self, comparisons: Sequence[Comparison]) -> None:
        """Count what was stored (new rows only: a replay changes nothing here).

        Counted per label set first, then each counter moved once: `labels()` and `inc()`
        take a lock and a few dict look-ups each, several per row (issue 17)."""
        counts: collections.Counter[tuple[Counter, tuple[str, ...]]] = collections.Counter()
        for c in comparisons:
            m, arm = c.migration, c.arm
            counts[self.verdicts, (m, arm, c.verdict.value, c.tier.value)] += 1
            if c.verdict is Verdict.NOT_JUDGED:
                counts[self.not_judged, (m, arm, reason_cause(c.verdict_reason))] += 1
            if c.refusal_primary:
                counts[self.refusals, (m, arm, "primary")] += 1
            if c.refusal_candidate:
                counts[self.refusals, (m, arm, "candidate")] += 1
            if c.refusal_primary_tier is RefusalTier.LLM:
                counts[self.refusal_llm, (m, arm, "primary")] += 1
            if c.refusal_candidate_tier is RefusalTier.LLM:
                counts[self.refusal_llm, (m, arm, "candidate")] += 1
            if c.refusal_finding is not RefusalFinding.NONE:
                counts[self.refusal_findings, (m, arm, c.refusal_finding.value)] += 1
            for finding in c.format_findings:
                counts[self.format_findings, (m, arm, finding)] += 1
        for (counter, labels), n in counts.items():
            counter.labels(*labels).inc(n)


@dataclass(frozen=True, slots=True)
class _Scored:
    """A batch parsed and scored, waiting for its write: the pairs, their comparisons and
    records (same order; poison left out), and the seconds scoring took."""

    pairs: list[ShadowPair]
    comparisons: list[Comparison]
    records: list[Record]
    seconds: float
    #: The store's rows and documents of the batch, built with its scoring (`Store.prepare`).
    prepared: PreparedBatch | None = None


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
        self._degraded: tuple[str, datetime] | None = None
        self._tier_failures = 0  # the scorer's refusal-tier failures already counted
        self._stop = asyncio.Event()

    def health(self) -> dict[str, Any]:
        """`ok`, or `degraded` with why and since when (served on /healthz)."""
        if self._degraded is None:
            return {"status": "ok"}
        reason, since = self._degraded
        return {"status": "degraded", "reason": reason, "since": since.isoformat()}

    def _set_degraded(self, reason: str | None) -> None:
        if reason is None:
            if self._degraded is not None:
                log.info("store writable again after %s", self._degraded[0])
            self._degraded = None
            self.metrics.degraded.set(0)
        else:
            since = self._degraded[1] if self._degraded else utc_now()
            self._degraded = (reason, since)
            self.metrics.degraded.set(1)

    def _offsets_moved(self, tp: TopicPartition, skipped: int, why: str) -> None:
        self.metrics.offset_resets.inc()
        self.metrics.offsets_skipped.inc(skipped)

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        consumer = self._bus.consumer(
            [self._topics.pairs], group=self._group, on_skip=self._offsets_moved
        )
        self._consumer = consumer
        await consumer.start()
        #: The batch being written and committed, while the next one is scored.
        writing: asyncio.Task[bool] | None = None
        try:
            self.metrics.lag.set(-1)
            while not stop.is_set():
                collected = await self._collect_scored(consumer, stop)
                if collected is None:
                    break  # stopped while dead-lettering: nothing more is committed
                batch, scored = collected
                if not batch:
                    if writing is None or writing.done():
                        lag = await consumer.lag()
                        self.metrics.lag.set(-1 if lag is None else lag)
                    continue
                if writing is not None and not await writing:
                    break  # the batch before was not written (stopped): commit nothing after it
                writing = asyncio.create_task(self._write_and_commit(consumer, batch, scored, stop))
            if writing is not None:
                await writing  # finish what is held: written and committed, or left to a redo
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
                await asyncio.gather(writing, return_exceptions=True)
            self._consumer = None
            await consumer.stop()

    async def _collect_scored(
        self, consumer: BusConsumer, stop: asyncio.Event
    ) -> tuple[list[Record], _Scored] | None:
        """The next batch (up to `batch_rows` records, cut `batch_seconds` after the first
        came) and its scores, scored in chunks of at most `SCORE_ROWS` as they come: the time
        between two fetches stays one chunk's scoring (the consumer's poll interval), however
        large the batch written. None if stopped while dead-lettering."""
        batch: list[Record] = []
        parts: list[_Scored] = []
        deadline = time.monotonic() + self._batch_seconds
        while len(batch) < self._batch_rows and not stop.is_set():
            rows = min(SCORE_ROWS, self._batch_rows - len(batch))
            chunk, deadline = await self._collect(consumer, stop, rows, deadline, bool(batch))
            if not chunk:
                break
            scored = await self._score(chunk)
            if scored is None:
                return None
            batch.extend(chunk)
            parts.append(scored)
            if time.monotonic() >= deadline:
                break
        if len(parts) == 1:
            pairs, comparisons, records = parts[0].pairs, parts[0].comparisons, parts[0].records
        else:
            pairs = [pair for part in parts for pair in part.pairs]
            comparisons = [comparison for part in parts for comparison in part.comparisons]
            records = [record for part in parts for record in part.records]
        prepared = None
        if pairs:
            # the write's Python, done here: the write stage keeps only the store's own work
            raw = [record.value for record in records]
            prepared = Store.prepare(pairs, comparisons, raw_pairs=raw)
        seconds = sum(part.seconds for part in parts)
        return batch, _Scored(pairs, comparisons, records, seconds, prepared)

    async def _collect(
        self,
        consumer: BusConsumer,
        stop: asyncio.Event,
        rows: int,
        deadline: float,
        more: bool,
    ) -> tuple[list[Record], float]:
        """Up to `rows` records, and the batch's deadline. The first chunk of a batch (`more`
        false) waits for a record as long as it takes, the deadline moving on while none comes;
        a later one takes what comes until the deadline."""
        batch: list[Record] = []
        while len(batch) < rows and not stop.is_set():
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0 and (batch or more):
                break
            records = await consumer.getmany(
                timeout_ms=max(left_ms, 1) if batch or more else 500,
                max_records=rows - len(batch),
            )
            batch.extend(records)
            if not batch and not more and left_ms <= 0:
                deadline = time.monotonic() + self._batch_seconds
        return batch, deadline

    async def _score(self, batch: Sequence[Record]) -> _Scored | None:
        """Parse and score a batch, poison to the DLQ; None if stopped while dead-lettering."""
        started = time.perf_counter()
        self.metrics.pairs.inc(len(batch))
        pairs: list[ShadowPair] = []
        records: list[Record] = []
        for record in batch:
            try:
                pairs.append(parse_shadow_pair_view(record.value))
                records.append(record)
            except SerializationError as exc:
                if not await self._dead_letter([record], str(exc), DeadLetterKind.POISON):
                    return None
        comparisons: list[Comparison] = []
        if pairs:
            comparisons = await self._scorer.score_many(pairs)
            failures = self._scorer.refusal_tier.failures
            self.metrics.refusal_tier_failures.inc(failures - self._tier_failures)
            self._tier_failures = failures
        return _Scored(pairs, comparisons, records, time.perf_counter() - started)

    async def _store_batch(self, scored: _Scored, stop: asyncio.Event) -> bool:
        """Write a scored batch; True when written (or it had nothing to write)."""
        started = time.perf_counter()
        if scored.pairs:
            written = await self._write(
                scored.pairs, scored.comparisons, scored.records, stop, scored.prepared
            )
            if written is None:
                return False
            self.metrics.written.inc(written)
            self.metrics.duplicates.inc(len(scored.pairs) - written)
        self.metrics.batch_seconds.set(scored.seconds + time.perf_counter() - started)
        return True

    async def _write_and_commit(
        self, consumer: BusConsumer, batch: Sequence[Record], scored: _Scored, stop: asyncio.Event
    ) -> bool:
        """Write a scored batch, then commit its offsets; False (nothing committed) if stopped
        before it was written."""
        if not await self._store_batch(scored, stop):
            return False
        await self._commit(consumer, batch)
        lag = await consumer.lag()
        self.metrics.lag.set(-1 if lag is None else lag)
        return True

    async def _write(
        self,
        pairs: list[ShadowPair],
        comparisons: list[Comparison],
        records: list[Record],
        stop: asyncio.Event,
        prepared: PreparedBatch | None = None,
    ) -> int | None:
        """Write the pairs (`prepared`: as `Store.prepare` made them); the number of new rows,
        or None when stopped first. Rows the store refuses are found by halving the batch and
        sent to the DLQ alone."""
        try:
            return await self._insert(pairs, comparisons, records, stop, prepared)
        except StoreError as exc:
            if len(pairs) == 1:
                log.error("store refused a pair (%s); sending it to the DLQ", exc)
                reason = f"store refused: {exc}"
                if not await self._dead_letter(records, reason, DeadLetterKind.STORE):
                    return None
                return 0
            log.warning("store refused a batch of %d (%s); looking for the rows", len(pairs), exc)
        half = len(pairs) // 2
        written = 0
        for part in (slice(0, half), slice(half, None)):
            done = await self._write(pairs[part], comparisons[part], records[part], stop)
            if done is None:
                return None
            written += done
        return written

    async def _insert(
        self,
        pairs: list[ShadowPair],
        comparisons: list[Comparison],
        records: list[Record],
        stop: asyncio.Event,
        prepared: PreparedBatch | None = None,
    ) -> int | None:
        """One write, waited out while the store cannot take it; None when stopped first.
        Raises the `StoreError` of rows the store refuses."""
        delay = RETRY_MIN_S
        raw = [record.value for record in records]
        while True:
            new: list[Comparison] = []
            references: list[ReferenceRow] = []
            try:
                written = await self._store.insert_pairs(
                    pairs,
                    comparisons,
                    raw_pairs=raw,
                    written=new,
                    written_references=references,
                    prepared=prepared,
                )
            except StoreClosedError:
                return None  # shutting down: commit nothing, the batch is redone
            except StoreUnavailableError as exc:
                self.metrics.store_errors.labels("true").inc()
                self.metrics.store_waits.labels(exc.condition).inc()
                self._set_degraded(f"store {exc.condition}: {exc}")
                log.warning(
                    "store cannot take writes (%s: %s); holding the batch, retrying in %.1fs",
                    exc.condition,
                    exc,
                    delay,
                )
            except StoreError:
                self.metrics.store_errors.labels("false").inc()
                self._set_degraded(None)
                raise
            else:
                self._set_degraded(None)
                self.metrics.observe(new)
                for row in references:
                    self.metrics.reference_rows.labels(row.migration, row.arm).inc()
                return written
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
            # The last record of a partition in the batch, not the largest offset: a log
            # replaced under the consumer restarts at a lower offset within one batch.
            points[record.tp] = record.offset + 1
        assigned = consumer.assignment()
        points = {tp: o for tp, o in points.items() if tp in assigned}
        try:
            await consumer.commit(points)
        except BusError as exc:  # a rebalance took the partitions: their owner redoes them
            log.warning("commit failed: %s", exc)

    async def _dead_letter(
        self, records: Sequence[Record], reason: str, kind: DeadLetterKind
    ) -> bool:
        """Send `records` to the DLQ, retrying whatever fails until stopped; False if stopped
        first (then the batch commits nothing and is redone)."""
        log.warning("%d message(s) to the DLQ (%s): %s", len(records), kind.value, reason)
        limit = self._bus.max_message_bytes
        letters = [
            dead_letter(self._topics.dlq, r, reason, kind, max_message_bytes=limit) for r in records
        ]
        if not await deliver(self._bus, letters, stop=self._stop, persist=True):
            return False
        self.metrics.dead_letters.labels(kind.value).inc(len(records))
        return True
