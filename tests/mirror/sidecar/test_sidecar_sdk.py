"""The sidecar is invisible to the official SDKs, and captures each call exactly once.

Every scenario runs twice against the same deterministic fake provider: directly, and through
the sidecar. The SDK-visible results must be identical (bytes for non-streaming bodies, the
event sequence for streams, status and error bodies), the provider must receive the same
request bytes, and the sidecar must publish exactly one CapturedCall matching the answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from mirror.config import CaptureSettings
from mirror.events import Api, CapturedCall, ErrorKind, FinishReason
from simulation.providers import AnthropicFake, OpenAIFake, anthropic_app, openai_app, serve
from tests.sidecar import RunningSidecar, providers_for, run_sidecar

OPENAI_KEY = "sk-test-openai-4f9c2d7e1b"
ANTHROPIC_KEY = "sk-ant-test-8e3a5c1d9f"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@dataclass
class Env:
    openai_fake: OpenAIFake
    anthropic_fake: AnthropicFake
    openai_url: str
    anthropic_url: str
    sidecar: RunningSidecar


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    oai, ant = openai_app(), anthropic_app()
    with serve(oai) as o, serve(ant) as a:
        providers = providers_for(o.url, a.url)
        with run_sidecar(providers, capture=CaptureSettings()) as sidecar:
            yield Env(oai, ant, o.url, a.url, sidecar)


def openai_client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=OPENAI_KEY, max_retries=0)


def anthropic_client(base: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base, api_key=ANTHROPIC_KEY, max_retries=0)


def dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", warnings=False)
    return value


MESSAGES = [{"role": "user", "content": "What is the capital of Norway?"}]


def chat(c: openai.OpenAI) -> Any:
    raw = c.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    return raw.http_response.content


def chat_stream(c: openai.OpenAI) -> Any:
    stream = c.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
        extra_headers={"x-fake-ttft-ms": "40", "x-fake-split-utf8": "1"},
    )
    return [dump(chunk) for chunk in stream]


def chat_tools_stream(c: openai.OpenAI) -> Any:
    with c.chat.completions.stream(
        model="gpt-4o",
        messages=MESSAGES,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        extra_headers={"x-fake-tool": "get_weather"},
    ) as stream:
        events = [dump(e) for e in stream]
        return events, dump(stream.get_final_completion())


def responses(c: openai.OpenAI) -> Any:
    raw = c.responses.with_raw_response.create(model="gpt-5", input="Name three rivers.")
    return raw.http_response.content


def responses_stream(c: openai.OpenAI) -> Any:
    with c.responses.stream(model="gpt-5", input="Name three rivers.") as stream:
        return [dump(e) for e in stream]


def embeddings(c: openai.OpenAI) -> Any:
    raw = c.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a", "b"])
    return raw.http_response.content, dump(raw.parse())


def messages(c: anthropic.Anthropic) -> Any:
    raw = c.messages.with_raw_response.create(
        model="claude-sonnet-4-6",
        max_tokens=200,
        messages=MESSAGES,  # type: ignore[arg-type]
        system="Answer briefly.",
    )
    return raw.http_response.content


def messages_stream(c: anthropic.Anthropic) -> Any:
    with c.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=200,
        messages=MESSAGES,  # type: ignore[arg-type]
        tools=[ANTHROPIC_TOOL],
        extra_headers={"x-fake-tool": "1", "x-fake-ttft-ms": "40"},  # type: ignore[list-item]
    ) as stream:
        events = [dump(e) for e in stream]
        return events, dump(stream.get_final_message())


@dataclass(frozen=True)
class Scenario:
    name: str
    provider: str
    api: Api
    run: Callable[[Any], Any]
    stream: bool
    ttft_ms: float | None = None  # the TTFT the scenario asks the fake for


SCENARIOS = [
    Scenario("chat", "openai", Api.OPENAI_CHAT, chat, False),
    Scenario("chat_stream", "openai", Api.OPENAI_CHAT, chat_stream, True, 40),
    Scenario("chat_tools_stream", "openai", Api.OPENAI_CHAT, chat_tools_stream, True),
    Scenario("responses", "openai", Api.OPENAI_RESPONSES, responses, False),
    Scenario("responses_stream", "openai", Api.OPENAI_RESPONSES, responses_stream, True),
    Scenario("embeddings", "openai", Api.OPENAI_EMBEDDINGS, embeddings, False),
    Scenario("messages", "anthropic", Api.ANTHROPIC_MESSAGES, messages, False),
    Scenario("messages_stream", "anthropic", Api.ANTHROPIC_MESSAGES, messages_stream, True, 40),
]


def client_for(env: Env, provider: str, via_sidecar: bool) -> Any:
    if provider == "openai":
        return openai_client(env.sidecar.url if via_sidecar else env.openai_url)
    return anthropic_client(env.sidecar.url if via_sidecar else env.anthropic_url)


def fake_of(env: Env, provider: str) -> OpenAIFake | AnthropicFake:
    return env.openai_fake if provider == "openai" else env.anthropic_fake


def new_calls(env: Env, before: int) -> list[CapturedCall]:
    env.sidecar.calls(expected=before + 1)
    time.sleep(0.05)  # a second, wrong, capture would show up here
    return env.sidecar.calls()[before:]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_same_answer_direct_and_via_sidecar(env: Env, scenario: Scenario) -> None:
    fake = fake_of(env, scenario.provider)
    with client_for(env, scenario.provider, via_sidecar=False) as direct:
        expected = scenario.run(direct)
    direct_request = fake.requests[-1]
    before = len(env.sidecar.calls())
    with client_for(env, scenario.provider, via_sidecar=True) as proxied:
        started = time.perf_counter()
        got = scenario.run(proxied)
        elapsed_ms = (time.perf_counter() - started) * 1000
    proxied_request = fake.requests[-1]

    assert got == expected
    # The provider saw the same request bytes and the same end-to-end headers.
    assert proxied_request.body == direct_request.body
    assert proxied_request.path == direct_request.path
    strip = {b"host", b"connection"}  # hop-by-hop: belongs to each connection
    assert sorted(h for h in proxied_request.headers if h[0] not in strip) == sorted(
        h for h in direct_request.headers if h[0] not in strip
    )

    (call,) = new_calls(env, before)
    assert call.api is scenario.api
    assert call.request == proxied_request.json()
    primary = call.primary
    assert primary.ok and primary.stream is scenario.stream
    assert primary.provider == scenario.provider
    assert 0 < primary.latency_ms <= elapsed_ms
    if scenario.stream:
        assert primary.ttft_ms is not None and primary.ttft_ms <= primary.latency_ms
    if scenario.ttft_ms is not None:
        assert primary.ttft_ms is not None and primary.ttft_ms >= scenario.ttft_ms
    for raw in env.sidecar.raw_records():
        assert OPENAI_KEY.encode() not in raw and ANTHROPIC_KEY.encode() not in raw


def test_captured_content_matches_the_sdk_view(env: Env) -> None:
    with openai_client(env.sidecar.url) as client:
        before = len(env.sidecar.calls())
        completion = client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            tools=[WEATHER_TOOL],  # type: ignore[list-item,arg-type]
            extra_headers={"x-fake-tool": "get_weather", "x-shadow-tenant": "acme"},
        )
    (call,) = new_calls(env, before)
    output, usage = call.primary.output, call.primary.usage
    assert output is not None and usage is not None and completion.usage is not None
    tool = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert output.tool_calls[0].name == tool.function.name == "get_weather"  # type: ignore[union-attr]
    assert output.tool_calls[0].arguments == tool.function.arguments  # type: ignore[union-attr]
    assert output.finish_reason is FinishReason.TOOL_CALLS
    assert usage.input_tokens == completion.usage.prompt_tokens
    assert usage.output_tokens == completion.usage.completion_tokens
    assert call.segment == {"tenant": "acme"}
    assert env.openai_fake.requests[-1].header("x-shadow-tenant") is None

    with anthropic_client(env.sidecar.url) as client:
        before = len(env.sidecar.calls())
        with client.messages.stream(
            model="claude-sonnet-4-6",
            max_tokens=100,
            messages=MESSAGES,  # type: ignore[arg-type]
            extra_headers={"x-fake-split-utf8": "1"},
        ) as stream:
            message = stream.get_final_message()
    (call,) = new_calls(env, before)
    assert call.primary.output is not None and call.primary.usage is not None
    assert call.primary.output.text == message.content[0].text  # type: ignore[union-attr]
    assert call.primary.usage.output_tokens == message.usage.output_tokens
    assert call.primary.model == message.model
    assert call.request_headers.get("anthropic-version")


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 529])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_errors_pass_through(env: Env, provider: str, status: int) -> None:
    path = "/v1/chat/completions" if provider == "openai" else "/v1/messages"
    headers = {"x-fake-status": str(status), "content-type": "application/json"}
    if provider == "openai":
        headers["authorization"] = f"Bearer {OPENAI_KEY}"
    else:
        headers |= {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
    body = b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}'
    direct_base = env.openai_url if provider == "openai" else env.anthropic_url
    with httpx2.Client() as client:
        direct = client.post(direct_base + path, content=body, headers=headers)
        before = len(env.sidecar.calls())
        proxied = client.post(env.sidecar.url + path, content=body, headers=headers)
    assert proxied.status_code == direct.status_code == status
    assert proxied.content == direct.content
    assert proxied.headers.get("retry-after") == direct.headers.get("retry-after")
    assert proxied.headers.get("content-type") == direct.headers.get("content-type")
    (call,) = new_calls(env, before)
    assert call.primary.status_code == status and call.primary.error is not None
    assert call.primary.error.kind is ErrorKind.HTTP


def test_sdk_errors_are_the_same_exceptions(env: Env) -> None:
    for base in (env.openai_url, env.sidecar.url):
        with openai_client(base) as client, pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,  # type: ignore[arg-type]
                extra_headers={"x-fake-status": "429", "x-fake-retry-after": "7"},
            )
        assert caught.value.response.headers["retry-after"] == "7"
    for base in (env.anthropic_url, env.sidecar.url):
        with anthropic_client(base) as client, pytest.raises(anthropic.APIStatusError) as err:
            client.messages.create(
                model="claude",
                max_tokens=10,
                messages=MESSAGES,  # type: ignore[arg-type]
                extra_headers={"x-fake-status": "529"},
            )
        assert err.value.status_code == 529


def test_gzip_bytes_pass_untouched(env: Env) -> None:
    body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "zip it"}]}'
    headers = {
        "authorization": f"Bearer {OPENAI_KEY}",
        "accept-encoding": "gzip",
        "content-type": "application/json",
    }
    raw: list[bytes] = []
    with httpx2.Client() as client:
        for base in (env.openai_url, env.sidecar.url):
            with client.stream(
                "POST", base + "/v1/chat/completions", content=body, headers=headers
            ) as response:
                assert response.headers["content-encoding"] == "gzip"
                raw.append(b"".join(response.iter_raw()))
    assert raw[0] == raw[1]
    assert raw[0][:2] == b"\x1f\x8b"


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\x00binary", b""])
def test_unparseable_bodies_pass_through_unchanged(env: Env, body: bytes) -> None:
    headers = {"authorization": f"Bearer {OPENAI_KEY}", "content-type": "application/json"}
    with httpx2.Client() as client:
        direct = client.post(env.openai_url + "/v1/chat/completions", content=body, headers=headers)
        proxied = client.post(
            env.sidecar.url + "/v1/chat/completions", content=body, headers=headers
        )
    assert env.openai_fake.requests[-1].body == body
    assert proxied.status_code == direct.status_code
    assert proxied.content == direct.content


def test_other_paths_pass_through(env: Env) -> None:
    with openai_client(env.sidecar.url) as client:
        before = len(env.sidecar.calls())
        models = client.models.list()
    assert models.data
    with anthropic_client(env.sidecar.url) as client:
        count = client.messages.count_tokens(model="claude", messages=MESSAGES)  # type: ignore[arg-type]
    assert count.input_tokens > 0
    time.sleep(0.05)
    assert len(env.sidecar.calls()) == before  # not API calls we capture


def test_provider_prefix_route_and_shadow_traffic_not_captured(env: Env) -> None:
    before = len(env.sidecar.calls())
    with anthropic_client(env.sidecar.url + "/anthropic") as client:
        client.messages.create(
            model="claude",
            max_tokens=10,
            messages=MESSAGES,  # type: ignore[arg-type]
            extra_headers={"x-shadowjudge-shadow": "runner"},
        )
    assert env.anthropic_fake.requests[-1].header("x-shadowjudge-shadow") is None
    time.sleep(0.05)
    assert len(env.sidecar.calls()) == before


async def async_openai_calls(client: openai.AsyncOpenAI) -> Any:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=MESSAGES,  # type: ignore[arg-type]
    )
    stream = await client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    chunks = [dump(c) async for c in stream]
    async with client.responses.stream(model="gpt-5", input="Name three rivers.") as events:
        response_events = [dump(e) async for e in events]
    embedding = await client.embeddings.create(
        model="text-embedding-3-small", input="a", encoding_format="float"
    )
    return raw.http_response.content, chunks, response_events, dump(embedding)


async def async_anthropic_calls(client: anthropic.AsyncAnthropic) -> Any:
    raw = await client.messages.with_raw_response.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        messages=MESSAGES,  # type: ignore[arg-type]
    )
    async with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=50,
        messages=MESSAGES,  # type: ignore[arg-type]
        tools=[ANTHROPIC_TOOL],
        extra_headers={"x-fake-tool": "1"},  # type: ignore[list-item]
    ) as stream:
        events = [dump(e) async for e in stream]
    return raw.http_response.content, events


async def test_async_clients_same_answers_and_one_capture_each(env: Env) -> None:
    results = []
    for base in (env.openai_url, env.sidecar.url):
        async with openai.AsyncOpenAI(
            base_url=f"{base}/v1", api_key=OPENAI_KEY, max_retries=0
        ) as client:
            results.append(await async_openai_calls(client))
    for base in (env.anthropic_url, env.sidecar.url):
        async with anthropic.AsyncAnthropic(
            base_url=base, api_key=ANTHROPIC_KEY, max_retries=0
        ) as client:
            results.append(await async_anthropic_calls(client))
    assert results[0] == results[1]
    assert results[2] == results[3]
    # 4 OpenAI calls and 2 Anthropic calls went through the sidecar: 6 captures.
    calls = env.sidecar.calls()
    apis = [c.api for c in calls[-6:]]
    assert apis == [
        Api.OPENAI_CHAT,
        Api.OPENAI_CHAT,
        Api.OPENAI_RESPONSES,
        Api.OPENAI_EMBEDDINGS,
        Api.ANTHROPIC_MESSAGES,
        Api.ANTHROPIC_MESSAGES,
    ]
    embedding = calls[-3].primary.output
    assert embedding is not None and embedding.embeddings is not None
    assert embedding.embeddings.encoding == "float" and embedding.embeddings.count == 1
