"""Provider limits (on a fake clock), the daily spend cap and the cost estimate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from mirror.events import Api, ProviderKind
from mirror.pricing import Price, PriceTable
from mirror.runner.limits import (
    DEFAULT_OUTPUT_TOKENS,
    ProviderLimiter,
    SpendCap,
    TokenBucket,
    estimate_cost,
    estimate_tokens,
)


class FakeClock:
    """Monotonic time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
        await asyncio.sleep(0)


async def _never(seconds: float) -> None:
    await asyncio.Event().wait()


# --- the token bucket --------------------------------------------------------------------------


async def test_bucket_gives_its_capacity_then_waits_for_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=50, clock=clock, sleep=clock.sleep)
    await bucket.take(50)
    assert clock.slept == 0
    await bucket.take(20)
    assert clock.slept == pytest.approx(2.0)


async def test_bucket_refills_only_to_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=50, clock=clock, sleep=clock.sleep)
    await bucket.take(50)
    clock.now += 3600
    assert bucket.level == 50


async def test_oversized_take_passes_when_full_and_leaves_debt() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=50, clock=clock, sleep=clock.sleep)
    await bucket.take(30)
    await bucket.take(150)  # more than the bucket holds: waits for a full bucket only
    assert clock.slept == pytest.approx(3.0)
    assert bucket.level == pytest.approx(-100)
    await bucket.take(10)  # pays back the debt first
    assert clock.slept == pytest.approx(3.0 + 11.0)


async def test_adjust_refunds_and_charges() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, capacity=100, clock=clock, sleep=clock.sleep)
    await bucket.take(100)
    bucket.adjust(-80)  # the call used 20, not 100
    await bucket.take(80)
    assert clock.slept == 0
    bucket.adjust(+40)  # a correction the other way: 40 tokens of debt
    assert bucket.level == pytest.approx(-40)
    bucket.adjust(-1000)  # refunds never overfill
    assert bucket.level == 100


async def test_bucket_serves_waiters_in_order() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=100, clock=clock, sleep=clock.sleep)
    await bucket.take(100)
    order: list[str] = []

    async def take(name: str, amount: float) -> None:
        await bucket.take(amount)
        order.append(name)

    await asyncio.gather(take("big", 100), take("small-1", 1), take("small-2", 1))
    assert order == ["big", "small-1", "small-2"]


def test_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, capacity=-1)


# --- the provider limiter ----------------------------------------------------------------------


async def test_no_limits_is_a_pass_through() -> None:
    limiter = ProviderLimiter(None, None, None)
    async with limiter.slot(10**9) as slot:
        slot.used(5)
    assert limiter.tokens_available is None


async def test_concurrency_is_bounded() -> None:
    limiter = ProviderLimiter(2, None, None)
    release = asyncio.Event()
    peak = 0

    async def work() -> None:
        nonlocal peak
        async with limiter.slot(1):
            peak = max(peak, limiter.active)
            await release.wait()

    tasks = [asyncio.create_task(work()) for _ in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert limiter.active == 2
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2 and limiter.active == 0


async def test_requests_per_second_paces_calls() -> None:
    clock = FakeClock()
    limiter = ProviderLimiter(None, 2.0, None, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        async with limiter.slot(1):
            pass
    # Two at once (one second's worth), then one every half second.
    assert clock.slept == pytest.approx(4.0)


async def test_tokens_per_minute_reserves_the_estimate() -> None:
    clock = FakeClock()
    limiter = ProviderLimiter(None, None, 6000, clock=clock, sleep=clock.sleep)  # 100 per second
    for _ in range(3):
        async with limiter.slot(3000):
            pass  # nothing reported: the estimate stands
    assert clock.slept == pytest.approx(30.0)


async def test_actual_usage_corrects_the_reservation() -> None:
    clock = FakeClock()
    limiter = ProviderLimiter(None, None, 6000, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        async with limiter.slot(3000) as slot:
            slot.used(100)
    assert clock.slept == 0
    assert limiter.tokens_available == pytest.approx(5700)
    async with limiter.slot(100) as slot:
        slot.used(9000)  # far more than estimated: the next calls wait for it
    assert limiter.tokens_available == pytest.approx(5700 - 9000)
    async with limiter.slot(100):
        pass
    assert clock.slept == pytest.approx((3300 + 100) / 100)


async def test_a_failing_call_frees_its_place() -> None:
    limiter = ProviderLimiter(1, None, None)
    with pytest.raises(RuntimeError):
        async with limiter.slot(1):
            raise RuntimeError("boom")
    async with asyncio.timeout(1):
        async with limiter.slot(1):
            pass


async def test_a_cancelled_waiter_frees_its_place() -> None:
    clock = FakeClock()
    limiter = ProviderLimiter(1, None, 60, clock=clock, sleep=_never)
    async with limiter.slot(60):
        pass  # the bucket is empty now
    waiter = asyncio.create_task(limiter.slot(10).__aenter__())
    for _ in range(3):
        await asyncio.sleep(0)
    assert not waiter.done()  # holds the concurrency place, waits for tokens
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    clock.now += 60  # the bucket is full again
    async with asyncio.timeout(1):
        async with limiter.slot(10):
            pass


async def test_real_time_rate_limit() -> None:
    limiter = ProviderLimiter(None, 20.0, None)  # a bucket of 20, refilled at 20 per second
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(24):
        async with limiter.slot(1):
            pass
    assert 0.17 <= loop.time() - started < 1.0


def test_limiter_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        ProviderLimiter(0, None, None)
    with pytest.raises(ValueError):
        ProviderLimiter(None, -1.0, None)


# --- the spend cap -----------------------------------------------------------------------------


class WallClock:
    def __init__(self, when: datetime) -> None:
        self.when = when

    def __call__(self) -> datetime:
        return self.when


def test_reservations_stop_at_the_cap_and_count_skips() -> None:
    cap = SpendCap(1.0)
    first = cap.try_reserve(0.6)
    assert first is not None
    assert cap.try_reserve(0.5) is None  # 0.6 reserved + 0.5 > 1.0
    second = cap.try_reserve(0.4)
    assert second is not None  # exactly at the cap is allowed
    assert cap.try_reserve(0.01) is None
    assert cap.skipped == 2 and cap.skipped_total == 2
    assert cap.reserved == pytest.approx(1.0) and cap.spent == 0
    assert cap.remaining == pytest.approx(0.0)


def test_settling_books_the_actual_cost() -> None:
    cap = SpendCap(1.0)
    reservation = cap.try_reserve(0.8)
    assert reservation is not None
    reservation.settle(0.1)
    assert cap.spent == pytest.approx(0.1) and cap.reserved == 0
    assert cap.try_reserve(0.85) is not None
    reservation.settle(5.0)  # settling twice does nothing
    assert cap.spent == pytest.approx(0.1)


def test_unknown_cost_settles_at_the_estimate() -> None:
    cap = SpendCap(None)
    reservation = cap.try_reserve(0.25)
    assert reservation is not None
    reservation.settle(None)
    assert cap.spent == pytest.approx(0.25)
    assert cap.remaining is None


def test_no_cap_never_skips() -> None:
    cap = SpendCap(None)
    for _ in range(100):
        assert cap.try_reserve(1000.0) is not None
    assert cap.skipped == 0


def test_zero_cap_lets_only_free_calls_through() -> None:
    cap = SpendCap(0.0)
    assert cap.try_reserve(0.000001) is None
    assert cap.try_reserve(0.0) is not None


def test_the_day_is_the_utc_day() -> None:
    clock = WallClock(datetime(2025, 3, 1, 23, 59, tzinfo=UTC))
    cap = SpendCap(1.0, clock=clock)
    late = cap.try_reserve(0.9)
    assert late is not None
    done = cap.try_reserve(0.1)
    assert done is not None
    done.settle(0.1)
    assert cap.try_reserve(0.5) is None
    clock.when = datetime(2025, 3, 2, 0, 1, tzinfo=UTC)
    assert cap.spent == 0 and cap.reserved == 0 and cap.skipped == 0
    assert cap.status().day.isoformat() == "2025-03-02"
    late.settle(0.9)  # yesterday's call books to yesterday
    assert cap.spent == 0
    assert cap.try_reserve(1.0) is not None
    assert cap.skipped_total == 1


def test_day_boundary_follows_utc_not_local_time() -> None:
    plus_two = timezone(timedelta(hours=2))
    clock = WallClock(datetime(2025, 3, 2, 1, 0, tzinfo=plus_two))  # 23:00 UTC on 1 March
    cap = SpendCap(1.0, clock=clock)
    assert cap.status().day.isoformat() == "2025-03-01"


def test_cap_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        SpendCap(-1.0)
    with pytest.raises(ValueError):
        SpendCap(1.0).try_reserve(-0.1)


# --- estimates ---------------------------------------------------------------------------------


CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 396}]}


def test_input_tokens_from_the_request_size() -> None:
    size = len(orjson.dumps(CHAT))
    estimate = estimate_tokens(CHAT, Api.OPENAI_CHAT)
    assert estimate.input_tokens == -(-size // 4)
    assert estimate.output_tokens == DEFAULT_OUTPUT_TOKENS
    assert estimate.total == estimate.input_tokens + DEFAULT_OUTPUT_TOKENS


@pytest.mark.parametrize(
    ("field", "api"),
    [
        ("max_tokens", Api.ANTHROPIC_MESSAGES),
        ("max_tokens", Api.OPENAI_CHAT),
        ("max_completion_tokens", Api.OPENAI_CHAT),
        ("max_output_tokens", Api.OPENAI_RESPONSES),
    ],
)
def test_output_tokens_from_the_request_limit(field: str, api: Api) -> None:
    assert estimate_tokens({**CHAT, field: 77}, api).output_tokens == 77


def test_embeddings_have_no_output_and_defaults_are_configurable() -> None:
    body = {"model": "text-embedding-3-small", "input": ["a", "b"]}
    assert estimate_tokens(body, Api.OPENAI_EMBEDDINGS).output_tokens == 0
    assert estimate_tokens(CHAT, Api.OPENAI_CHAT, default_output_tokens=5).output_tokens == 5


def test_estimate_cost_prices_the_estimate() -> None:
    prices = PriceTable({"my-model": Price(input=1.0, output=10.0)})
    body = {**CHAT, "model": "my-model", "max_tokens": 1000}
    tokens = estimate_tokens(body, Api.OPENAI_CHAT)
    expected = (tokens.input_tokens * 1.0 + 1000 * 10.0) / 1_000_000
    cost = estimate_cost(prices, None, ProviderKind.OPENAI, body, Api.OPENAI_CHAT)
    assert cost == pytest.approx(expected)
    by_name = estimate_cost(prices, "my-model", ProviderKind.ANTHROPIC, CHAT, Api.OPENAI_CHAT)
    assert by_name is not None and by_name > 0
    unknown = estimate_cost(prices, "no-such-model", ProviderKind.OPENAI, CHAT, Api.OPENAI_CHAT)
    assert unknown is None
