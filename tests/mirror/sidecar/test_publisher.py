"""The publisher: bounded, never raising into the live path, exact loss accounting."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mirror.bus.kafka import KafkaBus
from mirror.bus.memory import MemoryBus
from mirror.config import BusSettings, CaptureSettings
from mirror.events import Api, parse_captured_call
from mirror.sidecar.capture import Exchange, new_exchange
from mirror.sidecar.metrics import SidecarMetrics
from mirror.sidecar.publisher import Publisher
from tests.broker import TansuBroker


def make_exchange(i: int = 0) -> Exchange:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]})
    ex = new_exchange(Api.OPENAI_CHAT, "openai", [], body.encode())
    ex.status = 200
    ex.response_headers = [(b"content-type", b"application/json")]
    answer = {"model": "m", "choices": [{"index": 0, "message": {"content": f"a{i}"}}]}
    ex.chunks = [json.dumps(answer).encode()]
    ex.chunk_times = [ex.started]
    ex.ended = ex.started + 0.001
    return ex


def value(metrics: SidecarMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels or None)
    return found or 0.0


async def wait_until(condition, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_full_queue_drops_and_counts() -> None:
    bus = MemoryBus(capacity=3)  # nobody consumes: the bus fills, then the queue
    await bus.start()
    metrics = SidecarMetrics()
    publisher = Publisher(bus, "calls", CaptureSettings(queue_max_events=5), metrics, own_bus=False)
    await publisher.start()
    for i in range(20):
        publisher.submit(make_exchange(i))
    await wait_until(lambda: value(metrics, "shadowjudge_sidecar_captured_total") == 3)
    await asyncio.sleep(0.05)
    # Submitted back to back: 5 fit the queue, 15 are dropped at once; of the 5, 3 filled the
    # bus, 1 waits in send and 1 in the queue.
    assert value(metrics, "shadowjudge_sidecar_dropped_total", reason="queue_full") == 15
    assert publisher.depth == 1
    await bus.stop()
    await publisher.stop(drain_timeout_s=0.5)
    total = value(metrics, "shadowjudge_sidecar_captured_total") + metrics.dropped_total()
    assert total == 20


async def test_capture_bug_costs_one_event_not_the_caller() -> None:
    bus = MemoryBus()
    await bus.start()
    metrics = SidecarMetrics()
    publisher = Publisher(bus, "calls", CaptureSettings(), metrics, own_bus=False)
    await publisher.start()
    broken = make_exchange()
    broken.request_headers = None  # type: ignore[assignment]
    publisher.submit(broken)
    publisher.submit(make_exchange(1))
    await wait_until(lambda: value(metrics, "shadowjudge_sidecar_captured_total") == 1)
    assert value(metrics, "shadowjudge_sidecar_dropped_total", reason="capture_error") == 1
    record = bus.topic("calls").log[0]
    call = parse_captured_call(record.value)
    assert record.key == call.call_id.encode()
    assert call.primary.output is not None and call.primary.output.text == "a1"
    await publisher.stop()


async def test_kafka_down_at_start_then_up(own_kafka: TansuBroker) -> None:
    own_kafka.stop()
    settings = BusSettings(url=own_kafka.url)
    metrics = SidecarMetrics()
    publisher = Publisher(
        KafkaBus(settings), settings.topics.calls, CaptureSettings(queue_max_events=10), metrics
    )
    await publisher.start()  # returns at once although the broker is away
    for i in range(15):
        publisher.submit(make_exchange(i))
    assert value(metrics, "shadowjudge_sidecar_dropped_total", reason="queue_full") == 5
    own_kafka.start()
    await wait_until(lambda: value(metrics, "shadowjudge_sidecar_captured_total") == 10, 30)
    assert publisher.connected
    await publisher.stop()
    assert metrics.dropped_total() == 5


async def test_captures_are_built_one_per_turn_of_the_loop() -> None:
    """After a burst the live path shares the loop with the publisher: between two of its
    turns at most one capture is built, even when the bus takes every record at once."""
    bus = MemoryBus()
    await bus.start()
    metrics = SidecarMetrics()
    publisher = Publisher(bus, "calls", CaptureSettings(), metrics, own_bus=False)
    await publisher.start()
    burst = 200
    for i in range(burst):
        publisher.submit(make_exchange(i))
    most = 0
    seen = 0.0
    while (done := value(metrics, "shadowjudge_sidecar_captured_total")) < burst:
        most = max(most, int(done - seen))
        seen = done
        await asyncio.sleep(0)  # what a request's callbacks get: one turn of the loop
    most = max(most, int(done - seen))
    assert most <= 1, f"{most} captures built in one turn of the loop"
    assert len(bus.topic("calls").log) == burst
    await publisher.stop()


async def test_a_capture_waits_until_the_app_has_read_its_answer() -> None:
    """A capture is built `publish_delay_ms` after the call ended, not in the loop's next turn,
    so its work does not compete with the app reading the answer's last bytes."""
    bus = MemoryBus()
    await bus.start()
    loop = asyncio.get_running_loop()
    sent_at: list[float] = []
    send = bus.send

    async def timed_send(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        sent_at.append(loop.time())
        return await send(*args, **kwargs)

    bus.send = timed_send  # type: ignore[method-assign]
    metrics = SidecarMetrics()
    publisher = Publisher(
        bus, "calls", CaptureSettings(publish_delay_ms=300), metrics, own_bus=False
    )
    await publisher.start()
    first = loop.time()
    publisher.submit(make_exchange(0))
    await asyncio.sleep(0.1)
    second = loop.time()
    publisher.submit(make_exchange(1))
    await asyncio.sleep(0.05)
    assert not sent_at, "built before its delay"
    await wait_until(lambda: value(metrics, "shadowjudge_sidecar_captured_total") == 2)
    assert sent_at[0] - first >= 0.3
    assert sent_at[1] - second >= 0.3
    await publisher.stop()


async def test_stopping_sends_what_is_queued_without_the_delay() -> None:
    bus = MemoryBus()
    await bus.start()
    metrics = SidecarMetrics()
    publisher = Publisher(
        bus, "calls", CaptureSettings(publish_delay_ms=1000), metrics, own_bus=False
    )
    await publisher.start()
    for i in range(3):
        publisher.submit(make_exchange(i))
    await asyncio.sleep(0.01)
    started = asyncio.get_running_loop().time()
    await publisher.stop(drain_timeout_s=5)
    assert asyncio.get_running_loop().time() - started < 1.0
    assert len(bus.topic("calls").log) == 3
    assert value(metrics, "shadowjudge_sidecar_captured_total") == 3
    assert metrics.dropped_total() == 0
