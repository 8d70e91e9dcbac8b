"""Per-provider limits on the runner's calls, and the daily spend cap of a migration.

Limits wait, they do not fail: a call that would pass a provider's concurrency, request-rate or
token-rate limit waits for room. Waiting is the runner's backpressure — it holds a bounded
number of records in flight, so a slow provider slows the consumption of `shadow.calls` instead
of growing a queue. The spend cap is the opposite: a call that would pass the day's budget is
not made at all (the runner records it as skipped), because waiting for tomorrow is not useful.

Why not `aiolimiter`: its leaky bucket cannot take back or add tokens after the fact, and a
token-per-minute limit needs exactly that — a call reserves its *estimated* tokens before it is
made and is corrected by the *actual* usage afterwards. The bucket here is small, takes an
injectable clock and sleep (tests run on a fake clock), and serves waiters in arrival order.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any

import orjson

from mirror.events import Api, ProviderKind, Usage, utc_now
from mirror.pricing import PriceTable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: Output tokens assumed when the request sets no limit of its own.
DEFAULT_OUTPUT_TOKENS = 1024
#: The usual rule of thumb for English text; the request is measured in UTF-8 bytes of its JSON,
#: which over-counts (keys, punctuation, non-ASCII text), so estimates err on the high side.
CHARS_PER_TOKEN = 4
_OUTPUT_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_EPSILON = 1e-9


class TokenBucket:
    """A token bucket: refills continuously at `rate` per second, holds at most `capacity`.

    `take(n)` waits until the bucket holds `n` (or is full, when `n` is larger than the
    capacity — a single oversized request still passes, it just leaves the bucket in debt),
    then removes `n`. `adjust(delta)` corrects a past take: the level may go below zero, and
    later takes wait until the debt is paid back. Waiters are served first come, first served
    (one waits at a time behind a lock), so a large request is not starved by small ones.
    """

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not rate > 0 or not capacity > 0 or math.isinf(rate):
            raise ValueError(f"rate and capacity must be positive, got {rate!r}, {capacity!r}")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._level = capacity
        self._updated = clock()
        self._lock = asyncio.Lock()

    @property
    def level(self) -> float:
        """Tokens available now (negative while in debt)."""
        self._refill()
        return self._level

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(now - self._updated, 0.0)
        self._updated = now
        self._level = min(self.capacity, self._level + elapsed * self.rate)

    async def take(self, amount: float) -> None:
        if amount < 0:
            raise ValueError(f"cannot take a negative amount ({amount!r})")
        need = min(amount, self.capacity)
        async with self._lock:
            while True:
                self._refill()
                if self._level >= need - _EPSILON:
                    break
                await self._sleep((need - self._level) / self.rate)
            self._level -= amount

    def adjust(self, delta: float) -> None:
        """Take `delta` more tokens (negative: give them back), without waiting."""
        self._refill()
        self._level = min(self.capacity, self._level - delta)


class Slot:
    """A call's permission to run; report its actual token usage with `used()`."""

    def __init__(self, estimated_tokens: int) -> None:
        self.estimated_tokens = estimated_tokens
        self.actual_tokens: int | None = None

    def used(self, actual_tokens: int | None) -> None:
        """The tokens the call really used (None: unknown, the estimate stands)."""
        self.actual_tokens = actual_tokens


class ProviderLimiter:
    """Concurrency, requests per second and tokens per minute for one provider.

    Any of the three may be None (no such limit). Use::

        async with limiter.slot(estimated_tokens) as slot:
            result = await caller.call(...)
            slot.used(actual_tokens)

    A slot first waits for a concurrency place (a semaphore), then for a request token, then
    reserves the estimated tokens; on exit the token reservation is corrected by what `used()`
    reported (nothing reported: the estimate stands — a conservative choice, since a failed
    call may or may not have been counted by the provider) and the place is freed.
    The request bucket holds one second's worth of requests (at least one), the token bucket one
    minute's worth, matching how providers state their limits. Retries made inside a slot are
    not counted again: the slot is the runner's unit of work, a retry is the caller's business.
    """

    def __init__(
        self,
        concurrency: int | None,
        requests_per_s: float | None,
        tokens_per_min: float | None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if concurrency is not None and concurrency <= 0:
            raise ValueError(f"concurrency must be positive, got {concurrency!r}")
        self.concurrency = concurrency
        self._semaphore = asyncio.Semaphore(concurrency) if concurrency is not None else None
        self._requests = (
            TokenBucket(requests_per_s, max(requests_per_s, 1.0), clock=clock, sleep=sleep)
            if requests_per_s is not None
            else None
        )
        self._tokens = (
            TokenBucket(tokens_per_min / 60.0, tokens_per_min, clock=clock, sleep=sleep)
            if tokens_per_min is not None
            else None
        )
        self.active = 0

    @property
    def tokens_available(self) -> float | None:
        return None if self._tokens is None else self._tokens.level

    def slot(self, estimated_tokens: int) -> SlotContext:
        """`async with` it around one call (see the class)."""
        return SlotContext(self, Slot(max(int(estimated_tokens), 0)))

    async def _acquire(self, slot: Slot) -> None:
        if self._semaphore is not None:
            await self._semaphore.acquire()
        try:
            if self._requests is not None:
                await self._requests.take(1)
            if self._tokens is not None:
                await self._tokens.take(slot.estimated_tokens)
        except BaseException:  # cancelled while waiting: the place goes back
            if self._semaphore is not None:
                self._semaphore.release()
            raise
        self.active += 1

    def _release(self, slot: Slot) -> None:
        self.active -= 1
        try:
            if self._tokens is not None and slot.actual_tokens is not None:
                self._tokens.adjust(max(slot.actual_tokens, 0) - slot.estimated_tokens)
        finally:
            if self._semaphore is not None:
                self._semaphore.release()


class SlotContext:
    """`ProviderLimiter.slot`'s context: a class rather than an `asynccontextmanager`, whose
    generator and helper objects cost every call a few microseconds (issue 17)."""

    __slots__ = ("_limiter", "_slot")

    def __init__(self, limiter: ProviderLimiter, slot: Slot) -> None:
        self._limiter = limiter
        self._slot = slot

    async def __aenter__(self) -> Slot:
        await self._limiter._acquire(self._slot)
        return self._slot

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._limiter._release(self._slot)


# --- the spend cap -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Day:
    day: date
    spent: float = 0.0
    reserved: float = 0.0
    outstanding: int = 0
    skipped: int = 0


class Reservation:
    """Money set aside for one call; `settle()` it exactly once when the call is over."""

    def __init__(self, day: _Day, estimated_usd: float) -> None:
        self._day = day
        self.estimated_usd = estimated_usd
        self.settled = False

    def settle(self, actual_usd: float | None) -> None:
        """Book what the call cost (None: unknown, booked at the estimate).

        Pass 0.0 for a call that was never made or that the provider refused (nothing billed).
        Settling again does nothing, so a `finally:` may settle unconditionally.
        """
        if self.settled:
            return
        self.settled = True
        day = self._day
        day.outstanding -= 1
        day.reserved = 0.0 if day.outstanding == 0 else max(day.reserved - self.estimated_usd, 0)
        cost = self.estimated_usd if actual_usd is None or math.isnan(actual_usd) else actual_usd
        day.spent += max(cost, 0.0)


@dataclass(frozen=True, slots=True)
class SpendStatus:
    day: date
    cap_usd: float | None
    spent_usd: float
    reserved_usd: float
    skipped: int


class SpendCap:
    """A migration's daily budget for candidate calls, in US dollars; None means no cap.

    The day is the UTC calendar day: at 00:00 UTC the spend starts from zero. A call is let
    through when today's settled spend plus the outstanding reservations plus its own estimate
    stay within the cap; otherwise `try_reserve` returns None and counts a skip. A reservation
    belongs to the day it was made: one settled after midnight books to yesterday, so the
    calls in flight at midnight can push the new day's real spend slightly past what the
    ledger shows (by at most what those few calls cost).

    In-process only: each runner process enforces the cap on what *it* spent. With N runners
    sharing a migration the fleet may spend up to N times the cap; give each a share of the
    budget (cap / N), or — for one shared cap — keep the ledger in a shared store (a Redis
    counter or a ClickHouse query of today's costs), which this class does not do.
    """

    def __init__(self, daily_usd: float | None, *, clock: Callable[[], datetime] = utc_now) -> None:
        if daily_usd is not None and (math.isnan(daily_usd) or daily_usd < 0):
            raise ValueError(f"daily spend cap must be >= 0, got {daily_usd!r}")
        self.daily_usd = daily_usd
        self._clock = clock
        self._today = _Day(self._date())
        self.skipped_total = 0

    def _date(self) -> date:
        return self._clock().astimezone(UTC).date()

    def _current(self) -> _Day:
        today = self._date()
        if today != self._today.day:
            self._today = _Day(today)
        return self._today

    def try_reserve(self, estimated_usd: float) -> Reservation | None:
        """A reservation for a call estimated at `estimated_usd`, or None (skip it)."""
        if math.isnan(estimated_usd) or estimated_usd < 0:
            raise ValueError(f"estimated cost must be >= 0, got {estimated_usd!r}")
        day = self._current()
        if self.daily_usd is not None and (
            day.spent + day.reserved + estimated_usd > self.daily_usd + _EPSILON
        ):
            day.skipped += 1
            self.skipped_total += 1
            return None
        day.reserved += estimated_usd
        day.outstanding += 1
        return Reservation(day, estimated_usd)

    @property
    def spent(self) -> float:
        """Dollars settled today (UTC)."""
        return self._current().spent

    @property
    def reserved(self) -> float:
        """Dollars reserved today by calls still in flight."""
        return self._current().reserved

    @property
    def skipped(self) -> int:
        """Calls skipped today because the cap was reached."""
        return self._current().skipped

    @property
    def remaining(self) -> float | None:
        if self.daily_usd is None:
            return None
        day = self._current()
        return max(self.daily_usd - day.spent - day.reserved, 0.0)

    def status(self) -> SpendStatus:
        day = self._current()
        return SpendStatus(day.day, self.daily_usd, day.spent, day.reserved, day.skipped)


# --- estimates ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenEstimate:
    input_tokens: int
    output_tokens: int

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


def estimate_tokens(
    request_body: Mapping[str, Any],
    api: Api,
    *,
    default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
) -> TokenEstimate:
    """Tokens a request may use, before it is made; meant to err on the high side.

    Input: the JSON request's size in bytes / 4 (images sent inline as base64 are counted as
    text, which over-estimates them a lot). Output: the request's own limit (`max_tokens`,
    `max_completion_tokens`, `max_output_tokens`), else `default_output_tokens`; none for
    embeddings.
    """
    try:
        size = len(orjson.dumps(request_body))
    except TypeError:  # not plain JSON (orjson.JSONEncodeError is a TypeError)
        size = len(str(request_body).encode("utf-8", "replace"))
    input_tokens = -(-size // CHARS_PER_TOKEN)
    if api is Api.OPENAI_EMBEDDINGS:
        return TokenEstimate(input_tokens, 0)
    output_tokens = default_output_tokens
    for name in _OUTPUT_LIMITS:
        value = request_body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            output_tokens = value
            break
    return TokenEstimate(input_tokens, output_tokens)


def estimate_cost(
    prices: PriceTable,
    model: str | None,
    kind: ProviderKind,
    request_body: Mapping[str, Any],
    api: Api,
    *,
    default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    tokens: TokenEstimate | None = None,
) -> float | None:
    """Dollars a request may cost at most (roughly), or None when the model has no price.

    `model` defaults to the body's `model`. A model without a price cannot be held to a cap:
    configuration should refuse a capped migration whose arms have no price. `tokens`: the
    request's `estimate_tokens`, when the caller has it already.
    """
    name = model if model is not None else request_body.get("model")
    if tokens is None:
        tokens = estimate_tokens(request_body, api, default_output_tokens=default_output_tokens)
    usage = Usage(input_tokens=tokens.input_tokens, output_tokens=tokens.output_tokens)
    return prices.cost(name if isinstance(name, str) else None, usage, kind)
