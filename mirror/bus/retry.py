"""Waiting out a bus (or a store) that is away: delivery with retry, and start-up with retry.

Work already done is not thrown away because a broker restarts: these loops retry while the
error says it is `retriable`, and let every other error through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from mirror.bus.base import Bus, Message
from mirror.errors import MirrorError

log = logging.getLogger(__name__)

T = TypeVar("T")


async def deliver(bus: Bus, messages: Sequence[Message], on_retry: Any = None) -> None:
    """Send and wait for the bus's acknowledgement of every message, retrying while the bus
    is away (work already done is not thrown away because a broker restarts)."""
    delay = 0.2
    while True:
        try:
            deliveries = [
                await bus.send(m.topic, m.value, key=m.key, headers=m.headers) for m in messages
            ]
            await asyncio.gather(*deliveries)
            return
        except MirrorError as exc:
            if not exc.retriable:
                raise
            if on_retry is not None:
                on_retry(exc)
            log.warning("bus send failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def until_stopped(
    attempt: Callable[[], Awaitable[T]], stop: asyncio.Event, what: str
) -> T | None:
    """`attempt()` retried with backoff while it raises an error flagged `retriable` (a broker
    or a store still away at start); None if `stop` is set first. Other errors propagate."""
    delay = 0.2
    while not stop.is_set():
        try:
            return await attempt()
        except Exception as exc:
            if not getattr(exc, "retriable", False):
                raise
            log.warning("%s unavailable (%s); retrying in %.1fs", what, exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 10.0)
    return None


async def start_with_retry(bus: Bus, stop: asyncio.Event, what: str) -> bool:
    """Start `bus`, retrying while the brokers are away; False if `stop` came first."""

    async def start() -> bool:
        await bus.start()
        return True

    return await until_stopped(start, stop, f"{what}: bus") is not None
