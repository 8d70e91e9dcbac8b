"""The sidecar publishing to a real Kafka-protocol broker that dies and comes back."""

from __future__ import annotations

import asyncio
import time

import openai
from aiokafka.admin import AIOKafkaAdminClient

from mirror.bus.base import Record
from mirror.bus.kafka import KafkaBus, KafkaConsumer
from mirror.config import BusSettings, CaptureSettings, KafkaProducerSettings
from mirror.events import parse_captured_call
from simulation.providers import openai_app, serve
from tests.broker import TansuBroker
from tests.sidecar import RunningSidecar, providers_for, run_sidecar

PER_PHASE = 40


async def drain(
    consumer: KafkaConsumer, into: dict[str, bytes], until: int, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while len(into) < until and time.monotonic() < deadline:
        records: list[Record] = await consumer.getmany(timeout_ms=200, max_records=500)
        for record in records:
            into[parse_captured_call(record.value).call_id] = record.value


async def calls(client: openai.AsyncOpenAI, phase: str) -> None:
    answers = await asyncio.gather(
        *(
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"{phase} {i}"}]
            )
            for i in range(PER_PHASE)
        )
    )
    assert all(a.choices[0].message.content for a in answers)


async def topic_exists(bus: BusSettings, topic: str, timeout_s: float) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bus.bootstrap_servers)
    deadline = time.monotonic() + timeout_s
    await admin.start()
    try:
        while topic not in await admin.list_topics():
            assert time.monotonic() < deadline, f"{topic} was not created again"
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def accounted(sidecar: RunningSidecar) -> float:
    return sidecar.metric("shadowjudge_sidecar_captured_total") + sidecar.metrics.dropped_total()


async def settled(sidecar: RunningSidecar, events: int, timeout_s: float = 60) -> None:
    """Wait until `events` captures are accounted for (delivered or dropped)."""
    deadline = time.monotonic() + timeout_s
    # The counters belong to the sidecar's thread: polling is the way to watch them.
    while accounted(sidecar) < events and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


async def test_broker_stopped_mid_run(own_kafka: TansuBroker) -> None:
    bus = BusSettings(
        url=own_kafka.url,
        producer=KafkaProducerSettings(request_timeout_ms=3000, linger_ms=5),
    )
    fake = openai_app()
    received: dict[str, bytes] = {}
    with (
        serve(fake) as upstream,
        run_sidecar(
            providers_for(upstream.url, upstream.url),
            capture=CaptureSettings(queue_max_events=1000),
            bus_settings=bus,
            memory_bus=False,
        ) as sidecar,
    ):
        client = openai.AsyncOpenAI(base_url=sidecar.url + "/v1", api_key="sk-k", max_retries=0)
        consumer = KafkaBus(bus).consumer([bus.topics.calls], group="test-reader")
        await consumer.start()
        try:
            await calls(client, "before")
            await drain(consumer, received, PER_PHASE, 30)
            assert len(received) == PER_PHASE
        finally:
            await consumer.stop()
        try:
            own_kafka.stop()
            await calls(client, "during")  # every app call still succeeds
            await asyncio.sleep(5)  # past the producer's 3 s delivery timeout: events are lost
            own_kafka.start()

            # Everything sent while the broker was away is either delivered or counted lost.
            await settled(sidecar, 2 * PER_PHASE)
            # The broker came back empty, and the sidecar creates the topic again. The log is a
            # new one: a reader of the old one cannot tell a new log that has grown past its old
            # position from the old log going on (see mirror.bus.kafka), so a new reader reads
            # the new log from its start.
            await topic_exists(bus, bus.topics.calls, 30)
            consumer = KafkaBus(bus).consumer(
                [bus.topics.calls], group="test-reader-after", from_start=True
            )
            await consumer.start()
            # The publisher holds its sends until the topics check out again; under load that
            # can take longer than a delivery timeout, so wait until a probe goes through.
            probes = 0
            deadline = time.monotonic() + 60
            while not any(b'"probe ' in v for v in received.values()):
                assert time.monotonic() < deadline, "publishing never resumed"
                probes += 1
                await client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": f"probe {probes}"}]
                )
                await drain(consumer, received, len(received) + 1, 2)
            await calls(client, "after")
            await settled(sidecar, 3 * PER_PHASE + probes)
            captured = sidecar.metric("shadowjudge_sidecar_captured_total")
            await drain(consumer, received, int(captured), 60)
        finally:
            await consumer.stop()
            await client.close()
        dropped = sidecar.metrics.dropped_total()
        after = [v for v in received.values() if b'"after ' in v]
        assert len(after) == PER_PHASE, "publishing did not resume after the broker came back"
        assert dropped > 0
        # The drop counter equals the number of events lost, exactly.
        assert dropped == 3 * PER_PHASE + probes - len(received)
