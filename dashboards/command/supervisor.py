"""The supervisor: starts the roles a command asks for and owns the signals.

SIGTERM or SIGINT asks every server to stop taking requests and every worker to stop fetching,
finish what it holds, commit and return; then the shared bus is closed. Whatever still runs
`DRAIN_MARGIN_S` past the runner's drain deadline is cancelled: a stop signal always ends the
process, whatever the bus or the store are doing. When a role fails, the others are told to stop
the same way, and the process exits with its error. With `bus: memory://`, `run`'s roles share an
in-process bus; with `kafka://`, each role has its own producer and consumer group, exactly as
when the roles run as separate processes.

When the sidecar shares the command with other roles (`run`), it runs in a child process
(`mirror.sidecar.child`): the parent binds its port first, hands it over with the settings, puts
the captures the child sends over a Unix socket on the in-process bus, sends it every rollout
weight change and, every second, the other roles' metrics and health for its /metrics and
/healthz; on the stop signal the child stops first and every capture it took is on the bus
before the drain counts. Why a process: on one event loop the judge's scoring stalled the live
path (p99 added 26-101 ms, 227-583 ms with the judge working through 20,000 pairs); on a thread
and loop of its own with a 0.5 ms switch interval it was no better (p99 118-153 ms: most likely
the interpreter lock, held for long stretches by the other roles' C calls); in its own process
it is 0.7-7 ms with the backlog on a quiet 2-core machine, against 1.2-1.9 ms alone
(`tests/benchmarks/sidecar_overhead.py --in-run --backlog 20000`, docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from dashboards.command.endpoints import Health, serve_role_endpoints
from dashboards.command.preflight import safe_url
from dashboards.command.serve import DashboardServer, StoreHolder, evaluator_for
from dashboards.rollout.control import RolloutController, triggers_clear
from dashboards.settings import Settings
from dashboards.triggers.engine import Evaluator
from judge.errors import StoreError, StoreUnavailableError
from judge.scorers.pairwise import PairwiseJudge
from judge.scoring import Scorer
from judge.store.store import AsyncStore
from judge.worker import JudgeMetrics, JudgeWorker
from mirror.bus.base import Bus
from mirror.bus.control import ControlReader, publish_change
from mirror.bus.factory import open_bus
from mirror.bus.memory import MemoryBus
from mirror.bus.retry import start_with_retry, until_stopped
from mirror.pricing import PriceTable
from mirror.rollout import WeightChange, Weights
from mirror.runner.caller import ArmCaller
from mirror.runner.worker import Runner
from mirror.sidecar.child import ChildConfig, SidecarProcess
from mirror.sidecar.metrics import SidecarMetrics
from mirror.sidecar.sched import idle_threads, request_slice
from mirror.sidecar.server import SidecarServer, bind, build_sidecar

log = logging.getLogger("shadowjudge")

Worker = Callable[[asyncio.Event], Awaitable[None]]

#: Past the runner's drain deadline, time left for consumers to leave their groups, producers
#: to flush and the store to close before the supervisor cancels what still runs.
DRAIN_MARGIN_S = 15.0
#: The embedded run: past its drain, time for the workers to commit and the store to close.
EMBEDDED_MARGIN_S = 5.0
#: How often the rollout step schedule is looked at.
ROLLOUT_TICK_S = 5.0
ROLLOUT_AUDIT_RETRY_S = 0.5
#: How long a rollout change waits for the control topic's acknowledgement.
CONTROL_ACK_S = 5.0


Drain = Callable[[], Awaitable[None]]


class Server(Protocol):
    """A server the supervisor runs: `serve()` until `should_exit` (set from any thread)."""

    should_exit: bool

    async def serve(self) -> None: ...


async def supervise(
    servers: Sequence[Server],
    workers: Sequence[Worker],
    *,
    drain_timeout_s: float,
    drain: Drain | None = None,
    on_signal: Callable[[], None] | None = None,
) -> None:
    """Run servers and workers until SIGTERM/SIGINT, then stop them all within the deadline.
    A role that fails raises here (the process exits non-zero).

    With `drain`, the stop is staged: the servers stop taking calls and finish theirs, then
    `drain()` runs (the embedded run waits for what was captured to be judged), then the
    workers are told to stop. A second signal skips what is left of the drain."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signalled = asyncio.Event()

    def shutdown() -> None:
        if on_signal is not None and not signalled.is_set():
            on_signal()  # e.g. the demo's app stops sending before the sidecar stops
        if signalled.is_set():
            stop.set()  # a second signal: no more waiting
        signalled.set()
        for server in servers:
            server.should_exit = True
        if drain is None:
            stop.set()

    serving = [asyncio.ensure_future(server.serve()) for server in servers]

    async def staged() -> None:
        await signalled.wait()
        if serving:
            await asyncio.wait(serving)
        if drain is not None and not stop.is_set():
            drained = asyncio.ensure_future(drain())
            skipped = asyncio.ensure_future(stop.wait())  # a second signal
            await asyncio.wait([drained, skipped], return_when=asyncio.FIRST_COMPLETED)
            drained.cancel()
            skipped.cancel()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown)
    stager = asyncio.ensure_future(staged())
    working = [asyncio.ensure_future(worker(stop)) for worker in workers]
    roles: asyncio.Future[Any] = asyncio.gather(*serving, *working)
    stopping: asyncio.Future[Any] = asyncio.ensure_future(signalled.wait())
    try:
        await asyncio.wait([roles, stopping], return_when=asyncio.FIRST_COMPLETED)
        if roles.done() and not roles.cancelled() and roles.exception() is not None:
            # A role failed: the others are told to stop (within the deadline), so the
            # process exits with the failure instead of running on without that role.
            stop.set()
            for server in servers:
                server.should_exit = True
            _, left = await asyncio.wait([*serving, *working], timeout=drain_timeout_s)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
        if not roles.done():
            try:
                await asyncio.wait_for(asyncio.shield(roles), drain_timeout_s)
            except TimeoutError:
                log.error(
                    "roles still running %.0fs after the stop signal; cancelling them",
                    drain_timeout_s,
                )
                roles.cancel()
                await asyncio.gather(roles, return_exceptions=True)
                return
        roles.result()
    finally:
        stopping.cancel()
        stager.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def memory_drain(bus: MemoryBus, settings: Settings) -> Drain:
    """Wait, up to `run.drain_timeout_s`, until the runner has committed every captured call
    and the judge every pair (the judge commits once its rows are stored); then log what was
    drained and what had to be dropped. The in-process bus dies with the process: what is
    dropped here is lost, so it is said, with the numbers."""
    calls = bus.topic(settings.bus.topics.calls)
    pairs = bus.topic(settings.bus.topics.pairs)
    runner, judge = settings.runner.group, settings.judge.group
    deadline_s = settings.run.drain_timeout_s

    def left() -> tuple[int, int]:
        return (
            calls.end - calls.committed.get(runner, calls.base),
            pairs.end - pairs.committed.get(judge, pairs.base),
        )

    async def drain() -> None:
        started = time.monotonic()
        calls_at_stop, _ = left()
        log.info(
            "stopping: draining %d captured call(s) through the runner and judge (up to %.0fs)",
            calls_at_stop,
            deadline_s,
        )
        while any(left()) and time.monotonic() - started < deadline_s:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # two topics' commit positions, polled
        calls_left, pairs_left = left()
        took = time.monotonic() - started
        if calls_left or pairs_left:
            log.error(
                "drain deadline (run.drain_timeout_s = %.0fs) passed: dropped %d captured "
                "call(s) not replayed and %d pair(s) not judged; drained %d call(s)",
                deadline_s,
                calls_left,
                pairs_left,
                calls_at_stop - calls_left,
            )
        else:
            log.info("drained %d captured call(s) in %.1fs: 0 dropped", calls_at_stop, took)

    return drain


def runner_worker(settings: Settings, bus: Bus, *, own_bus: bool) -> tuple[Runner, Worker]:
    runner = Runner(
        bus=bus,
        topics=settings.bus.topics,
        migrations=settings.migrations,
        providers=settings.providers,
        prices=PriceTable(settings.prices),
        settings=settings.runner,
        caller=ArmCaller(
            timeout_s=settings.runner.timeout_s, max_attempts=settings.runner.max_attempts
        ),
    )

    async def work(stop: asyncio.Event) -> None:
        if own_bus and not await start_with_retry(bus, stop, "runner"):
            return
        try:
            await runner.run(stop)
        finally:
            await runner.close()
            if own_bus:
                await bus.stop()

    return runner, work


async def open_store(
    settings: Settings, stop: asyncio.Event, on_error: Callable[[Exception], None] | None = None
) -> AsyncStore | None:
    """The store, migrated and repaired; retried while it is unavailable (a server away, a
    directory another process holds), each failure told to `on_error`."""

    async def attempt() -> AsyncStore:
        store = await AsyncStore.open(settings.store)
        try:
            await store.migrate()
        except StoreUnavailableError as exc:
            await store.close()
            if exc.condition == "schema":
                # At start, access denied or a read-only store is configuration: say so and
                # exit, rather than wait on it (mid-run, the worker waits: it holds rows).
                raise StoreError(str(exc), code=exc.code) from exc
            raise
        rebuilt = await store.run(store.store.recover)
        if rebuilt:
            log.warning("rebuilt the aggregates of %d hour(s) a cut-off write left", len(rebuilt))
        return store

    return await until_stopped(attempt, stop, "store", on_error=on_error)


def scorer_for(settings: Settings) -> Scorer:
    judge = PairwiseJudge.from_settings(settings.judge, settings.providers)
    return Scorer(settings.judge, settings.providers, PriceTable(settings.prices), judge)


def judge_worker(
    settings: Settings, bus: Bus, *, own_bus: bool, holder: StoreHolder | None = None
) -> tuple[JudgeMetrics, Health, Worker]:
    metrics = JudgeMetrics()
    state: dict[str, Any] = {"status": "starting"}
    running: list[JudgeWorker] = []

    def health() -> dict[str, Any]:
        return running[0].health() if running else dict(state)

    def store_failed(exc: Exception) -> None:
        state.update(status="degraded", reason=f"store: {exc}")
        metrics.degraded.set(1)
        if holder is not None:  # the pages say why they wait
            holder.take_back(str(exc))

    async def work(stop: asyncio.Event) -> None:
        store = await open_store(settings, stop, on_error=store_failed)
        if store is None:
            return
        metrics.degraded.set(0)
        if holder is not None:
            holder.lend(store.store)
        try:
            async with scorer_for(settings) as scorer:
                if own_bus and not await start_with_retry(bus, stop, "judge"):
                    return
                log.info("judge version %s", scorer.version)
                if settings.judge.provider is None:
                    log.warning(
                        "no LLM judge configured (judge.provider): pairs the exact and JSON"
                        " tiers cannot decide are stored as not judged; the dashboards count them"
                    )
                worker = JudgeWorker(
                    bus=bus,
                    topics=settings.bus.topics,
                    scorer=scorer,
                    store=store,
                    batch_rows=settings.store.batch_rows,
                    batch_seconds=settings.store.batch_seconds,
                    group=settings.judge.group,
                    metrics=metrics,
                )
                running.append(worker)
                try:
                    await worker.run(stop)
                finally:
                    if own_bus:
                        await bus.stop()
        finally:
            if holder is not None:
                holder.take_back("the judge closed the store (stopping)")
            await store.close()

    return metrics, health, work


def dashboards_worker(settings: Settings, holder: StoreHolder) -> Worker:
    """`shadowjudge dashboards` alone: open the store (waiting while it is unavailable) and
    lend it to the pages until the stop signal."""

    def failed(exc: Exception) -> None:
        holder.take_back(str(exc))

    async def work(stop: asyncio.Event) -> None:
        store = await open_store(settings, stop, on_error=failed)
        if store is None:
            return
        holder.lend(store.store)
        try:
            await stop.wait()
        finally:
            holder.take_back("stopping")
            await store.close()

    return work


def triggers_worker(evaluator: Evaluator, interval_s: float) -> Worker:
    """Evaluate the rules every `interval_s` in a worker thread. A failure is logged and the
    next round tried: the triggers never take the other roles down with them."""

    async def work(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(evaluator.evaluate)
            except StoreError as exc:
                log.warning("triggers not evaluated: %s", exc)
            except Exception:  # noqa: BLE001 - a bug here must not stop the live path
                log.exception("triggers not evaluated")
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except TimeoutError:
                pass

    return work


def rollout_worker(control: RolloutController, holder: StoreHolder, rules: list[str]) -> Worker:
    """Restore the weights once the store is open, then advance the step schedule every
    `ROLLOUT_TICK_S`. Like the triggers, a failure is logged and tried again next tick."""

    async def work(stop: asyncio.Event) -> None:
        restored = False
        while not stop.is_set():
            try:
                await asyncio.to_thread(control.flush_audit)
                if not restored:
                    count = await asyncio.to_thread(control.restore)
                    restored = True
                    for status in control.status():
                        log.info(
                            "rollout %s/%s at %.0f%% (%s)",
                            status.migration,
                            status.arm,
                            status.weight * 100,
                            "restored" if count else "configured",
                        )
                else:
                    await asyncio.to_thread(
                        lambda: control.advance(triggers_clear(holder(), rules))
                    )
            except StoreError as exc:
                log.debug("rollout schedule waits: %s", exc)
            except Exception:  # noqa: BLE001 - a bug here must not stop the live path
                log.exception("rollout schedule not advanced")
            try:  # soon again while a change waits for its audit row
                tick = ROLLOUT_AUDIT_RETRY_S if control.unaudited else ROLLOUT_TICK_S
                await asyncio.wait_for(stop.wait(), tick)
            except TimeoutError:
                pass
        with contextlib.suppress(Exception):  # a last try: the store may be closing already
            await asyncio.to_thread(control.flush_audit)

    return work


def _publisher(
    bus: Bus, topic: str, loop: asyncio.AbstractEventLoop
) -> Callable[[WeightChange], None]:
    """Publish a change from any thread but the loop's, waiting for the broker's ack (a
    person changing a weight is told if it did not go out)."""

    def publish(change: WeightChange) -> None:
        sent = asyncio.run_coroutine_threadsafe(publish_change(bus, topic, change), loop)
        sent.result(timeout=CONTROL_ACK_S)

    return publish


def control_worker(bus: Bus, topic: str, weights: Weights | None) -> Worker:
    """The control topic's bus for this process: with `weights` (a sidecar here), read the
    changes into them; without, only keep the bus the controls publish on."""

    async def work(stop: asyncio.Event) -> None:
        if not await start_with_retry(bus, stop, "control"):
            return
        try:
            if weights is not None:
                await ControlReader(bus, topic, weights).run(stop)
            else:
                await stop.wait()
        finally:
            await bus.stop()

    return work


async def run_roles(
    settings: Settings, roles: set[str], on_signal: Callable[[], None] | None = None
) -> None:
    # The ports are bound first: a taken one fails the start before anything has started.
    listener = bind(settings.sidecar.listen, "sidecar.listen") if "mirror" in roles else None
    holder = StoreHolder()
    weights = Weights()
    control = RolloutController(settings.migrations, holder, weights)
    evaluator = pages = None
    if "dashboards" in roles:
        evaluator = evaluator_for(
            settings,
            holder,
            lambda migration, arm, actor, why: control.rollback(
                migration, arm, actor=actor, reason=why
            ),
        )
        pages = DashboardServer(settings, holder, evaluator, control)
    workers_first: list[Worker] = []
    if pages is not None and "judge" not in roles:
        workers_first.append(dashboards_worker(settings, holder))
    if evaluator is not None:
        workers_first.append(triggers_worker(evaluator, settings.triggers.interval_s))
    rollouts = any(m.rollout is not None for m in settings.migrations)
    if pages is not None and rollouts:
        rules = [rule.name for rule in settings.triggers.rules]
        workers_first.append(rollout_worker(control, holder, rules))
    if rollouts and not settings.bus.is_memory and (pages is not None or "mirror" in roles):
        # Sidecars in other processes learn the weights from the control topic.
        control_bus = open_bus(settings.bus, client_id="shadowjudge-control")
        topic = settings.bus.topics.control
        if pages is not None:
            control.publish = _publisher(control_bus, topic, asyncio.get_running_loop())
        workers_first.append(
            control_worker(control_bus, topic, weights if "mirror" in roles else None)
        )
    try:
        if pages is not None:
            pages.start()
        await _run_roles(
            settings,
            roles,
            holder if pages is not None else None,
            workers_first,
            evaluator.registry if evaluator is not None else None,
            listener,
            weights,
            on_signal,
        )
    finally:
        if pages is not None:
            pages.stop()


async def _run_roles(
    settings: Settings,
    roles: set[str],
    holder: StoreHolder | None,
    extra: list[Worker],
    trigger_metrics: CollectorRegistry | None,
    listener: socket.socket | None,
    weights: Weights,
    on_signal: Callable[[], None] | None = None,
) -> None:
    shared: Bus | None = None
    if settings.bus.is_memory:
        shared = MemoryBus(settings.bus.memory_capacity)
        shared.ring(settings.bus.topics.dlq)  # nobody reads dead letters in-process
        await shared.start()
    servers: list[Server] = []
    workers: list[Worker] = list(extra)
    sidecar_metrics = SidecarMetrics()
    if trigger_metrics is not None:
        sidecar_metrics.also.append(trigger_metrics)
    if "runner" in roles:
        bus = shared or open_bus(settings.bus, client_id="shadowjudge-runner")
        runner, work = runner_worker(settings, bus, own_bus=shared is None)
        workers.append(work)
        if "mirror" in roles:
            sidecar_metrics.also.append(runner.metrics.registry)
            sidecar_metrics.health["runner"] = runner.health
        else:
            serve_role_endpoints(
                settings.runner.metrics_listen,
                runner.metrics.registry,
                runner.health,
                "runner.metrics_listen",
            )
    if "judge" in roles:
        bus = shared or open_bus(settings.bus, client_id="shadowjudge-judge")
        judge_metrics, judge_health, judging = judge_worker(
            settings, bus, own_bus=shared is None, holder=holder
        )
        workers.append(judging)
        if "mirror" in roles:
            sidecar_metrics.also.append(judge_metrics.registry)
            sidecar_metrics.health["judge"] = judge_health
        else:
            serve_role_endpoints(
                settings.judge.metrics_listen,
                judge_metrics.registry,
                judge_health,
                "judge.metrics_listen",
            )
    if "mirror" in roles and roles != {"mirror"} and listener is not None:
        # Other roles run here: the live path gets a process of its own (module docstring).
        child = ChildConfig(
            sidecar=settings.sidecar,
            providers=settings.providers,
            capture=settings.capture,
            bus=settings.bus,
            migrations=settings.migrations,
            roles=sorted(sidecar_metrics.health),
            through_parent=shared is not None,
            log_level=logging.getLogger().getEffectiveLevel(),
        )
        process = SidecarProcess(
            child, listener, bus=shared, weights=weights, metrics=sidecar_metrics
        )
        servers.append(process)
        if settings.run.cpu_policy == "idle":
            moved = idle_threads(keep={await process.spawner_thread()})
            log.debug("%d threads of run's roles moved to the idle CPU policy", moved)
        log.info("sidecar listening on %s", settings.sidecar.listen)
    elif "mirror" in roles:
        if roles == {"mirror"} and settings.sidecar.cpu_slice_us:  # only the live path here
            request_slice(settings.sidecar.cpu_slice_us)
        sidecar = build_sidecar(
            settings.sidecar,
            settings.providers,
            settings.capture,
            settings.bus,
            bus=shared,
            metrics=sidecar_metrics,
            migrations=settings.migrations,
            weights=weights,
        )
        servers.append(SidecarServer(sidecar, settings.sidecar.listen, sock=listener))
        log.info("sidecar listening on %s", settings.sidecar.listen)
    log.info("roles %s, bus %s", ", ".join(sorted(roles)), safe_url(settings.bus.url))
    try:
        if isinstance(shared, MemoryBus) and "runner" in roles and "judge" in roles:
            # Embedded: what was captured lives only in this process; judge it before leaving.
            await supervise(
                servers,
                workers,
                drain_timeout_s=settings.run.drain_timeout_s + EMBEDDED_MARGIN_S,
                drain=memory_drain(shared, settings),
                on_signal=on_signal,
            )
        else:
            await supervise(
                servers,
                workers,
                drain_timeout_s=settings.runner.drain_timeout_s + DRAIN_MARGIN_S,
                on_signal=on_signal,
            )
    finally:
        if shared is not None:
            await shared.stop()


YOUNG_OBJECTS = 100_000


def tune_gc(young: int = YOUNG_OBJECTS) -> None:
    """Collect cycles rarely, and never scan what start-up loaded.

    The roles make many short-lived objects that reference counting frees; the cyclic
    collector, run every 700 allocations by default, rescanned a heap grown by caches and
    batches: it cost the judge 2-3x its own parsing time (measured: 18 µs to parse a pair
    alone, 110-180 µs inside the judge). A high threshold keeps cycles collected, just rarely.
    `young` (at least `YOUNG_OBJECTS`) is the young generation's threshold: a process that
    judges passes `judge.worker.young_objects`, above the objects of its batches in flight.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(young, YOUNG_OBJECTS), 50, 100)
