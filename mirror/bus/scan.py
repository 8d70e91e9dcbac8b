"""Reading a whole Kafka topic once, for operator tools (`shadowjudge dlq`), not for workers.

A scan assigns itself every partition (it joins no group, so it never takes partitions from
the workers), starts each at the group's committed offset when given a group (else at the
beginning), and reads up to the end each partition had when the scan first saw it: it never
waits for messages written after it started. With a group, `commit()` records how far the
caller got, so the next scan of that group goes on from there.

Ends come from the high watermark of fetch responses, not from ListOffsets, which the test
broker answers with the last batch's base offset plus one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.errors import KafkaError

from mirror.bus.base import Record, TopicPartition
from mirror.bus.kafka import bus_error
from mirror.errors import BusError

#: How long a scan waits for the first fetch response of every partition.
FIRST_FETCH_S = 30.0


class TopicScan:
    def __init__(self, bootstrap: str, topic: str, *, group: str | None = None) -> None:
        self.topic = topic
        self._group = group
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=10_000,
        )
        self._partitions: list[KafkaTopicPartition] = []
        #: Where each partition started and ends for this scan.
        self.starts: dict[TopicPartition, int] = {}
        self.ends: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> Self:
        try:
            await self._consumer.start()
            ids = self._consumer.partitions_for_topic(self.topic)
            if ids is None:
                # A broker may list no topics in the first metadata answer: asking for one
                # partition's end makes the client fetch this topic's metadata.
                try:
                    await self._consumer.end_offsets([KafkaTopicPartition(self.topic, 0)])
                except KafkaError:
                    pass  # no such topic: nothing to read
                ids = self._consumer.partitions_for_topic(self.topic)
            ids = ids or set()
            self._partitions = [KafkaTopicPartition(self.topic, p) for p in sorted(ids)]
            if self._partitions:
                self._consumer.assign(self._partitions)
                for ktp in self._partitions:
                    committed = await self._consumer.committed(ktp) if self._group else None
                    if committed is None:
                        await self._consumer.seek_to_beginning(ktp)
                    else:
                        self._consumer.seek(ktp, committed)
                    self.starts[_tp(ktp)] = await self._consumer.position(ktp)
        except KafkaError as exc:
            await self._consumer.stop()
            raise bus_error(exc, f"scan of {self.topic}") from exc
        except BaseException:
            await self._consumer.stop()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._consumer.stop()

    @property
    def total(self) -> int | None:
        """Records this scan will read, once every partition's end is known."""
        if len(self.ends) < len(self._partitions):
            return None
        return sum(max(self.ends[tp] - self.starts[tp], 0) for tp in self.ends)

    async def records(self) -> AsyncIterator[Record]:
        """The records from each partition's start to its end, partitions interleaved."""
        deadline = time.monotonic() + FIRST_FETCH_S
        done: set[TopicPartition] = set()
        while len(done) < len(self._partitions):
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=1000)
            except KafkaError as exc:
                raise bus_error(exc, f"scan of {self.topic}") from exc
            for ktp in self._partitions:
                tp = _tp(ktp)
                highwater = self._consumer.highwater(ktp)
                if tp not in self.ends and highwater is not None:
                    self.ends[tp] = highwater
            if len(self.ends) < len(self._partitions) and time.monotonic() > deadline:
                raise BusError(f"scan of {self.topic}: no answer from some partitions")
            for ktp, messages in batches.items():
                tp = _tp(ktp)
                end = self.ends.get(tp)
                for m in messages:
                    if end is not None and m.offset >= end:
                        break
                    yield Record(
                        m.topic,
                        m.partition,
                        m.offset,
                        m.key,
                        m.value if m.value is not None else b"",
                        tuple(m.headers or ()),
                    )
            for ktp in self._partitions:
                tp = _tp(ktp)
                end = self.ends.get(tp)
                if end is not None and await self._consumer.position(ktp) >= end:
                    done.add(tp)
                    self._consumer.pause(ktp)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Record, for this scan's group, the next offset to read per partition."""
        if self._group is None or not offsets:
            return
        try:
            await self._consumer.commit({KafkaTopicPartition(*tp): o for tp, o in offsets.items()})
        except KafkaError as exc:
            raise bus_error(exc, f"commit of {self.topic}") from exc


def _tp(ktp: KafkaTopicPartition) -> TopicPartition:
    return TopicPartition(ktp.topic, ktp.partition)
