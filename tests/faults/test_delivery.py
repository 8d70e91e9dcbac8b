"""Every record has an outcome when the bus refuses for good.

The runner's pairs for one call are refused permanently (as a broker refuses a message over its
limit, or answers with an error it does not call retriable); the record goes to the DLQ with
its reason instead of dying in its task. The DLQ itself fails a few times first: the dead letter
is retried, and the partition's commit point waits for it rather than passing the record.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

from mirror.bus.base import Headers
from mirror.bus.dlq import parse_dead_letter
from mirror.bus.memory import MemoryBus
from mirror.config import ProviderKind, ProviderSettings, TopicSettings
from mirror.errors import BusError
from mirror.events import dump_event, parse_shadow_pair
from mirror.migrations import MigrationSettings, RunnerSettings
from mirror.pricing import PriceTable
from mirror.runner.caller import ArmCaller
from mirror.runner.worker import Runner
from simulation.providers import Served, openai_app, serve
from tests.faults.harness import captured, eventually

pytestmark = pytest.mark.faults

TOPICS = TopicSettings()
GROUP = "shadowjudge-runner"


class RefusingBus(MemoryBus):
    """A memory bus whose sends of one call's pairs fail for good, and whose DLQ fails the
    first `dlq_failures` sends."""

    def __init__(self, refused_key: bytes, dlq_failures: int) -> None:
        super().__init__()
        self.refused_key = refused_key
        self.dlq_failures = dlq_failures
        self.dlq_attempts = 0

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()
    ) -> asyncio.Future[Any]:
        if topic == TOPICS.pairs and key == self.refused_key:
            refused = BusError("kafka send failed: MessageSizeTooLargeError: over the limit")
            refused.retriable = False  # as `bus_error` translates aiokafka's
            raise refused
        if topic == TOPICS.dlq:
            self.dlq_attempts += 1
            if self.dlq_attempts <= self.dlq_failures:
                error = BusError("kafka delivery failed: UnknownServerError")
                error.retriable = False
                raise error
        return await super().send(topic, value, key=key, headers=headers)


@pytest.fixture(scope="module")
def fake() -> Iterator[Served]:
    with serve(openai_app()) as served:
        yield served


async def test_refused_pairs_are_dead_lettered_and_the_dlq_is_retried(fake: Served) -> None:
    os.environ["SJ_FAULTS_KEY"] = "sk-faults"
    calls = [captured(i) for i in range(5)]
    refused = calls[2]
    bus = RefusingBus(refused.call_id.encode(), dlq_failures=3)
    await bus.start()
    for call in calls:
        await bus.send(TOPICS.calls, dump_event(call), key=call.call_id.encode())
    runner = Runner(
        bus=bus,
        topics=TOPICS,
        migrations=[
            MigrationSettings.model_validate(
                {"name": "m", "arms": [{"name": "a", "provider": "openai", "model": "gpt-4o"}]}
            )
        ],
        providers={
            "openai": ProviderSettings(
                kind=ProviderKind.OPENAI, base_url=fake.url, api_key_env="SJ_FAULTS_KEY"
            )
        },
        prices=PriceTable(),
        settings=RunnerSettings(max_in_flight=8),
        caller=ArmCaller(max_attempts=1),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    committed: list[int] = []

    async def all_committed() -> bool:
        assert not task.done(), task  # no task dies, and the runner does not stop
        point = bus.topic(TOPICS.calls).committed.get(GROUP, 0)
        committed.append(point)
        return point == len(calls)

    await eventually(all_committed, 30, "every record to have an outcome")
    stop.set()
    await asyncio.wait_for(task, 10)
    await runner.close()

    # While the dead letter was failing, the commit point never passed the refused record.
    assert all(point <= 2 or point == len(calls) for point in committed)
    assert bus.dlq_attempts == 4
    (letter,) = [parse_dead_letter(r) for r in bus.topic(TOPICS.dlq).log]
    assert letter.kind == "delivery" and "MessageSizeTooLargeError" in letter.reason
    assert letter.source_offset == 2 and letter.key == refused.call_id.encode()
    pairs = [parse_shadow_pair(r.value) for r in bus.topic(TOPICS.pairs).log]
    assert sorted(p.call.call_id for p in pairs) == sorted(
        c.call_id for c in calls if c is not refused
    )
    metric = runner.metrics.registry.get_sample_value
    assert metric("shadowjudge_runner_dead_letters_total", {"kind": "delivery"}) == 1
    ok = {"migration": "m", "arm": "a", "outcome": "ok"}
    assert metric("shadowjudge_runner_pairs_total", ok) == len(calls) - 1  # after delivery only
