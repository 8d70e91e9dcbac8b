"""The bus interface between the roles, modelled on aiokafka's, so the runner and the judge are
written once for `memory://` (one process) and Kafka (between processes):
- `send()` waits until the bus has room for the message (backpressure, never unbounded memory)
  and returns a future that resolves when the message is durably accepted (Kafka: acked);
- consumers belong to a group, read batches with `getmany()` and commit explicitly — the offset
  committed is the next one to read — so work is acknowledged only after it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Protocol, Self

log = logging.getLogger(__name__)


@contextlib.contextmanager
def foreign_cancel_ignored(what: str) -> Iterator[None]:
    """Around a client's stop: a `CancelledError` that is not a cancel of the current task is
    logged at debug level and dropped. aiokafka's stop cancels its own fetch task and then
    awaits it, and with the brokers away that task's `CancelledError` can come out of `stop()`
    (seen in CI: it ended the rollout control reader); a cancel of the current task goes on."""
    try:
        yield
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.debug("%s stopped uncleanly: its own task's cancel came out of it", what)


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

#: Told when a consumer had to move its position because it was not in the log (past the end
#: of a log replaced under it, or before the start of one trimmed by retention): the partition,
#: how many offsets it skipped (0 when it skipped none, e.g. back to the start of a new log),
#: and why.
SkipObserver = Callable[[TopicPartition, int, str], None]


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

    @property
    def max_message_bytes(self) -> int | None:
        """The largest message `send` accepts (None: no limit); see `mirror.fit`."""
        ...

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
        on_skip: SkipObserver | None = None,
        from_start: bool = False,
    ) -> BusConsumer:
        """A member of `group` on `topics`. A group with no committed position starts where
        `bus.consumer.offset_reset` says, or at the beginning with `from_start`."""
        ...


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


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers = ()
