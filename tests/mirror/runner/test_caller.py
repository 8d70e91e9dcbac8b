"""The runner's arm caller against the fake providers: every API, credentials, retries, errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest

from mirror.config import ProviderSettings
from mirror.events import SHADOW_TRAFFIC_HEADER, Api, ErrorKind, FinishReason, ProviderKind
from mirror.runner.caller import ArmCaller, request_headers, retry_after_seconds
from simulation.providers import (
    AnthropicFake,
    OpenAIFake,
    anthropic_app,
    fail_first,
    openai_app,
    serve,
)
from tests.broker import free_port

OPENAI_KEY = "sk-test-caller-1f2e3d4c"
ANTHROPIC_KEY = "sk-ant-test-caller-9a8b7c"
OPENAI_ENV = "SJ_TEST_CALLER_OPENAI_KEY"
ANTHROPIC_ENV = "SJ_TEST_CALLER_ANTHROPIC_KEY"
PROMPT = "hello from the runner"


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPENAI_ENV, OPENAI_KEY)
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)


@pytest.fixture(scope="module")
def oai_app() -> OpenAIFake:
    return openai_app(api_key=OPENAI_KEY)


@pytest.fixture(scope="module")
def ant_app() -> AnthropicFake:
    return anthropic_app(api_key=ANTHROPIC_KEY)


@pytest.fixture(scope="module")
def oai(oai_app: OpenAIFake) -> Iterator[ProviderSettings]:
    with serve(oai_app) as served:
        yield _openai(served.url)


@pytest.fixture(scope="module")
def ant(ant_app: AnthropicFake) -> Iterator[ProviderSettings]:
    with serve(ant_app) as served:
        yield _anthropic(served.url)


@pytest.fixture
async def caller() -> AsyncIterator[ArmCaller]:
    async with ArmCaller(backoff_base_s=0.01, backoff_max_s=0.5) as made:
        yield made


def _openai(url: str) -> ProviderSettings:
    return ProviderSettings(kind=ProviderKind.OPENAI, base_url=url, api_key_env=OPENAI_ENV)


def _anthropic(url: str) -> ProviderSettings:
    return ProviderSettings(kind=ProviderKind.ANTHROPIC, base_url=url, api_key_env=ANTHROPIC_ENV)


def _body(api: Api, stream: bool = False) -> dict[str, Any]:
    if api is Api.OPENAI_EMBEDDINGS:
        return {"model": "text-embedding-3-small", "input": [PROMPT, "second"]}
    if api is Api.OPENAI_RESPONSES:
        body: dict[str, Any] = {"model": "gpt-4o", "input": PROMPT}
    elif api is Api.ANTHROPIC_MESSAGES:
        body = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 200,
            "messages": [{"role": "user", "content": PROMPT}],
        }
    else:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}]}
        if stream:
            body["stream_options"] = {"include_usage": True}
    if stream:
        body["stream"] = True
    return body


CASES = [
    (Api.OPENAI_CHAT, False),
    (Api.OPENAI_CHAT, True),
    (Api.OPENAI_RESPONSES, False),
    (Api.OPENAI_RESPONSES, True),
    (Api.OPENAI_EMBEDDINGS, False),
    (Api.ANTHROPIC_MESSAGES, False),
    (Api.ANTHROPIC_MESSAGES, True),
]


@pytest.mark.parametrize(("api", "stream"), CASES, ids=[f"{a.value}-{s}" for a, s in CASES])
async def test_every_api_plain_and_streamed(
    api: Api,
    stream: bool,
    caller: ArmCaller,
    oai: ProviderSettings,
    ant: ProviderSettings,
    oai_app: OpenAIFake,
    ant_app: AnthropicFake,
) -> None:
    anthropic = api is Api.ANTHROPIC_MESSAGES
    provider, app = (ant, ant_app) if anthropic else (oai, oai_app)
    body = _body(api, stream)
    result = await caller.call(
        api=api, provider_name="fake", provider=provider, body=body, replay_headers={}
    )
    assert result.ok, result.error
    assert result.status_code == 200 and result.stream is stream
    assert result.provider == "fake" and result.model
    assert result.usage is not None and (result.usage.input_tokens or 0) > 0
    assert result.output is not None
    if api is Api.OPENAI_EMBEDDINGS:
        assert result.output.embeddings is not None and result.output.embeddings.count == 2
    else:
        assert result.output.text.startswith(f"Echo: {PROMPT}")
        assert result.output.finish_reason is FinishReason.STOP
    assert (result.ttft_ms is not None) is stream
    seen = app.requests[-1]
    assert seen.json() == body
    assert (
        seen.path
        == {
            Api.OPENAI_CHAT: "/v1/chat/completions",
            Api.OPENAI_RESPONSES: "/v1/responses",
            Api.OPENAI_EMBEDDINGS: "/v1/embeddings",
            Api.ANTHROPIC_MESSAGES: "/v1/messages",
        }[api]
    )
    assert seen.header(SHADOW_TRAFFIC_HEADER) == "runner"
    assert seen.header("content-type") == "application/json"
    assert seen.header("accept-encoding") == "gzip"


async def test_openai_credentials_and_betas(
    caller: ArmCaller, oai: ProviderSettings, oai_app: OpenAIFake
) -> None:
    replay = {"openai-beta": "assistants=v2", "anthropic-version": "2023-06-01"}
    result = await caller.call(
        api=Api.OPENAI_CHAT,
        provider_name="openai",
        provider=oai,
        body=_body(Api.OPENAI_CHAT),
        replay_headers=replay,
    )
    assert result.ok
    seen = oai_app.requests[-1]
    assert seen.header("authorization") == f"Bearer {OPENAI_KEY}"
    assert seen.header("x-api-key") is None
    assert seen.header("openai-beta") == "assistants=v2"
    assert seen.header("anthropic-version") is None  # not an Anthropic provider


async def test_anthropic_credentials_version_and_betas(
    caller: ArmCaller, ant: ProviderSettings, ant_app: AnthropicFake
) -> None:
    body = _body(Api.ANTHROPIC_MESSAGES)
    await caller.call(
        api=Api.ANTHROPIC_MESSAGES, provider_name="a", provider=ant, body=body, replay_headers={}
    )
    seen = ant_app.requests[-1]
    assert seen.header("x-api-key") == ANTHROPIC_KEY
    assert seen.header("authorization") is None
    assert seen.header("anthropic-version") == "2023-06-01"
    replay = {"Anthropic-Version": "2024-01-01", "anthropic-beta": "tools-2024", "openai-beta": "x"}
    result = await caller.call(
        api=Api.ANTHROPIC_MESSAGES,
        provider_name="a",
        provider=ant,
        body=body,
        replay_headers=replay,
    )
    assert result.ok
    seen = ant_app.requests[-1]
    assert seen.header("anthropic-version") == "2024-01-01"
    assert seen.header("anthropic-beta") == "tools-2024"
    assert seen.header("openai-beta") is None


async def test_wrong_key_is_an_http_error_not_retried(
    caller: ArmCaller, oai: ProviderSettings, oai_app: OpenAIFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OPENAI_ENV, "sk-wrong-0000")
    before = len(oai_app.requests)
    result = await caller.call(
        api=Api.OPENAI_CHAT,
        provider_name="openai",
        provider=oai,
        body=_body(Api.OPENAI_CHAT),
        replay_headers={},
    )
    assert result.status_code == 401 and result.error is not None
    assert result.error.kind is ErrorKind.HTTP and "Incorrect API key" in result.error.message
    assert OPENAI_KEY not in result.error.message
    assert len(oai_app.requests) == before + 1


async def test_missing_key_is_skipped_without_a_request(
    caller: ArmCaller, oai: ProviderSettings, oai_app: OpenAIFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(OPENAI_ENV)
    before = len(oai_app.requests)
    result = await caller.call(
        api=Api.OPENAI_CHAT,
        provider_name="openai",
        provider=oai,
        body=_body(Api.OPENAI_CHAT),
        replay_headers={},
    )
    assert result.error is not None and result.error.kind is ErrorKind.SKIPPED
    assert OPENAI_ENV in result.error.message and "'openai'" in result.error.message
    assert result.model == "gpt-4o" and result.status_code is None
    assert len(oai_app.requests) == before


async def test_429s_with_retry_after_then_success() -> None:
    app = openai_app(responder=fail_first(2, 429, retry_after="0.1"))
    with serve(app) as served:
        async with ArmCaller(backoff_base_s=0.01) as caller:
            started = time.perf_counter()
            result = await caller.call(
                api=Api.OPENAI_CHAT,
                provider_name="openai",
                provider=_openai(served.url),
                body=_body(Api.OPENAI_CHAT),
                replay_headers={},
            )
            elapsed = time.perf_counter() - started
    assert result.ok and result.status_code == 200
    assert len(app.requests) == 3
    assert elapsed >= 0.2
    assert result.latency_ms < 200  # the last attempt's own latency, not the whole wait


async def test_anthropic_overloaded_529_is_retried() -> None:
    app = anthropic_app(responder=fail_first(1, 529))
    with serve(app) as served:
        async with ArmCaller(backoff_base_s=0.01) as caller:
            result = await caller.call(
                api=Api.ANTHROPIC_MESSAGES,
                provider_name="anthropic",
                provider=_anthropic(served.url),
                body=_body(Api.ANTHROPIC_MESSAGES, stream=True),
                replay_headers={},
            )
    assert result.ok and result.stream
    assert len(app.requests) == 2


async def test_400_is_not_retried(
    caller: ArmCaller, oai: ProviderSettings, oai_app: OpenAIFake
) -> None:
    before = len(oai_app.requests)
    result = await caller.call(
        api=Api.OPENAI_CHAT,
        provider_name="openai",
        provider=oai,
        body=_body(Api.OPENAI_CHAT),
        replay_headers={},
        extra_headers={"x-fake-status": "400"},
    )
    assert result.status_code == 400
    assert result.error is not None and result.error.kind is ErrorKind.HTTP
    assert len(oai_app.requests) == before + 1


async def test_every_attempt_failing_is_an_error_result(
    oai: ProviderSettings, oai_app: OpenAIFake
) -> None:
    before = len(oai_app.requests)
    async with ArmCaller(max_attempts=3, backoff_base_s=0.01) as caller:
        result = await caller.call(
            api=Api.OPENAI_CHAT,
            provider_name="openai",
            provider=oai,
            body=_body(Api.OPENAI_CHAT),
            replay_headers={},
            extra_headers={"x-fake-status": "503"},
        )
    assert result.status_code == 503
    assert result.error is not None and result.error.kind is ErrorKind.HTTP
    assert len(oai_app.requests) == before + 3


async def test_unreachable_provider(caller: ArmCaller) -> None:
    provider = _openai(f"http://127.0.0.1:{free_port()}")
    result = await caller.call(
        api=Api.OPENAI_CHAT,
        provider_name="gone",
        provider=provider,
        body=_body(Api.OPENAI_CHAT),
        replay_headers={},
    )
    assert result.status_code is None and not result.ok
    assert result.error is not None and result.error.kind is ErrorKind.UNREACHABLE
    assert "gone unreachable" in result.error.message


async def test_time_to_first_token_and_latency(
    caller: ArmCaller, ant: ProviderSettings, oai: ProviderSettings
) -> None:
    streamed = await caller.call(
        api=Api.ANTHROPIC_MESSAGES,
        provider_name="anthropic",
        provider=ant,
        body=_body(Api.ANTHROPIC_MESSAGES, stream=True),
        replay_headers={},
        extra_headers={"x-fake-ttft-ms": "150", "x-fake-latency-ms": "300"},
    )
    assert streamed.ok and streamed.ttft_ms is not None
    assert 150 <= streamed.ttft_ms < streamed.latency_ms
    assert streamed.latency_ms >= 300
    plain = await caller.call(
        api=Api.OPENAI_CHAT,
        provider_name="openai",
        provider=oai,
        body=_body(Api.OPENAI_CHAT),
        replay_headers={},
        extra_headers={"x-fake-latency-ms": "120"},
    )
    assert plain.ok and plain.ttft_ms is None and plain.latency_ms >= 120


async def test_timeout_is_an_error_and_not_retried(
    oai: ProviderSettings, oai_app: OpenAIFake
) -> None:
    before = len(oai_app.requests)
    async with ArmCaller(timeout_s=0.2, backoff_base_s=0.01) as caller:
        result = await caller.call(
            api=Api.OPENAI_CHAT,
            provider_name="openai",
            provider=oai,
            body=_body(Api.OPENAI_CHAT),
            replay_headers={},
            extra_headers={"x-fake-latency-ms": "2000"},
        )
    assert result.error is not None and result.error.kind is ErrorKind.TIMEOUT
    assert len(oai_app.requests) == before + 1


async def test_stream_broken_midway_is_recorded_not_retried(
    caller: ArmCaller, oai: ProviderSettings, oai_app: OpenAIFake
) -> None:
    before = len(oai_app.requests)
    result = await caller.call(
        api=Api.OPENAI_CHAT,
        provider_name="openai",
        provider=oai,
        body=_body(Api.OPENAI_CHAT, stream=True),
        replay_headers={},
        extra_headers={"x-fake-stream-error": "cut"},
    )
    assert result.status_code == 200 and result.stream
    assert result.error is not None and result.error.kind is ErrorKind.INCOMPLETE
    assert result.output is not None and result.output.text.startswith("Echo")
    assert len(oai_app.requests) == before + 1


async def test_big_answers_are_capped(oai: ProviderSettings) -> None:
    async with ArmCaller(max_body_bytes=4096) as caller:
        plain = await caller.call(
            api=Api.OPENAI_CHAT,
            provider_name="openai",
            provider=oai,
            body=_body(Api.OPENAI_CHAT),
            replay_headers={},
            extra_headers={"x-fake-size": "20000"},
        )
        streamed = await caller.call(
            api=Api.OPENAI_CHAT,
            provider_name="openai",
            provider=oai,
            body=_body(Api.OPENAI_CHAT, stream=True),
            replay_headers={},
            extra_headers={"x-fake-size": "20000"},
        )
    assert plain.truncated and plain.status_code == 200
    assert streamed.truncated and streamed.output is not None
    assert 0 < len(streamed.output.text) < 4096


async def test_gzip_answers_are_decoded(
    caller: ArmCaller, oai: ProviderSettings, oai_app: OpenAIFake
) -> None:
    result = await caller.call(
        api=Api.OPENAI_CHAT,
        provider_name="openai",
        provider=oai,
        body=_body(Api.OPENAI_CHAT),
        replay_headers={},
        extra_headers={"x-fake-split-utf8": "1"},
    )
    assert oai_app.requests[-1].header("accept-encoding") == "gzip"
    assert result.ok and result.output is not None and "日本語 🎉" in result.output.text


async def test_a_given_session_is_used_and_left_open(oai: ProviderSettings) -> None:
    async with aiohttp.ClientSession() as session:
        caller = ArmCaller(session)
        result = await caller.call(
            api=Api.OPENAI_CHAT,
            provider_name="openai",
            provider=oai,
            body=_body(Api.OPENAI_CHAT),
            replay_headers={},
        )
        await caller.close()
        assert result.ok and not session.closed


# --- an inline provider for what the fakes do not say -----------------------------------------


def _scripted(status: int, headers: list[tuple[bytes, bytes]]) -> Any:
    seen: list[float] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        seen.append(time.perf_counter())
        body = b'{"error": {"message": "scripted", "type": "server_error"}}'
        await send(
            {
                "type": "http.response.start",
                "status": status if len(seen) == 1 else 200,
                "headers": [(b"content-type", b"application/json"), *headers],
            }
        )
        if len(seen) > 1:
            body = b'{"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}'
        await send({"type": "http.response.body", "body": body})

    app.seen = seen  # type: ignore[attr-defined]
    return app


async def test_x_should_retry_false_stops_retries() -> None:
    app = _scripted(503, [(b"x-should-retry", b"false")])
    with serve(app) as served:
        async with ArmCaller(backoff_base_s=0.01) as caller:
            result = await caller.call(
                api=Api.OPENAI_CHAT,
                provider_name="p",
                provider=_openai(served.url),
                body=_body(Api.OPENAI_CHAT),
                replay_headers={},
            )
    assert result.status_code == 503 and len(app.seen) == 1


async def test_x_should_retry_true_and_retry_after_ms() -> None:
    app = _scripted(409, [(b"x-should-retry", b"true"), (b"retry-after-ms", b"150")])
    with serve(app) as served:
        async with ArmCaller(backoff_base_s=0.01) as caller:
            result = await caller.call(
                api=Api.OPENAI_CHAT,
                provider_name="p",
                provider=_openai(served.url),
                body=_body(Api.OPENAI_CHAT),
                replay_headers={},
            )
    assert result.ok and len(app.seen) == 2
    assert app.seen[1] - app.seen[0] >= 0.15


# --- pure pieces -------------------------------------------------------------------------------


def test_retry_after_forms() -> None:
    now = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds({"retry-after": "2.5"}) == 2.5
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after-ms": "soon", "retry-after": "9"}) == 9.0
    date = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now=now) == 7.0
    past = format_datetime(now - timedelta(seconds=7), usegmt=True)
    assert retry_after_seconds({"retry-after": past}, now=now) == 0.0
    assert retry_after_seconds({"retry-after": "whenever"}) is None
    assert retry_after_seconds({"retry-after": "-3"}) is None
    assert retry_after_seconds({}) is None


async def test_retry_after_is_capped_by_the_backoff_maximum() -> None:
    app = _scripted(429, [(b"retry-after", b"3600")])
    with serve(app) as served:
        async with ArmCaller(backoff_base_s=0.01, backoff_max_s=0.2) as caller:
            result = await caller.call(
                api=Api.OPENAI_CHAT,
                provider_name="p",
                provider=_openai(served.url),
                body=_body(Api.OPENAI_CHAT),
                replay_headers={},
            )
    assert result.ok and len(app.seen) == 2
    assert 0.2 <= app.seen[1] - app.seen[0] < 2.0


def test_extra_headers_cannot_replace_credentials_or_the_marker() -> None:
    headers = request_headers(
        ProviderKind.OPENAI,
        "sk-real",
        {},
        {"Authorization": "Bearer sk-other", SHADOW_TRAFFIC_HEADER: "no", "x-fake-tool": "1"},
    )
    assert headers["authorization"] == "Bearer sk-real"
    assert headers[SHADOW_TRAFFIC_HEADER] == "runner"
    assert headers["x-fake-tool"] == "1"
    keyless = request_headers(ProviderKind.OPENAI, None, {}, {"authorization": "Bearer leak"})
    assert "authorization" not in keyless
