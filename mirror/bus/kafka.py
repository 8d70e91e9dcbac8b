"""The Kafka bus: aiokafka producer and consumers behind the `Bus` interface.

Producer: `acks=all`, compression and linger from settings, idempotence a setting (off by
default: the Tansu test broker has no InitProducerId), `max_request_size` from
`bus.max_message_bytes`. Messages are keyed by `call_id` so every record of a call lands on one
partition. aiokafka errors are translated here into `BusError`, which carries aiokafka's own
`retriable` judgement.

Logs that change under a running process (a broker that came back empty, a topic deleted and
re-created, retention passing a slow consumer) are handled, not skipped silently:
- topics are checked at start, every `bus.topic_check_s`, and at once after a failed send:
  missing ones are created again with the configured partitions (sends wait meanwhile, see
  `KafkaBus._watch_topics`), and a topic whose partition count differs from `bus.partitions`
  is reported loudly on every check until it is fixed;
- a consumer compares what it has read with the log's end after every fetch (the high
  watermark the fetch response carries, so no request of its own), and refuses to commit past
  that end: a log that ends before what was read was replaced (a broker came back empty, a
  topic was re-created; some brokers then serve nothing until the new log grows past the old
  position), and the position is reset by `bus.consumer.offset_reset`; a jump over offsets
  trimmed by retention is counted. Both are logged with the offsets and told to the owner
  (`SkipObserver`). What this cannot see: a new log that has already grown past the old
  position when the consumer first fetches from it looks like the old one continuing, and its
  first records are skipped unseen. A replicated Kafka cluster does not lose its logs on a
  restart; a single broker on memory storage (the test broker) does;
- commits for partitions that no longer exist are dropped instead of retried forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from mirror.bus.base import (
    BusContext,
    Headers,
    RebalanceListener,
    Record,
    SkipObserver,
    TopicPartition,
    foreign_cancel_ignored,
)
from mirror.bus.partition import DefaultPartitioner
from mirror.config import BusSettings, KafkaConsumerSettings
from mirror.errors import BusClosedError, BusError

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
        self._watcher: asyncio.Task[None] | None = None
        self._check_now = asyncio.Event()
        self._verified = asyncio.Event()

    @property
    def bootstrap(self) -> str:
        return self._settings.bootstrap_servers

    @property
    def max_message_bytes(self) -> int:
        return self._settings.max_message_bytes

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
            max_request_size=self._settings.max_message_bytes,
            request_timeout_ms=producer_settings.request_timeout_ms,
            partitioner=DefaultPartitioner(),  # aiokafka's partitions, hashed faster
        )
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            await producer.stop()
            raise bus_error(exc, "connect") from exc
        self._producer = producer
        self._verified.set()
        self._watcher = asyncio.create_task(self._watch_topics(), name="shadowjudge-topics")

    async def ensure_topics(self) -> list[str]:
        """Create the configured topics that are missing and compare the partition counts of
        the others with the settings; returns (and logs) what is wrong."""
        topics = self._settings.topics
        names = [topics.calls, topics.pairs, topics.dlq]
        wanted_partitions = self._settings.partitions
        problems: list[str] = []
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=self._client_id)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            if topics.control not in existing:
                await self._create_control(admin, topics.control)
            missing = [name for name in names if name not in existing]
            if missing:
                config = {"max.message.bytes": str(self._settings.max_message_bytes)}
                try:
                    await admin.create_topics(
                        [
                            NewTopic(
                                name,
                                wanted_partitions,
                                self._settings.replication_factor,
                                topic_configs=config,
                            )
                            for name in missing
                        ]
                    )
                except TopicAlreadyExistsError:
                    pass  # another process created them first
                if self._producer is not None:  # not the first check, at start
                    log.warning(
                        "topics %s were missing and are created again with %d partitions "
                        "(did a broker come back empty?)",
                        ", ".join(missing),
                        wanted_partitions,
                    )
            present = [name for name in names if name in existing]
            if present:
                for described in await admin.describe_topics(present):
                    count = len(described.get("partitions") or ())
                    if described.get("error_code", 0) == 0 and count != wanted_partitions:
                        problems.append(
                            f"topic {described['topic']} has {count} partitions, "
                            f"bus.partitions is {wanted_partitions}"
                        )
        except (KafkaError, OSError) as exc:
            raise bus_error(exc, "topic check") from exc
        finally:
            await admin.close()
        for problem in problems:
            # Loud on every check: keys now map to other partitions than the consumers and the
            # dashboards expect, and the topic cannot be repaired without losing its data.
            log.error("%s: create the topic again or set bus.partitions to match", problem)
        return problems

    async def _create_control(self, admin: AIOKafkaAdminClient, name: str) -> None:
        """The control topic: one partition (one order of changes for every reader) and
        compacted (the latest change per migration is kept for ever, older ones go)."""
        config = {"cleanup.policy": "compact", "max.message.bytes": "1048576"}
        try:
            await admin.create_topics(
                [NewTopic(name, 1, self._settings.replication_factor, topic_configs=config)]
            )
        except TopicAlreadyExistsError:
            pass

    async def _watch_topics(self) -> None:
        """Check the topics every `topic_check_s`, and at once after a failed send. Missing
        topics are created again. While the brokers are unreachable, and until a check has
        passed since, this bus's sends wait (`_verified`): a broker that came back empty may
        acknowledge writes to a topic it has not created and never serve them (the test broker
        does), so nothing is sent until the topics are known to be there."""
        interval = self._settings.topic_check_s
        delay = interval
        while True:
            try:
                await asyncio.wait_for(self._check_now.wait(), delay)
            except TimeoutError:
                pass
            self._check_now.clear()
            try:
                await self.ensure_topics()
            except BusError as exc:
                self._verified.clear()
                log.debug("topic check failed (%s); again in %.1fs", exc, interval / 10)
                delay = interval / 10
                continue
            self._verified.set()
            delay = interval

    def _lost_contact(self) -> None:
        """A send failed: hold further sends until a topic check passes."""
        self._verified.clear()
        self._check_now.set()

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self._producer is not None:
            self._verified.set()  # sends waiting for a topic check now fail: the bus is closing
            producer, self._producer = self._producer, None
            await producer.stop()  # flushes what is in flight

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()
    ) -> asyncio.Future[Any]:
        if not self._verified.is_set():
            await self._verified.wait()
        if self._producer is None:
            raise BusClosedError("kafka producer is not connected")
        try:
            future: asyncio.Future[Any] = await self._producer.send(
                topic, value, key=key, headers=list(headers) or None
            )
        except KafkaError as exc:
            self._lost_contact()
            raise bus_error(exc, "send") from exc
        return _translated(future, self._lost_contact)

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group: str,
        listener: RebalanceListener | None = None,
        max_poll_interval_ms: int = 300_000,
        on_skip: SkipObserver | None = None,
        from_start: bool = False,
    ) -> KafkaConsumer:
        return KafkaConsumer(
            self.bootstrap,
            list(topics),
            group,
            listener,
            max_poll_interval_ms,
            settings=(
                self._settings.consumer.model_copy(update={"offset_reset": "earliest"})
                if from_start
                else self._settings.consumer
            ),
            on_skip=on_skip,
        )


def _translated(delivery: asyncio.Future[Any], failed: Callable[[], None]) -> asyncio.Future[Any]:
    """The delivery future with aiokafka's errors translated into `BusError`; a failure is
    also told to `failed`."""
    out: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def settle(done: asyncio.Future[Any]) -> None:
        if out.done():
            return
        if done.cancelled():
            out.cancel()
        elif (exc := done.exception()) is not None:
            failed()
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
    """A group member with manual commits, whose positions are checked against the log."""

    def __init__(
        self,
        bootstrap: str,
        topics: list[str],
        group: str,
        listener: RebalanceListener | None,
        max_poll_interval_ms: int,
        *,
        settings: KafkaConsumerSettings | None = None,
        on_skip: SkipObserver | None = None,
    ) -> None:
        settings = settings or KafkaConsumerSettings()
        self._topics = topics
        self._listener = listener
        self._settings = settings
        self._on_skip = on_skip
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset=settings.offset_reset,
            max_poll_interval_ms=max_poll_interval_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            group_instance_id=settings.instance_id,
        )
        #: The offset after the last record returned, per partition.
        self._expected: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        try:
            await self._consumer.start()
            self._consumer.subscribe(
                self._topics,
                listener=_Listener(self._listener) if self._listener is not None else None,
            )
        except (KafkaError, OSError) as exc:
            with foreign_cancel_ignored("a Kafka consumer"):
                await self._consumer.stop()
            raise bus_error(exc, "consumer start") from exc

    async def stop(self) -> None:
        with foreign_cancel_ignored("a Kafka consumer"):
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
        records: list[Record] = []
        for ktp, messages in batches.items():
            if not messages:
                continue
            tp = TopicPartition(ktp.topic, ktp.partition)
            await self._saw(tp, messages[0].offset)
            self._expected[tp] = messages[-1].offset + 1
            records.extend(
                Record(
                    m.topic,
                    m.partition,
                    m.offset,
                    m.key,
                    m.value if m.value is not None else b"",
                    tuple(m.headers or ()),
                )
                for m in messages
            )
        await self._check_positions()
        return records

    async def _saw(self, tp: TopicPartition, first: int) -> None:
        """A batch starts at `first`: a jump past the offset expected is counted when the log
        no longer holds those offsets (retention trimmed them before they were read)."""
        expected = self._expected.get(tp)
        if expected is None or first <= expected:
            return
        try:
            begin = (await self._consumer.beginning_offsets([_ktp(tp)]))[_ktp(tp)]
        except KafkaError:
            return
        if begin > expected:
            self._skipped(tp, begin - expected, f"offsets {expected}..{begin - 1} left the log")

    async def _check_positions(self) -> None:
        """Compare where each partition was read up to (or, after a rebalance, the position
        its committed offset gave) with the log's end as the last fetch response gave it (no
        request of its own): a log that ends before that point was replaced."""
        for ktp in sorted(self._consumer.assignment()):
            # The awaits below let a rebalance run: a partition taken away meanwhile is not
            # ours to check (aiokafka asserts that a partition asked about is assigned).
            if ktp not in self._consumer.assignment():
                continue
            try:
                await self._check_position(ktp)
            except AssertionError:
                continue  # revoked between the check above and aiokafka's own

    async def _check_position(self, ktp: KafkaTopicPartition) -> None:
        end = self._consumer.highwater(ktp)
        if end is None:
            return  # nothing fetched yet
        seen = self._expected.get(TopicPartition(ktp.topic, ktp.partition))
        if seen is None:
            try:  # a fetch answered, so the position is known: this does not wait
                seen = await asyncio.wait_for(self._consumer.position(ktp), 0.1)
            except (KafkaError, TimeoutError):
                return
        if seen > end:
            try:
                await self._reset(ktp, end, f"position {seen}")
            except KafkaError as exc:
                log.warning("%s: could not reset a position past the log's end: %s", ktp, exc)

    async def _reset(self, ktp: KafkaTopicPartition, end: int, what: str) -> None:
        """Move a position that is past the log's end by the reset policy; log and tell."""
        tp = TopicPartition(ktp.topic, ktp.partition)
        begin = (await self._consumer.beginning_offsets([ktp]))[ktp]
        if self._settings.offset_reset == "earliest":
            skipped, target = 0, begin
        else:
            skipped, target = end - begin, end
        self._consumer.seek(ktp, target)
        self._expected.pop(tp, None)
        self._skipped(
            tp,
            skipped,
            f"{what} is past the log's end {end} (the log was replaced or truncated: a broker "
            f"that came back empty, a re-created topic); reset to the "
            f"{self._settings.offset_reset} offset {target}",
        )

    def _skipped(self, tp: TopicPartition, count: int, why: str) -> None:
        log.warning("%s:%d: %s; %d offset(s) skipped", tp.topic, tp.partition, why, count)
        if self._on_skip is not None:
            self._on_skip(tp, count, why)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit, except for partitions that no longer exist (dropped: such a commit can never
        succeed, and retrying it would block every later one) and for points past the log's
        end (refused, and the position reset: the log was replaced under the consumer, and
        committing the old log's offsets would skip the new log's records)."""
        if not offsets:
            return
        kept: dict[KafkaTopicPartition, int] = {}
        for tp, offset in offsets.items():
            partitions = self._consumer.partitions_for_topic(tp.topic)
            if partitions is None or tp.partition not in partitions:
                log.warning("dropping the commit of %s:%d: no such partition", *tp)
                continue
            kept[_ktp(tp)] = offset
        if not kept:
            return
        try:
            for ktp, offset in list(kept.items()):
                # The end as the last fetch response gave it: a commit point is at most one
                # past a record fetched, so it can pass the high watermark only when the log
                # shrank. (Not ListOffsets: some brokers answer it with the last batch's base.)
                end = self._consumer.highwater(ktp)
                if end is not None and offset > end:
                    del kept[ktp]
                    await self._reset(ktp, end, f"commit point {offset}")
            if kept:
                await self._consumer.commit(kept)
        except KafkaError as exc:
            raise bus_error(exc, "commit") from exc


def _ktp(tp: TopicPartition) -> KafkaTopicPartition:
    return KafkaTopicPartition(tp.topic, tp.partition)
