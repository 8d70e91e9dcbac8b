"""The runner while the bus has not acknowledged its pairs: the calls go on, the commits wait.

A bus whose acknowledgements of `shadow.pairs` are held until the test lets them go, and a
fake provider on loopback: records whose pairs wait for their ack leave their place in
`max_in_flight` to the next records, are bounded on their own, and none of their offsets is
committed before the ack.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

from mirror.bus.base import Headers
from mirror.bus.memory import MemoryBus
from mirror.config import ProviderSettings, TopicSettings
from mirror.events import Api, ArmResult, CapturedCall, Output, ProviderKind, dump_event
from mirror.migrations import MigrationSettings, RunnerSettings
from mirror.pricing import PriceTable
from mirror.runner.caller import ArmCaller
from mirror.runner.worker import PUBLISHING_PER_IN_FLIGHT, Runner
from simulation.providers import OpenAIFake, openai_app, serve

TOPICS = TopicSettings()
GROUP = "shadowjudge-runner"


class HeldAcks(MemoryBus):
    """A memory bus that acknowledges `shadow.pairs` only when `release()` is called."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[asyncio.Future[Any]] = []

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()
    ) -> asyncio.Future[Any]:
        acked = await super().send(topic, value, key=key, headers=headers)
        if topic != TOPICS.pairs:
            return acked
        held: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting.append(held)
        return held

    def release(self) -> None:
        for future in self.waiting:
            if not future.done():
                future.set_result(None)
        self.waiting.clear()


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[OpenAIFake, ProviderSettings]]:
    os.environ["SJ_TEST_ACKS_KEY"] = "sk-acks-1234"
    app = openai_app()
    with serve(app) as served:
        yield (
            app,
            ProviderSettings(
                kind=ProviderKind.OPENAI, base_url=served.url, api_key_env="SJ_TEST_ACKS_KEY"
            ),
        )


def captured(i: int) -> bytes:
    return dump_event(
        CapturedCall(
            api=Api.OPENAI_CHAT,
            request={"model": "gpt-4o", "messages": [{"role": "user", "content": f"q {i}"}]},
            primary=ArmResult(
                provider="openai", model="gpt-4o", status_code=200, latency_ms=5.0,
                output=Output(text=f"a {i}"),
            ),
        )
    )  # fmt: skip


async def wait_for(condition: Any, what: str) -> None:
    for _ in range(250):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_records_waiting_for_acks_free_their_place_and_commit_only_after_the_ack(
    fake: tuple[OpenAIFake, ProviderSettings],
) -> None:
    app, provider = fake
    in_flight = 2
    held_at_most = in_flight * (1 + PUBLISHING_PER_IN_FLIGHT)
    records = held_at_most + 5
    bus = HeldAcks()
    await bus.start()
    for i in range(records):
        await bus.send(TOPICS.calls, captured(i))
    runner = Runner(
        bus=bus,
        topics=TOPICS,
        migrations=[
            MigrationSettings.model_validate(
                {"name": "m", "arms": [{"name": "a", "provider": "openai", "model": "gpt-4o"}]}
            )
        ],
        providers={"openai": provider},
        prices=PriceTable(),
        settings=RunnerSettings(max_in_flight=in_flight),
        caller=ArmCaller(max_attempts=1),
    )
    asked_before = len(app.requests)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    calls_log = bus.topic(TOPICS.calls)
    try:
        # No ack yet: more records than `max_in_flight` are called, up to the bound, and
        # nothing is committed.
        await wait_for(lambda: len(bus.waiting) >= held_at_most, "the held pairs")
        await asyncio.sleep(0.3)  # room for a (wrong) further fetch or commit
        assert len(app.requests) - asked_before == held_at_most
        assert len(bus.waiting) == held_at_most
        assert calls_log.committed.get(GROUP, 0) == 0
        # The acks come: everything is done and committed, the rest of the records too.
        while calls_log.committed.get(GROUP, 0) < records:
            bus.release()
            await asyncio.sleep(0.02)
        assert len(app.requests) - asked_before == records
    finally:
        bus.release()
        stop.set()
        await task
        await runner.close()
    assert len(bus.topic(TOPICS.pairs).log) == records
