"""The control topic on a real Kafka-protocol broker (Tansu): a change reaches a reading
sidecar within 2 s, a late reader starts from the weights in force, junk is skipped, and a
reader whose broker goes away keeps the weights it has."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mirror.bus.control import ControlReader, publish_change
from mirror.bus.kafka import KafkaBus
from mirror.config import BusSettings, KafkaConsumerSettings, TopicSettings
from mirror.rollout import WeightChange, Weights
from tests.broker import TansuBroker

pytestmark = pytest.mark.kafka

T0 = datetime.now(UTC) - timedelta(hours=1)


def change(weight: float, minutes: int, migration: str = "support") -> WeightChange:
    return WeightChange(
        migration, "sonnet", weight, 0.0, "cli:test", "", T0 + timedelta(minutes=minutes)
    )


def settings(url: str) -> BusSettings:
    tag = uuid.uuid4().hex[:8]
    topics = TopicSettings(
        calls=f"c{tag}.calls", pairs=f"c{tag}.pairs", dlq=f"c{tag}.dlq", control=f"c{tag}.ctl"
    )
    return BusSettings(url=url, topics=topics, partitions=1)


async def wait_for(check: object, timeout_s: float = 10.0) -> float:
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - started < timeout_s, "timed out"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_late_reader_starts_from_the_weights_in_force_whatever_offset_reset_says(
    kafka: TansuBroker,
) -> None:
    """`bus.consumer.offset_reset: latest` is for the runner's and the judge's groups; the
    control reader's fresh group still reads the topic from its start."""
    bus_settings = settings(kafka.url).model_copy(
        update={"consumer": KafkaConsumerSettings(offset_reset="latest")}
    )
    topic = bus_settings.topics.control
    writer = KafkaBus(bus_settings)
    await writer.start()
    try:
        await publish_change(writer, topic, change(0.05, 1))
        late, stop = Weights(), asyncio.Event()
        reading = asyncio.create_task(ControlReader(writer, topic, late).run(stop))
        try:
            await wait_for(lambda: late.current("support") is not None)
            assert [(c.migration, c.weight) for c in late.all()] == [("support", 0.05)]
        finally:
            stop.set()
            await reading
    finally:
        await writer.stop()


async def test_changes_reach_readers_early_and_late(kafka: TansuBroker) -> None:
    bus_settings = settings(kafka.url)
    topic = bus_settings.topics.control
    writer = KafkaBus(bus_settings)
    await writer.start()
    first, stop = Weights(), asyncio.Event()
    reading = asyncio.create_task(ControlReader(writer, topic, first).run(stop))
    try:
        await publish_change(writer, topic, change(0.05, 1))
        await wait_for(lambda: first.current("support") is not None)
        await publish_change(writer, topic, change(0.25, 2))
        await writer.send(topic, b"not a change", key=b"support")
        await publish_change(writer, topic, change(0.5, 3, migration="billing"))
        took = await wait_for(
            lambda: (held := first.current("support")) is not None and held.weight == 0.25
        )
        assert took < 2.0
        await wait_for(lambda: first.current("billing") is not None)

        late, late_stop = Weights(), asyncio.Event()
        reader = ControlReader(writer, topic, late)
        late_task = asyncio.create_task(reader.run(late_stop))
        await wait_for(lambda: len(late.all()) == 2)
        assert [(c.migration, c.weight) for c in late.all()] == [
            ("billing", 0.5),
            ("support", 0.25),
        ]
        await wait_for(lambda: reader.skipped == 1)
        late_stop.set()
        await late_task
    finally:
        stop.set()
        await reading
        await writer.stop()


async def test_a_reader_keeps_its_weights_while_the_broker_is_away(
    own_kafka: TansuBroker,
) -> None:
    bus_settings = settings(own_kafka.url)
    topic = bus_settings.topics.control
    bus = KafkaBus(bus_settings)
    await bus.start()
    weights, stop = Weights(), asyncio.Event()
    reading = asyncio.create_task(ControlReader(bus, topic, weights).run(stop))
    try:
        await publish_change(bus, topic, change(0.3, 1))
        await wait_for(lambda: weights.current("support") is not None)
        own_kafka.stop()
        await asyncio.sleep(3)
        held = weights.current("support")
        assert held is not None and held.weight == 0.3
        assert weights.serves("support", "user-1") in (None, "sonnet")  # still answers
        own_kafka.start()  # aiokafka cannot leave a group cleanly with no broker at all
    finally:
        stop.set()
        await asyncio.wait_for(reading, 30)
        await bus.stop()


class _StopCancelled:
    """A consumer whose stop raises the CancelledError of a task of its own, as aiokafka's
    can when its fetcher's task was cancelled while the brokers were away."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def start(self) -> None:
        self.log.append("start")

    async def getmany(self, timeout_ms: int, max_records: int) -> list[object]:
        from mirror.errors import BusError

        raise BusError("brokers away")

    async def stop(self) -> None:
        self.log.append("stop")
        raise asyncio.CancelledError


class _Bus:
    def __init__(self) -> None:
        self.log: list[str] = []

    def consumer(self, topics: list[str], **_: object) -> _StopCancelled:
        return _StopCancelled(self.log)


async def test_a_cancelled_error_from_the_consumers_own_stop_does_not_end_the_reader() -> None:
    bus, stop = _Bus(), asyncio.Event()
    reading = asyncio.create_task(ControlReader(bus, "shadow.control", Weights()).run(stop))  # type: ignore[arg-type]
    await wait_for(lambda: bus.log.count("stop") >= 2, timeout_s=10)  # it went on, and retried
    assert not reading.done()
    stop.set()
    await asyncio.wait_for(reading, 10)  # and stops when told


async def test_a_cancel_of_the_reader_itself_still_cancels_it() -> None:
    bus, stop = _Bus(), asyncio.Event()
    reading = asyncio.create_task(ControlReader(bus, "shadow.control", Weights()).run(stop))  # type: ignore[arg-type]
    await wait_for(lambda: "stop" in bus.log, timeout_s=10)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(reading, 10)
