"""The Kafka bus: aiokafka producer and consumers behind the `Bus` interface.

Producer: `acks=all`, compression and linger from settings, idempotence a setting (off by
default: the Tansu test broker has no InitProducerId). Messages are keyed by `call_id` so every
record of a call lands on one partition. Topics are created at start when missing (and brokers
that auto-create them are fine too). aiokafka errors are translated here into `BusError`, which
carries aiokafka's own `retriable` judgement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from mirror.bus.base import BusContext, Headers, RebalanceListener, Record, TopicPartition
from mirror.config import BusSettings
from mirror.errors import BusError

log = logging.getLogger(__name__)


def bus_error(exc: BaseException, doing: str) -> BusError:
    error = BusError(f"kafka {doing} failed: {type(exc).__name__}: {exc}")
    error.retriable = bool(getattr(exc, "retriable", True))
    return error


class KafkaBus(BusContext):
    def __init__(self, settings: BusSettings, *, client_id: str = "shadowjudge") -> None:
        self._settings = settings
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    @property
    def bootstrap(self) -> str:
        return self._settings.bootstrap_servers

    async def start(self) -> None:
        """Connect the producer; raises a retriable `BusError` while the brokers are away."""
        await self.ensure_topics()
        producer_settings = self._settings.producer
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self._client_id,
            acks=producer_settings.acks,
            compression_type=(
                None if producer_settings.compression == "none" else producer_settings.compression
            ),
            linger_ms=producer_settings.linger_ms,
            enable_idempotence=producer_settings.idempotence,
            max_batch_size=producer_settings.max_batch_bytes,
            request_timeout_ms=producer_settings.request_timeout_ms,
        )
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            await producer.stop()
            raise bus_error(exc, "connect") from exc
        self._producer = producer

    async def ensure_topics(self) -> None:
        topics = self._settings.topics
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=self._client_id)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(name, self._settings.partitions, self._settings.replication_factor)
                for name in (topics.calls, topics.pairs, topics.dlq)
                if name not in existing
            ]
            if wanted:
                await admin.create_topics(wanted)
        except TopicAlreadyExistsError:
            pass
        except (KafkaError, OSError) as exc:
            raise bus_error(exc, "topic creation") from exc
        finally:
            await admin.close()

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()  # flushes what is in flight

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()
    ) -> asyncio.Future[Any]:
        if self._producer is None:
            raise BusError("kafka producer is not connected")
        try:
            future: asyncio.Future[Any] = await self._producer.send(
                topic, value, key=key, headers=list(headers) or None
            )
        except KafkaError as exc:
            raise bus_error(exc, "send") from exc
        return _translated(future)

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group: str,
        listener: RebalanceListener | None = None,
        max_poll_interval_ms: int = 300_000,
    ) -> KafkaConsumer:
        return KafkaConsumer(self.bootstrap, list(topics), group, listener, max_poll_interval_ms)


def _translated(delivery: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """The delivery future with aiokafka's errors translated into `BusError`."""
    out: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def settle(done: asyncio.Future[Any]) -> None:
        if out.done():
            return
        if done.cancelled():
            out.cancel()
        elif (exc := done.exception()) is not None:
            out.set_exception(bus_error(exc, "delivery"))
        else:
            out.set_result(None)

    delivery.add_done_callback(settle)
    return out


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, listener: RebalanceListener) -> None:
        self._listener = listener

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._listener.on_partitions_revoked({TopicPartition(*tp) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._listener.on_partitions_assigned({TopicPartition(*tp) for tp in assigned})


class KafkaConsumer(BusContext):
    """A group member with manual commits (auto-commit off, earliest offset for a new group)."""

    def __init__(
        self,
        bootstrap: str,
        topics: list[str],
        group: str,
        listener: RebalanceListener | None,
        max_poll_interval_ms: int,
    ) -> None:
        self._topics = topics
        self._listener = listener
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=max_poll_interval_ms,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
        )

    async def start(self) -> None:
        try:
            await self._consumer.start()
            self._consumer.subscribe(
                self._topics,
                listener=_Listener(self._listener) if self._listener is not None else None,
            )
        except (KafkaError, OSError) as exc:
            await self._consumer.stop()
            raise bus_error(exc, "consumer start") from exc

    async def stop(self) -> None:
        await self._consumer.stop()

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    async def lag(self) -> int | None:
        assigned = self._consumer.assignment()
        if not assigned:
            return None
        total = 0
        for tp in assigned:
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                return None
            try:
                position = await self._consumer.position(tp)
            except KafkaError:
                return None
            total += max(highwater - position, 0)
        return total

    async def getmany(self, timeout_ms: int, max_records: int) -> list[Record]:
        try:
            batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            raise bus_error(exc, "fetch") from exc
        return [
            Record(
                m.topic,
                m.partition,
                m.offset,
                m.key,
                m.value if m.value is not None else b"",
                tuple(m.headers or ()),
            )
            for messages in batches.values()
            for m in messages
        ]

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            await self._consumer.commit(
                {KafkaTopicPartition(tp.topic, tp.partition): o for tp, o in offsets.items()}
            )
        except KafkaError as exc:
            raise bus_error(exc, "commit") from exc
