"""Waiting out a bus (or a store) that is away: delivery with retry, and start-up with retry.

Work already done is not thrown away because a broker restarts: these loops retry while the
error says it is `retriable`, and let every other error through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from mirror.bus.base import Bus, Message
from mirror.errors import MirrorError

log = logging.getLogger(__name__)

T = TypeVar("T")


async def deliver(
    bus: Bus,
    messages: Sequence[Message],
    on_retry: Callable[[Exception], None] | None = None,
    *,
    stop: asyncio.Event | None = None,
    persist: bool = False,
) -> bool:
    """Send and wait for the bus's acknowledgement of every message, retrying with backoff while
    the error is `retriable` (work already done is not thrown away because a broker restarts).

    With `persist`, every bus error is retried, retriable or not: for dead letters, which have
    nowhere else to go; the caller keeps the record's partition from committing past it
    meanwhile, and an operator sees the warnings. Returns True once every message was
    acknowledged, False when `stop` was set first. A non-retriable error without `persist`
    raises, for the caller to decide (the runner dead-letters the record).
    """
    delay = 0.2
    while True:
        try:
            deliveries = [
                await bus.send(m.topic, m.value, key=m.key, headers=m.headers) for m in messages
            ]
            if len(deliveries) == 1:  # most records: one pair, no gathering future for it
                await deliveries[0]
            else:
                await asyncio.gather(*deliveries)
            return True
        except MirrorError as exc:
            if not (exc.retriable or persist):
                raise
            if on_retry is not None:
                on_retry(exc)
            log.warning("bus send failed (%s); retrying in %.1fs", exc, delay)
        if stop is None:
            await asyncio.sleep(delay)
        else:
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            if stop.is_set():
                return False
        delay = min(delay * 2, 10.0)


async def until_stopped(
    attempt: Callable[[], Awaitable[T]],
    stop: asyncio.Event,
    what: str,
    *,
    on_error: Callable[[Exception], None] | None = None,
) -> T | None:
    """`attempt()` retried with backoff while it raises an error flagged `retriable` (a broker
    or a store still away at start); None if `stop` is set first. Other errors propagate.
    Each retriable failure is told to `on_error` (health reporting)."""
    delay = 0.2
    while not stop.is_set():
        try:
            return await attempt()
        except Exception as exc:
            if not getattr(exc, "retriable", False):
                raise
            if on_error is not None:
                on_error(exc)
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
