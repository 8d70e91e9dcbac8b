"""The in-process bus (`memory://`) for the embedded one-process run.

It keeps one partition per topic and one position per group; it trims a topic's log below the
lowest committed position of its groups, and a sender waits while the log is full.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from mirror.bus.base import (
    BusContext,
    Headers,
    RebalanceListener,
    Record,
    SkipObserver,
    TopicPartition,
)
from mirror.errors import BusClosedError


class _MemoryTopic:
    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.log: deque[Record] = deque()
        self.base = 0  # offset of log[0]
        self.committed: dict[str, int] = {}
        self.changed = asyncio.Condition()
        #: Full and read by no group: drop the oldest record instead of waiting (see `ring`).
        self.ring = False
        #: Records dropped, oldest first, from a full ring topic no group reads.
        self.overwritten = 0

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

    def ring(self, name: str) -> None:
        """Make topic `name` a ring while no group reads it: full, it drops its oldest record
        rather than hold the writer (a full topic otherwise waits for its readers' commits)."""
        self.topic(name).ring = True

    @property
    def max_message_bytes(self) -> int | None:
        return None  # nothing is framed or sent over a wire

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
                if len(log.log) >= log.capacity and log.ring and not log.committed:
                    # A topic nobody reads here (the dead letters of an embedded run): keep the
                    # newest `capacity` records rather than stop its writer for ever.
                    log.log.popleft()
                    log.base += 1
                    log.overwritten += 1
                elif len(log.log) >= log.capacity:
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
        on_skip: SkipObserver | None = None,  # the memory log never moves under a consumer
        from_start: bool = False,  # a new group starts at the beginning of the memory log
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
