"""A Kafka consumer's stop: aiokafka's own cancel coming out of it does not travel on.

aiokafka's `stop()` cancels its fetch task and then awaits it; with the brokers away that
task's `CancelledError` can come out of `stop()` (seen in CI, in the rollout control reader).
The runner and the judge stop their consumers when they leave: such a cancel must not look like
a cancel of them, and a real cancel of them must still go through.
"""

from __future__ import annotations

import asyncio

import pytest

from mirror.bus.kafka import KafkaConsumer


class _CancelsOnStop:
    def __init__(self) -> None:
        self.stopped = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def stop(self) -> None:
        self.stopped += 1
        self.entered.set()
        await self.release.wait()
        raise asyncio.CancelledError  # the fetch task's, not ours


def consumer_around(inner: _CancelsOnStop) -> KafkaConsumer:
    """A `KafkaConsumer` around the stand-in (no aiokafka consumer made, none left unclosed)."""
    consumer = KafkaConsumer.__new__(KafkaConsumer)
    consumer._consumer = inner  # type: ignore[assignment]
    return consumer


async def test_the_fetch_tasks_cancel_out_of_stop_is_dropped() -> None:
    inner = _CancelsOnStop()
    inner.release.set()
    await consumer_around(inner).stop()  # returns, as a stop that went well would
    assert inner.stopped == 1


async def test_a_cancel_of_the_stopping_task_still_cancels_it() -> None:
    inner = _CancelsOnStop()
    stopping = asyncio.create_task(consumer_around(inner).stop())
    await inner.entered.wait()
    stopping.cancel()  # ours, while aiokafka's stop is waiting
    inner.release.set()
    with pytest.raises(asyncio.CancelledError):
        await stopping
