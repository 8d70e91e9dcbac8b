"""The bounded, non-blocking publisher between the live path and the bus.

`submit()` is all the live path calls: it appends the raw exchange to a bounded queue and
returns; it never awaits, never raises, and is safe from any thread (the in-process transport
may call it from an app's worker threads). A background task turns exchanges into
`CapturedCall`s and sends them, one per turn of the event loop, so the live path's own work
never waits for more than one capture to be built. Past the queue's bounds (events or bytes) a
new exchange is dropped and counted; a bus that is down costs dropped events, never the app's
requests.

A capture waits `capture.publish_delay_ms` (3 ms by default) after its call ended before it is
built: the app has its answer's last bytes by then, and the work the capture sets going (its
building here, the channel write that wakes `run`'s parent, the runner's replays) no longer
competes for the CPU with the app reading that answer. Measured in `run` on 2 cores with the
dashboards busy (`tests.benchmarks.sidecar_overhead --in-run --backlog 20000`, three rounds):
without the wait the sidecar added 1.06-1.28 ms p50 to non-streaming calls and 1.60-1.89 ms to
streams, with it 0.59-0.78 and 1.16-1.43; with the judge working through the backlog,
1.04-1.29 and 1.56-1.79 against 0.43-0.65 and 1.24-1.73. When the publisher is stopped, what
is queued is sent without waiting.

Every submitted exchange ends in exactly one counter: `captured` when the bus acknowledged it,
or `dropped{reason}`. A call larger than the bus's message limit is cut to fit and flagged
(`mirror.fit`), never dropped for its size. Drops by a failed publish are logged, at most one
line per `DROP_LOG_EVERY_S` with the count since the last line.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import Any

from mirror.bus.base import Bus
from mirror.config import CaptureSettings
from mirror.errors import BusError
from mirror.fit import dump_to_fit
from mirror.sidecar.capture import Capturer, Exchange
from mirror.sidecar.metrics import (
    DROP_CAPTURE_ERROR,
    DROP_PUBLISH_ERROR,
    DROP_QUEUE_FULL,
    DROP_SHUTDOWN,
    SidecarMetrics,
)

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 0.2
RECONNECT_MAX_S = 10.0
DROP_LOG_EVERY_S = 10.0


class Publisher:
    """Owns the capture queue and the task that drains it into the bus.

    With `own_bus`, the publisher starts the bus (retrying while the brokers are away) and stops
    it; otherwise the bus is shared and started by its owner.
    """

    def __init__(
        self,
        bus: Bus,
        topic: str,
        settings: CaptureSettings,
        metrics: SidecarMetrics,
        *,
        own_bus: bool = True,
    ) -> None:
        self._bus = bus
        self._topic = topic
        self._capturer = Capturer(settings)
        self.max_body_bytes = settings.max_body_bytes
        self._max_events = settings.queue_max_events
        self._max_bytes = settings.queue_max_bytes
        self._metrics = metrics
        self._own_bus = own_bus
        self._delay_s = settings.publish_delay_ms / 1000
        self._queue: deque[tuple[float, Exchange]] = deque()  # (built no sooner than, call)
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._accepting = False
        self._connected = not own_bus
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._unlogged_drops = 0
        self._drop_logged_at = 0.0

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def depth(self) -> int:
        return len(self._queue)

    # --- the live path ---------------------------------------------------------------------

    def submit(self, exchange: Exchange) -> None:
        """Queue an exchange for publishing. Never blocks, never raises."""
        try:
            size = exchange.size
            with self._lock:
                if not self._accepting:
                    reason = DROP_SHUTDOWN
                elif len(self._queue) >= self._max_events or (
                    self._queued_bytes + size > self._max_bytes
                ):
                    reason = DROP_QUEUE_FULL
                else:
                    reason = ""
                    self._queue.append((time.perf_counter() + self._delay_s, exchange))
                    self._queued_bytes += size
            if reason:
                self._metrics.dropped.labels(reason).inc()
                return
            self._metrics.queue_depth.inc()
            self._metrics.queue_bytes.inc(size)
            if threading.get_ident() == self._loop_thread:
                self._wake.set()
            elif self._loop is not None:
                self._loop.call_soon_threadsafe(self._wake.set)
        except Exception:  # noqa: BLE001 - the live path must never see our failure
            log.exception("capture submit failed")
            self._metrics.dropped.labels(DROP_CAPTURE_ERROR).inc()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._accepting = True
        self._task = asyncio.create_task(self._run(), name="shadowjudge-publisher")

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Stop taking exchanges, publish what is queued within the timeout, count the rest."""
        with self._lock:
            self._accepting = False
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), drain_timeout_s)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        self._drop_queued()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=drain_timeout_s)
        if self._own_bus and self._connected:
            await self._bus.stop()
            self._connected = False

    # --- the background task ---------------------------------------------------------------

    async def _run(self) -> None:
        delay = RECONNECT_MIN_S
        while not self._connected:
            if not self._accepting:
                return
            try:
                await self._bus.start()
                self._connected = True
            except BusError as exc:
                self._metrics.publish_errors.inc()
                log.warning("bus unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
        while True:
            if not self._queue:
                if not self._accepting:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._queue[0][0] - time.perf_counter()
            if wait > 0 and self._accepting:
                await asyncio.sleep(wait)
                continue
            exchange = self._pop()
            await self._publish(exchange)
            # A send that the bus takes at once (the channel to `run`, the in-process bus, a
            # Kafka batch with room) never suspends: without this the task would build every
            # queued capture in one turn of the loop, and after a burst the live path's calls
            # would wait for all of them.
            await asyncio.sleep(0)

    def _pop(self) -> Exchange:
        with self._lock:
            _, exchange = self._queue.popleft()
            self._queued_bytes -= exchange.size
        self._metrics.queue_depth.dec()
        self._metrics.queue_bytes.dec(exchange.size)
        return exchange

    async def _publish(self, exchange: Exchange) -> None:
        try:
            call = self._capturer.build(exchange)
            value = dump_to_fit(call, self._bus.max_message_bytes)
        except Exception:  # noqa: BLE001 - a bug in capture loses one event, not the sidecar
            log.exception("building a captured call failed")
            self._metrics.dropped.labels(DROP_CAPTURE_ERROR).inc()
            return
        try:
            delivery = await self._bus.send(self._topic, value, key=call.call_id.encode())
        except BusError as exc:
            self._publish_failed(exc)
            return
        self._in_flight.add(delivery)
        delivery.add_done_callback(self._delivered)

    def _delivered(self, delivery: asyncio.Future[Any]) -> None:
        self._in_flight.discard(delivery)
        if delivery.cancelled():
            self._publish_failed(None)
        elif (exc := delivery.exception()) is not None:
            self._publish_failed(exc)
        else:
            self._metrics.captured.inc()

    def _publish_failed(self, exc: BaseException | None) -> None:
        self._metrics.publish_errors.inc()
        self._metrics.dropped.labels(DROP_PUBLISH_ERROR).inc()
        self._unlogged_drops += 1
        now = time.monotonic()
        if now - self._drop_logged_at >= DROP_LOG_EVERY_S:
            log.warning(
                "%d capture(s) dropped: the bus did not take them (%s)",
                self._unlogged_drops,
                exc if exc is not None else "cancelled",
            )
            self._unlogged_drops = 0
            self._drop_logged_at = now

    def _drop_queued(self) -> None:
        with self._lock:
            left = len(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
        if left:
            self._metrics.dropped.labels(DROP_SHUTDOWN).inc(left)
            self._metrics.queue_depth.set(0)
            self._metrics.queue_bytes.set(0)
