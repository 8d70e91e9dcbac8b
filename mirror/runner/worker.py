"""The shadow runner: replays captured calls to the candidate arms and publishes the pairs.

One loop per process, a member of a consumer group on `shadow.calls` (so N runners share the
partitions). Each record is parsed (a poison message goes to `shadow.dlq` with its reason),
matched against the migrations, sampled by a hash of the call (or of a sticky key) — so
retries, restarts and several runners agree — and fanned out to the migration's arms: the
candidates, and the noise arm (the primary model asked again) at its own rate. Every
(call, arm) ends in exactly one `ShadowPair` on `shadow.pairs`, keyed by `call_id`: an answer,
an error, or a skip with its reason (untranslatable request, spend cap reached, no key); skips
are published too, so what was not compared is visible downstream. A record's offset is
committed only after all its pairs were acknowledged by the bus, so a crash redoes work
(duplicates on the bus, which the judge's idempotent writes absorb) and never loses it.

Every record ends in exactly one outcome: its pairs delivered, or the record dead-lettered
(a poison message, a bug on that record, pairs the bus refused for good), or, at shutdown,
abandoned uncommitted for the next owner. Pairs are cut to fit the bus's message limit
(`mirror.fit`) rather than refused. A dead letter that cannot be delivered is retried with
backoff, holding its partition's commit point, never dropped; counters move only after the
bus acknowledged.

Backpressure, not queues: at most `max_in_flight` records are being replayed (their arms
called); per-provider limiters slow the calls down; nothing is fetched while the work is full.
A record whose pairs are handed to the bus no longer takes one of those places while it waits
for the acknowledgement (the producer lingers to fill batches, `bus.producer.linger_ms`, and the
broker answers a whole batch at once): held places would idle the calls for that wait, and it
was what bounded the runner (issue 17). Records waiting for their acks are bounded too, at
`PUBLISHING_PER_IN_FLIGHT` times `max_in_flight`, and their offsets stay in work until the ack,
so a commit never passes a pair the bus has not acknowledged. Commits go at most every
`COMMIT_EVERY_S` (and at a rebalance and at the end): one commit request per fetch cost the
loop a broker round trip each time it took more work. SIGTERM: stop fetching, finish the calls
in flight within `runner.drain_timeout_s`, publish, commit, exit.

Embedding migrations (`embeddings` set) take only `openai.embeddings` calls; their arms are
called by `mirror.runner.embedding_arm.EmbeddingArms` (the texts through the embedding cache,
and the reference set sampled from them) instead of replaying the app's request, with the
same spend cap, limiters and publishing path; the pair carries the reference texts.

The runner never executes tools: a candidate's tool calls are recorded as it asked for them.

A candidate on the other provider gets the request translated approximately where the
translation table allows (`mirror.translate.replay`): the changes go on the pair's
`result.approximations`, and an answer given through the forced JSON tool is read back as the
JSON text the app asked for. Only what cannot be expressed at all is skipped.

Served calls (staged rollout: `CapturedCall.served_by`). The app got a candidate's answer and
the primary was never asked, so for a call that some migration samples the runner first asks
the primary in the shadow, with the original request (within the sampled migration's limits
and spend cap, the serving one's when it is among them), and puts that answer in the call's
`primary`. The serving arm's pair then carries the served answer (as the candidate sent it,
normalised like any replay) instead of a second call to the arm; the noise arm and the other
arms are asked as usual, against the shadow primary. The judge and the store see a normal
pair. Sampling applies as to any call: a served call no migration samples costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from mirror.bus.base import Bus, BusConsumer, Message, Record, TopicPartition
from mirror.bus.dlq import DeadLetterKind, dead_letter
from mirror.bus.offsets import OffsetTracker
from mirror.bus.retry import deliver
from mirror.config import ProviderSettings, TopicSettings
from mirror.embeddings import EmbeddingCache
from mirror.errors import BusError, ConfigError, SerializationError, Untranslatable
from mirror.events import (
    Api,
    Arm,
    ArmResult,
    CapturedCall,
    ErrorInfo,
    ErrorKind,
    ReferenceText,
    ShadowPair,
    parse_captured_call,
)
from mirror.fit import dump_to_fit
from mirror.migrations import (
    NOISE_ARM,
    ArmSettings,
    LimitSettings,
    MigrationSettings,
    RunnerSettings,
    arm_kind,
    target_api,
)
from mirror.pricing import PriceTable
from mirror.runner.caller import ArmCaller
from mirror.runner.embedding_arm import EmbeddingArms
from mirror.runner.limits import ProviderLimiter, SpendCap, estimate_cost, estimate_tokens
from mirror.runner.metrics import RunnerMetrics
from mirror.sampling import arm_salt, sampling_key, selected
from mirror.translate.replay import Replay, replay_answer, translate_replay
from mirror.translate.request import arm_variant

log = logging.getLogger(__name__)

FETCH_TIMEOUT_MS = 200
#: Records whose pairs wait for the bus's ack, per place of `max_in_flight`: the ack takes the
#: producer's linger and a broker round trip, a call to a fast provider much less.
PUBLISHING_PER_IN_FLIGHT = 4
#: The longest a finished record's offset waits for its commit while the runner is busy.
COMMIT_EVERY_S = 0.1
#: After the drain deadline, how long abandoned records get to notice before being cancelled.
ABANDON_GRACE_S = 1.0
COMMIT_WARNING_EVERY_S = 30.0


@dataclass(frozen=True, slots=True)
class PlannedArm:
    migration: MigrationSettings
    name: str
    settings: ArmSettings | None  # None: the noise arm (or the primary, for a served call)
    #: This arm answered the app (a served call): its pair carries that answer.
    served: bool = False


@dataclass(frozen=True, slots=True)
class _Refused:
    """A record for the DLQ, and why."""

    reason: str
    kind: DeadLetterKind


class Runner:
    def __init__(
        self,
        *,
        bus: Bus,
        topics: TopicSettings,
        migrations: Sequence[MigrationSettings],
        providers: Mapping[str, ProviderSettings],
        prices: PriceTable,
        settings: RunnerSettings,
        caller: ArmCaller,
        metrics: RunnerMetrics | None = None,
    ) -> None:
        self._bus = bus
        self._topics = topics
        self._migrations = [m for m in migrations if m.enabled]
        self._providers = dict(providers)
        self._prices = prices
        self._settings = settings
        self._caller = caller
        self.metrics = metrics or RunnerMetrics()
        self._limiters = {
            name: _limiter(settings.limits.get(name, LimitSettings())) for name in providers
        }
        self._caps = {m.name: SpendCap(m.daily_spend_usd) for m in self._migrations}
        #: The embedding arms, when a migration has some: the cache file is opened here, so a
        #: path the runner cannot write is said at start.
        self.embedding_arms: EmbeddingArms | None = None
        if any(m.embeddings is not None for m in self._migrations):
            limit = bus.max_message_bytes
            self.embedding_arms = EmbeddingArms(
                providers=self._providers,
                limiters=self._limiters,
                prices=prices,
                metrics=self.metrics,
                cache=_open_cache(settings),
                timeout_s=settings.timeout_s,
                max_attempts=settings.max_attempts,
                max_reference_bytes=limit // 2 if limit is not None else None,
            )
        self._offsets = OffsetTracker()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Records whose arms are being called (the rest of `_tasks` wait for their acks).
        self._calling = 0
        self._committed_at = 0.0
        self._freed = asyncio.Event()
        #: Set at the drain deadline: retry loops give up and leave their records uncommitted.
        self._abandon = asyncio.Event()
        self._consumer: BusConsumer | None = None
        self._commit_warned = 0.0
        self._arms: dict[str, Arm] = {}
        self._pair_counters: dict[tuple[str, str, str], Counter] = {}
        self._selected_counters: dict[str, Counter] = {}
        self._spend_gauges: dict[str, Gauge] = {}

    # --- the loop --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then drain, commit and return."""
        consumer = self._bus.consumer(
            [self._topics.calls],
            group=self._settings.group,
            listener=self,
            # A record may wait for the slowest generation; poll slower than that is normal.
            max_poll_interval_ms=int((self._settings.timeout_s * 2 + 60) * 1000),
            on_skip=self._offsets_moved,
        )
        self._consumer = consumer
        await consumer.start()
        try:
            in_flight = self._settings.max_in_flight
            held = in_flight * (1 + PUBLISHING_PER_IN_FLIGHT)
            while not stop.is_set():
                free = min(in_flight - self._calling, held - len(self._tasks))
                if free <= 0:  # backpressure: fetch nothing until a record is done
                    self._freed.clear()
                    await _first(self._freed.wait(), stop.wait())
                    await self._commit(soon=True)
                    continue
                records = await consumer.getmany(FETCH_TIMEOUT_MS, max_records=free)
                for record in records:
                    self._offsets.started(record.tp, record.offset)
                    self._calling += 1
                    task = asyncio.create_task(self._process(record))
                    self._tasks.add(task)
                    task.add_done_callback(self._finished)
                await self._commit(soon=True)
            await self._drain()
            await self._commit()
        finally:
            self._consumer = None
            await consumer.stop()

    async def _drain(self) -> None:
        """Let the records in work finish until the drain deadline; then abandon the rest."""
        if not self._tasks:
            return
        log.info("draining %d record(s) in work", len(self._tasks))
        _, pending = await asyncio.wait(set(self._tasks), timeout=self._settings.drain_timeout_s)
        if not pending:
            return
        self.metrics.abandoned.inc(len(pending))
        log.warning(
            "%d record(s) still in work at the drain deadline (%.0fs): left uncommitted, "
            "their partitions' next owner replays them",
            len(pending),
            self._settings.drain_timeout_s,
        )
        self._abandon.set()
        _, pending = await asyncio.wait(pending, timeout=ABANDON_GRACE_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        await self._caller.close()
        if self.embedding_arms is not None:
            await self.embedding_arms.close()

    def health(self) -> dict[str, Any]:
        """The runner's state for /healthz."""
        return {"status": "ok", "in_flight": len(self._tasks)}

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._freed.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            # `_process` handles every error it expects; this is a bug, and its record stays
            # uncommitted (its partition's commit point holds) rather than lost.
            log.error("a record's task failed", exc_info=exc)

    def _offsets_moved(self, tp: TopicPartition, skipped: int, why: str) -> None:
        self.metrics.offset_resets.inc()
        self.metrics.offsets_skipped.inc(skipped)

    async def _commit(self, *, soon: bool = False) -> None:
        """Commit what is done; with `soon`, only if `COMMIT_EVERY_S` passed since the last."""
        consumer = self._consumer
        if consumer is None:
            return
        now = asyncio.get_running_loop().time()
        if soon and now - self._committed_at < COMMIT_EVERY_S:
            return
        self._committed_at = now
        assigned = consumer.assignment()
        points = {tp: o for tp, o in self._offsets.committable().items() if tp in assigned}
        if not points:
            return
        try:
            await consumer.commit(points)
        except BusError as exc:  # a rebalance in progress: the next commit carries it
            now = asyncio.get_running_loop().time()
            if now - self._commit_warned >= COMMIT_WARNING_EVERY_S:
                self._commit_warned = now
                log.warning("commit failed (retried with every batch): %s", exc)
            return
        self._offsets.committed(points)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._commit()
        self._offsets.forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("runner assigned %s", sorted(assigned))

    # --- one record ------------------------------------------------------------------------

    async def _process(self, record: Record) -> None:
        self.metrics.consumed.inc()
        try:
            replayed = await self._replay(record)
        finally:  # the calls are over: the record's place goes to the next one
            self._calling -= 1
            self._freed.set()
        if isinstance(replayed, _Refused):
            await self._dead_letter(record, replayed.reason, replayed.kind)
            return
        call, pairs = replayed
        if pairs:
            limit = self._bus.max_message_bytes
            key = call.call_id.encode()
            # A pair of the call as consumed carries the record's bytes as its call: the call
            # is most of a pair, and serialising it again was half the pair's serialisation.
            messages = [
                Message(
                    self._topics.pairs,
                    dump_to_fit(p, limit, call_json=record.value if p.call is call else None),
                    key,
                )
                for p in pairs
            ]
            try:
                delivered = await deliver(self._bus, messages, self._retried, stop=self._abandon)
            except BusError as exc:  # refused for good (an unknown broker error, a limit)
                reason = f"the bus refused its pairs: {exc}"
                await self._dead_letter(record, reason, DeadLetterKind.DELIVERY)
                return
            if not delivered:
                return  # abandoned at shutdown: uncommitted, replayed by the next owner
            for pair in pairs:
                self._pairs_counter(pair.migration, pair.arm.name, _outcome(pair)).inc()
        self._offsets.done(record.tp, record.offset)

    async def _replay(self, record: Record) -> tuple[CapturedCall, list[ShadowPair]] | _Refused:
        """The record's call as parsed and its pairs, every arm called; or why it goes to the
        DLQ. A served call's pairs carry a copy of the call (with the shadow primary)."""
        try:
            call = parse_captured_call(record.value)
        except SerializationError as exc:
            return _Refused(str(exc), DeadLetterKind.POISON)
        try:
            plan = self.plan(call)
            if not plan:
                return call, []
            paired, served = call, None
            if call.served_by is not None:
                paired, served = await self._with_shadow_primary(call, plan)
            if len(plan) == 1:  # most calls: no task and no gathering future for one arm
                return call, [await self._run_arm(paired, plan[0], served)]
            return call, await asyncio.gather(*(self._run_arm(paired, a, served) for a in plan))
        except Exception as exc:  # noqa: BLE001 - a bug on one record must not stop the runner
            log.exception("processing %s:%s failed", record.tp, record.offset)
            return _Refused(f"runner failed: {type(exc).__name__}: {exc}", DeadLetterKind.RUNNER)

    def plan(self, call: CapturedCall) -> list[PlannedArm]:
        """The arms this call is replayed to: deterministic for a given call."""
        planned: list[PlannedArm] = []
        for migration in self._migrations:
            if not migration.match.matches(call):
                continue
            if migration.embeddings is not None and call.api is not Api.OPENAI_EMBEDDINGS:
                continue
            key = sampling_key(call, migration.sampling.sticky)
            if not selected(key, salt=migration.name, rate=migration.sampling.rate):
                continue
            self._selected_counter(migration.name).inc()
            served = call.served_by
            planned.extend(
                PlannedArm(
                    migration,
                    arm.name,
                    arm,
                    served=served is not None
                    and served.migration == migration.name
                    and served.arm == arm.name,
                )
                for arm in migration.arms
            )
            if migration.noise_rate and selected(
                key, salt=arm_salt(migration.name, NOISE_ARM), rate=migration.noise_rate
            ):
                planned.append(PlannedArm(migration, NOISE_ARM, None))
        return planned

    async def _with_shadow_primary(
        self, call: CapturedCall, plan: Sequence[PlannedArm]
    ) -> tuple[CapturedCall, ArmResult | None]:
        """A served call with the primary asked in the shadow: the call to pair, and the
        served answer (now only in the serving arm's pair)."""
        served_by = call.served_by
        assert served_by is not None
        owner = next((arm.migration for arm in plan if arm.served), plan[0].migration)
        self.metrics.served.labels(owner.name).inc()
        primary = await self._call_arm(call, PlannedArm(owner, NOISE_ARM, None))
        paired = call.model_copy(
            update={"primary": primary, "served_by": served_by.model_copy(update={"answer": None})}
        )
        return paired, served_by.answer

    async def _run_arm(
        self, call: CapturedCall, arm: PlannedArm, served: ArmResult | None = None
    ) -> ShadowPair:
        reference: tuple[ReferenceText, ...] = ()
        if arm.served and served is not None:
            result = served  # the candidate answered the app: that answer is the pair's
        elif (
            self.embedding_arms is not None
            and arm.settings is not None
            and arm.migration.embeddings is not None
            and call.request is not None
        ):
            cap = self._caps[arm.migration.name]
            result, reference = await self.embedding_arms.run(
                call, arm.migration, arm.settings, cap
            )
        else:
            result = await self._call_arm(call, arm)
        return ShadowPair(
            call=call,
            migration=arm.migration.name,
            arm=self._arm(arm.name),
            result=result,
            reference=reference,
        )

    def _arm(self, name: str) -> Arm:
        arm = self._arms.get(name)
        if arm is None:
            arm = self._arms[name] = Arm(name=name, kind=arm_kind(name))
        return arm

    # prometheus_client's `labels()` takes a lock and builds its key on every call: the
    # children are kept here, one per label set (a handful: migrations x arms x outcomes).

    def _pairs_counter(self, migration: str, arm: str, outcome: str) -> Counter:
        key = (migration, arm, outcome)
        child = self._pair_counters.get(key)
        if child is None:
            child = self._pair_counters[key] = self.metrics.pairs.labels(*key)
        return child

    def _selected_counter(self, migration: str) -> Counter:
        child = self._selected_counters.get(migration)
        if child is None:
            child = self._selected_counters[migration] = self.metrics.selected.labels(migration)
        return child

    def _spend_gauge(self, migration: str) -> Gauge:
        child = self._spend_gauges.get(migration)
        if child is None:
            child = self._spend_gauges[migration] = self.metrics.spend.labels(migration)
        return child

    async def _call_arm(self, call: CapturedCall, arm: PlannedArm) -> ArmResult:
        if arm.settings is None:
            provider_name = call.primary.provider
            model = call.request.get("model") if call.request else None
        else:
            provider_name, model = arm.settings.provider, arm.settings.model
        provider = self._providers.get(provider_name)
        if provider is None:
            return self._skip(provider_name, model, f"provider {provider_name!r} not configured")
        if call.request is None or call.truncated.request or not isinstance(model, str):
            return self._skip(provider_name, model, "the request was not captured whole")
        primary_status = call.primary.status_code or 0
        if 400 <= primary_status < 500 and primary_status != 429:
            return self._skip(provider_name, model, f"the primary rejected it ({primary_status})")
        api = target_api(call.api, provider.kind)
        try:
            replay = self._request_for(call, arm, api)
        except Untranslatable as exc:
            return self._skip(provider_name, model, f"untranslatable: {exc.reason}")
        body = replay.body
        cap = self._caps[arm.migration.name]
        tokens = estimate_tokens(body, api)
        estimate = estimate_cost(self._prices, model, provider.kind, body, api, tokens=tokens)
        if estimate is None and arm.migration.daily_spend_usd is not None:
            return self._skip(provider_name, model, f"no price for {model} under a spend cap")
        reservation = cap.try_reserve(estimate or 0.0)
        if reservation is None:
            return self._skip(provider_name, model, "daily spend cap reached")
        spent: float | None = 0.0  # nothing, unless the call returns
        try:
            async with self._limiters[provider_name].slot(tokens.total) as slot:
                result = await self._caller.call(
                    api=api,
                    provider_name=provider_name,
                    provider=provider,
                    body=body,
                    replay_headers=call.request_headers,
                )
                usage = result.usage
                if usage is not None:
                    slot.used((usage.input_tokens or 0) + (usage.output_tokens or 0))
                    spent = self._prices.cost(model, usage, provider.kind)
                elif result.ok:
                    spent = None  # answered but unmetered: book the estimate
                # else: refused or unreachable, nothing billed
        finally:
            reservation.settle(spent)
            self._spend_gauge(arm.migration.name).set(cap.spent)
        return replay_answer(result, replay)

    def _request_for(self, call: CapturedCall, arm: PlannedArm, api: Api) -> Replay:
        assert call.request is not None
        if arm.settings is None:  # the noise arm: the primary's request, unchanged
            return Replay(dict(call.request))
        return replay_request(call.request, call.api, api, arm.settings)

    def _skip(self, provider: str, model: Any, reason: str) -> ArmResult:
        self.metrics.skipped.labels(reason.split(":")[0].split(" (")[0]).inc()
        return ArmResult(
            provider=provider,
            model=model if isinstance(model, str) else None,
            latency_ms=0.0,
            error=ErrorInfo(kind=ErrorKind.SKIPPED, message=reason),
        )

    async def _dead_letter(self, record: Record, reason: str, kind: DeadLetterKind) -> None:
        """Send `record` to the DLQ, retrying whatever fails until the drain deadline: until it
        is acknowledged its offset stays in work, so its partition commits nothing past it."""
        log.warning("dead letter %s:%s (%s): %s", record.tp, record.offset, kind.value, reason)
        message = dead_letter(
            self._topics.dlq, record, reason, kind, max_message_bytes=self._bus.max_message_bytes
        )
        if await deliver(self._bus, [message], self._retried, stop=self._abandon, persist=True):
            self.metrics.dead_letters.labels(kind.value).inc()
            self._offsets.done(record.tp, record.offset)

    def _retried(self, _: Exception) -> None:
        self.metrics.publish_retries.inc()


def replay_request(
    request: dict[str, Any], source: Api, target: Api, settings: ArmSettings
) -> Replay:
    """The request a candidate arm is sent: translated for its API (approximately where the
    table allows, the changes noted) and with the arm's prompt and parameter transforms."""
    if source is target:
        # The same dialect: only the model changes. A shallow copy, not `translate_request`'s
        # deep one: the body is only serialised from here on (`arm_variant` copies deeply
        # before it changes anything), so the call's nested values are never written to.
        return Replay(arm_variant({**request, "model": settings.model}, target, settings))
    replay = translate_replay(
        request,
        source=source,
        target=target,
        model=settings.model,
        default_max_tokens=settings.default_max_tokens,
        sampling=settings.sampling,
    )
    return Replay(arm_variant(replay.body, target, settings), replay.approximations)


def _outcome(pair: ShadowPair) -> str:
    result = pair.result
    return "ok" if result.ok else (result.error.kind.value if result.error else "error")


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


def _open_cache(settings: RunnerSettings) -> EmbeddingCache:
    """The embedding arms' cache; a path that cannot be opened is a setting to fix."""
    try:
        return EmbeddingCache.open(
            settings.embedding_cache, max_age_days=settings.embedding_cache_max_age_days
        )
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            f"runner.embedding_cache: {settings.embedding_cache}: cannot open the embedding"
            f" cache ({exc}): set it to a file the runner can write"
        ) from exc


def _limiter(limits: LimitSettings) -> ProviderLimiter:
    return ProviderLimiter(limits.concurrency, limits.requests_per_s, limits.tokens_per_min)
