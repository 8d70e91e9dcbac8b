"""In-process capture: the SDKs' own HTTP clients wrapped, same answers, one capture each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from mirror.bus.memory import MemoryBus
from mirror.config import BusSettings, CaptureSettings
from mirror.events import Api, CapturedCall, ErrorKind, parse_captured_call
from mirror.sidecar.transport import InProcessMirror
from simulation.providers import Served, anthropic_app, openai_app, serve

KEY = "sk-inprocess-7c1e9a3b5d"
MESSAGES: Any = [{"role": "user", "content": "Where is Bergen?"}]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[Served, Served]]:
    with serve(openai_app()) as o, serve(anthropic_app()) as a:
        yield o, a


@pytest.fixture
def mirror() -> Iterator[InProcessMirror]:
    running = InProcessMirror(CaptureSettings(), BusSettings(), bus=MemoryBus())
    yield running
    running.close()


def captured(mirror: InProcessMirror, expected: int) -> list[CapturedCall]:
    async def snapshot() -> list[bytes]:
        assert isinstance(mirror.bus, MemoryBus)
        return [r.value for r in mirror.bus.topic("shadow.calls").log]

    deadline = time.monotonic() + 10
    while True:
        raw = asyncio.run_coroutine_threadsafe(snapshot(), mirror.loop).result()
        if len(raw) >= expected or time.monotonic() > deadline:
            for value in raw:
                assert KEY.encode() not in value
            return [parse_captured_call(v) for v in raw]
        time.sleep(0.01)


def test_sync_clients_httpx2_and_httpx(
    mirror: InProcessMirror, upstreams: tuple[Served, Served]
) -> None:
    o, a = upstreams
    direct = openai.OpenAI(base_url=o.url + "/v1", api_key=KEY, max_retries=0)
    wrapped = openai.OpenAI(
        base_url=o.url + "/v1",
        api_key=KEY,
        max_retries=0,
        http_client=httpx2.Client(transport=mirror.transport()),
    )
    legacy = openai.OpenAI(
        base_url=o.url + "/v1",
        api_key=KEY,
        max_retries=0,
        http_client=httpx.Client(transport=mirror.httpx_transport()),
    )
    results = []
    for client in (direct, wrapped, legacy):
        with client:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=MESSAGES
            )
            chunks = [
                c.model_dump()
                for c in client.chat.completions.create(
                    model="gpt-4o",
                    messages=MESSAGES,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            ]
            results.append((raw.http_response.content, chunks))
    assert results[0] == results[1] == results[2]
    with anthropic.Anthropic(
        base_url=a.url,
        api_key=KEY,
        max_retries=0,
        http_client=httpx2.Client(transport=mirror.transport(provider="anthropic")),
    ) as client:
        message = client.messages.create(
            model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES
        )
    calls = captured(mirror, 5)
    assert [c.api for c in calls] == [Api.OPENAI_CHAT] * 4 + [Api.ANTHROPIC_MESSAGES]
    assert [c.primary.stream for c in calls[:4]] == [False, True, False, True]
    assert calls[1].primary.output == calls[3].primary.output
    assert calls[1].primary.usage is not None and calls[1].primary.ttft_ms is not None
    assert calls[4].primary.provider == "anthropic"
    assert calls[4].primary.output is not None
    assert calls[4].primary.output.text == message.content[0].text  # type: ignore[union-attr]


async def test_async_clients(mirror: InProcessMirror, upstreams: tuple[Served, Served]) -> None:
    o, a = upstreams
    async with openai.AsyncOpenAI(
        base_url=o.url + "/v1",
        api_key=KEY,
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=mirror.async_transport()),
    ) as oc:
        response = await oc.responses.create(model="gpt-5", input="hi")
    async with anthropic.AsyncAnthropic(
        base_url=a.url,
        api_key=KEY,
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=mirror.async_transport(provider="anthropic")),
    ) as ac:
        async with ac.messages.stream(
            model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES
        ) as stream:
            text = await stream.get_final_text()
    async with openai.AsyncOpenAI(
        base_url=o.url + "/v1",
        api_key=KEY,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=mirror.httpx_async_transport()),
    ) as legacy:
        await legacy.embeddings.create(model="text-embedding-3-small", input="x")
    calls = await asyncio.to_thread(captured, mirror, 3)
    assert [c.api for c in calls] == [
        Api.OPENAI_RESPONSES,
        Api.ANTHROPIC_MESSAGES,
        Api.OPENAI_EMBEDDINGS,
    ]
    assert calls[0].primary.output is not None
    assert calls[0].primary.output.text == response.output_text
    assert calls[1].primary.output is not None and calls[1].primary.output.text == text


def test_early_close_and_shadow_traffic(
    mirror: InProcessMirror, upstreams: tuple[Served, Served]
) -> None:
    o, _ = upstreams
    with openai.OpenAI(
        base_url=o.url + "/v1",
        api_key=KEY,
        max_retries=0,
        http_client=httpx2.Client(transport=mirror.transport()),
    ) as client:
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-fake-latency-ms": "500"},
        )
        next(iter(stream))
        stream.close()
        client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            extra_headers={"x-shadowjudge-shadow": "runner"},
        )
    time.sleep(0.1)
    (call,) = captured(mirror, 1)
    assert call.primary.error is not None
    assert call.primary.error.kind is ErrorKind.CLIENT_DISCONNECT
