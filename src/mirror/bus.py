"""The bus between the roles: `memory://` in one process, Kafka between processes.

Both implementations share one small interface modelled on aiokafka's, so the runner and the
judge are written once:
- `send()` waits until the bus has room for the message (backpressure, never unbounded memory)
  and returns a future that resolves when the message is durably accepted (Kafka: acked);
- consumers belong to a group, read batches with `getmany()` and commit explicitly — the offset
  committed is the next one to read — so work is acknowledged only after it is done.

The memory bus keeps one partition per topic and one position per group; it trims a topic's log
below the lowest committed position of its groups, and a sender waits while the log is full.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Protocol, Self, TypeVar

from mirror.config import BusSettings
from mirror.errors import BusClosedError, MirrorError

log = logging.getLogger(__name__)

T = TypeVar("T")


class TopicPartition(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


Headers = Sequence[tuple[str, bytes]]


class RebalanceListener(Protocol):
    """Told before partitions are taken away (commit what is done) and after new ones come."""

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None: ...

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None: ...


class BusConsumer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(self, timeout_ms: int, max_records: int) -> list[Record]: ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    async def lag(self) -> int | None:
        """Records on the assigned partitions not yet read (None: not known yet)."""
        ...


class Bus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()
    ) -> asyncio.Future[Any]: ...

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group: str,
        listener: RebalanceListener | None = None,
        max_poll_interval_ms: int = 300_000,
    ) -> BusConsumer: ...


class BusContext:
    """`async with` for anything with start/stop."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class _MemoryTopic:
    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.log: deque[Record] = deque()
        self.base = 0  # offset of log[0]
        self.committed: dict[str, int] = {}
        self.changed = asyncio.Condition()

    @property
    def end(self) -> int:
        return self.base + len(self.log)

    def trim(self) -> None:
        if not self.committed:
            return
        low = min(self.committed.values())
        while self.log and self.base < low:
            self.log.popleft()
            self.base += 1


class MemoryBus(BusContext):
    """An in-process bus with bounded topics, for the embedded one-process run."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._topics: dict[str, _MemoryTopic] = {}
        self._closed = False

    def topic(self, name: str) -> _MemoryTopic:
        if name not in self._topics:
            self._topics[name] = _MemoryTopic(name, self._capacity)
        return self._topics[name]

    async def start(self) -> None:
        self._closed = False

    async def stop(self) -> None:
        self._closed = True
        for topic in self._topics.values():
            async with topic.changed:
                topic.changed.notify_all()

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()
    ) -> asyncio.Future[Any]:
        log = self.topic(topic)
        async with log.changed:
            while len(log.log) >= log.capacity and not self._closed:
                log.trim()
                if len(log.log) >= log.capacity:
                    await log.changed.wait()
            if self._closed:
                raise BusClosedError("the memory bus is stopped")
            log.log.append(Record(topic, 0, log.end, key, value, tuple(headers)))
            log.changed.notify_all()
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group: str,
        listener: RebalanceListener | None = None,
        max_poll_interval_ms: int = 300_000,
    ) -> MemoryConsumer:
        return MemoryConsumer(self, list(topics), group, listener)


class MemoryConsumer(BusContext):
    """One consumer of a group on the memory bus: it owns every topic's single partition."""

    def __init__(
        self,
        bus: MemoryBus,
        topics: list[str],
        group: str,
        listener: RebalanceListener | None,
    ) -> None:
        self._bus = bus
        self._topics = [bus.topic(name) for name in topics]
        self._group = group
        self._listener = listener
        self._position: dict[str, int] = {}
        self._stopped = False

    async def start(self) -> None:
        for topic in self._topics:
            start = topic.committed.setdefault(self._group, topic.base)
            self._position[topic.name] = start
        if self._listener is not None:
            await self._listener.on_partitions_assigned(self.assignment())

    async def stop(self) -> None:
        if self._listener is not None and not self._stopped:
            await self._listener.on_partitions_revoked(self.assignment())
        self._stopped = True

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(t.name, 0) for t in self._topics}

    async def lag(self) -> int | None:
        return sum(max(t.end - self._position[t.name], 0) for t in self._topics)

    def _ready(self, max_records: int) -> list[Record]:
        batch: list[Record] = []
        for topic in self._topics:
            position = self._position[topic.name]
            index = max(position - topic.base, 0)
            while index < len(topic.log) and len(batch) < max_records:
                batch.append(topic.log[index])
                index += 1
            self._position[topic.name] = topic.base + index
        return batch

    async def getmany(self, timeout_ms: int, max_records: int) -> list[Record]:
        batch = self._ready(max_records)
        if batch or self._stopped or not self._topics:
            return batch
        # One topic's condition is enough to wake on: the roles consume one topic each.
        topic = self._topics[0]
        async with topic.changed:
            try:
                await asyncio.wait_for(
                    topic.changed.wait_for(
                        lambda: topic.end > self._position[topic.name] or self._bus._closed
                    ),
                    timeout_ms / 1000,
                )
            except TimeoutError:
                return []
        return self._ready(max_records)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            topic = self._bus.topic(tp.topic)
            async with topic.changed:
                topic.committed[self._group] = max(topic.committed.get(self._group, 0), offset)
                topic.trim()
                topic.changed.notify_all()


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers = ()


def dead_letter(topic: str, record: Record, reason: str) -> Message:
    """The DLQ message for `record`: its bytes and key as they came, the reason in a header."""
    return Message(
        topic,
        record.value,
        record.key,
        (
            ("error", reason.encode()[:1000]),
            ("source", f"{record.topic}:{record.partition}:{record.offset}".encode()),
        ),
    )


async def deliver(bus: Bus, messages: Sequence[Message], on_retry: Any = None) -> None:
    """Send and wait for the bus's acknowledgement of every message, retrying while the bus
    is away (work already done is not thrown away because a broker restarts)."""
    delay = 0.2
    while True:
        try:
            deliveries = [
                await bus.send(m.topic, m.value, key=m.key, headers=m.headers) for m in messages
            ]
            await asyncio.gather(*deliveries)
            return
        except MirrorError as exc:
            if not exc.retriable:
                raise
            if on_retry is not None:
                on_retry(exc)
            log.warning("bus send failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def until_stopped(
    attempt: Callable[[], Awaitable[T]], stop: asyncio.Event, what: str
) -> T | None:
    """`attempt()` retried with backoff while it raises an error flagged `retriable` (a broker
    or a store still away at start); None if `stop` is set first. Other errors propagate."""
    delay = 0.2
    while not stop.is_set():
        try:
            return await attempt()
        except Exception as exc:
            if not getattr(exc, "retriable", False):
                raise
            log.warning("%s unavailable (%s); retrying in %.1fs", what, exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 10.0)
    return None


async def start_with_retry(bus: Bus, stop: asyncio.Event, what: str) -> bool:
    """Start `bus`, retrying while the brokers are away; False if `stop` came first."""

    async def start() -> bool:
        await bus.start()
        return True

    return await until_stopped(start, stop, f"{what}: bus") is not None


def open_bus(settings: BusSettings, *, client_id: str = "shadowjudge") -> Bus:
    """The bus the settings name (not started)."""
    if settings.is_memory:
        return MemoryBus(settings.memory_capacity)
    from mirror.kafka import KafkaBus

    return KafkaBus(settings, client_id=client_id)
