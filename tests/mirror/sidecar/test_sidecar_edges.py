"""The live path under stress: big bodies, dead upstreams, apps that leave, broken streams."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from mirror.config import CaptureSettings
from mirror.events import ErrorKind
from simulation.providers import AnthropicFake, OpenAIFake, anthropic_app, openai_app, serve
from tests.broker import free_port
from tests.sidecar import RunningSidecar, providers_for, run_sidecar

KEY = "sk-test-edges-5b7d9e1f3a"
FIVE_MB = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[OpenAIFake, AnthropicFake, str, str]]:
    oai, ant = openai_app(), anthropic_app()
    with serve(oai) as o, serve(ant) as a:
        yield oai, ant, o.url, a.url


@pytest.fixture(scope="module")
def sidecar(fakes: tuple[OpenAIFake, AnthropicFake, str, str]) -> Iterator[RunningSidecar]:
    with run_sidecar(
        providers_for(fakes[2], fakes[3]), capture=CaptureSettings(max_body_bytes=64 * 1024)
    ) as running:
        yield running


def test_five_megabytes_each_way_pass_unchanged_capture_truncated(
    fakes: tuple[OpenAIFake, AnthropicFake, str, str], sidecar: RunningSidecar
) -> None:
    oai, _, openai_url, _ = fakes
    content = "x" * FIVE_MB
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]})
    headers = {
        "authorization": f"Bearer {KEY}",
        "x-fake-size": str(FIVE_MB),
        "content-type": "application/json",
    }
    with httpx2.Client(timeout=60) as client:
        direct = client.post(openai_url + "/v1/chat/completions", content=body, headers=headers)
        before = len(sidecar.calls())
        proxied = client.post(sidecar.url + "/v1/chat/completions", content=body, headers=headers)
    assert oai.requests[-1].body == body.encode()
    assert oai.requests[-1].header("content-length") == str(len(body))
    assert oai.requests[-1].header("transfer-encoding") is None
    assert proxied.status_code == 200 and proxied.content == direct.content
    assert len(proxied.content) > FIVE_MB
    (call,) = sidecar.calls(expected=before + 1)[before:]
    assert call.truncated.request and call.truncated.response
    assert call.request is None and call.request_text is not None
    assert call.primary.truncated and call.primary.status_code == 200


def test_five_megabyte_stream_passes_and_capture_keeps_what_fits(
    fakes: tuple[OpenAIFake, AnthropicFake, str, str], sidecar: RunningSidecar
) -> None:
    with anthropic.Anthropic(base_url=sidecar.url, api_key=KEY, max_retries=0) as client:
        before = len(sidecar.calls())
        with client.messages.stream(
            model="claude-sonnet-4-6",
            max_tokens=10,
            messages=[{"role": "user", "content": "long"}],
            extra_headers={"x-fake-size": str(FIVE_MB)},
        ) as stream:
            text = stream.get_final_text()
    assert len(text.encode()) == FIVE_MB
    (call,) = sidecar.calls(expected=before + 1)[before:]
    assert call.truncated.response and call.primary.output is not None
    assert 0 < len(call.primary.output.text) < 64 * 1024
    assert text.startswith(call.primary.output.text)


def test_unreachable_upstream_is_a_502_in_the_provider_shape() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with run_sidecar(providers_for(dead, dead)) as running:
        with openai.OpenAI(base_url=running.url + "/v1", api_key=KEY, max_retries=0) as oc:
            with pytest.raises(openai.InternalServerError) as caught:
                oc.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert caught.value.status_code == 502
        assert "unreachable" in caught.value.message
        with anthropic.Anthropic(base_url=running.url, api_key=KEY, max_retries=0) as ac:
            with pytest.raises(anthropic.InternalServerError) as err:
                ac.messages.create(
                    model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
                )
        assert err.value.status_code == 502
        assert err.value.body["error"]["type"] == "api_error"  # type: ignore[index]
        calls = running.calls(expected=2)
        assert [c.primary.error.kind for c in calls if c.primary.error] == [
            ErrorKind.UNREACHABLE,
            ErrorKind.UNREACHABLE,
        ]
        assert running.metric("shadowjudge_sidecar_upstream_errors_total", provider="openai") == 1


class SlowStream:
    """An upstream that streams an event every 20 ms for 10 s and notes when its client left."""

    def __init__(self) -> None:
        self.left = threading.Event()
        self.sent = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        watcher = asyncio.ensure_future(receive())
        for i in range(500):
            chunk = {"model": "m", "choices": [{"index": 0, "delta": {"content": f"w{i} "}}]}
            await send(
                {
                    "type": "http.response.body",
                    "more_body": True,
                    "body": f"data: {json.dumps(chunk)}\n\n".encode(),
                }
            )
            self.sent += 1
            done, _ = await asyncio.wait({watcher}, timeout=0.02)
            if done:
                self.left.set()
                return
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def test_app_leaving_mid_stream_closes_the_upstream_stream() -> None:
    upstream = SlowStream()
    with serve(upstream) as served, run_sidecar(providers_for(served.url, served.url)) as sc:
        with openai.OpenAI(base_url=sc.url + "/v1", api_key=KEY, max_retries=0) as client:
            stream = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}], stream=True
            )
            first = [next(iter(stream)) for _ in range(3)]
            stream.close()
        assert first[0].choices[0].delta.content == "w0 "
        assert upstream.left.wait(5), "the upstream stream was not closed"
        assert upstream.sent < 100
        (call,) = sc.calls(expected=1)
        assert call.primary.error is not None
        assert call.primary.error.kind is ErrorKind.CLIENT_DISCONNECT
        assert call.primary.output is not None and call.primary.output.text.startswith("w0 w1")


def test_broken_upstream_stream_breaks_the_same_way(
    fakes: tuple[OpenAIFake, AnthropicFake, str, str], sidecar: RunningSidecar
) -> None:
    _, _, openai_url, _ = fakes
    outcomes = []
    for base in (openai_url, sidecar.url):
        with openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0) as client:
            received = []
            with pytest.raises(openai.APIConnectionError):
                for chunk in client.chat.completions.create(
                    model="gpt-4o",
                    messages=[{"role": "user", "content": "cut me"}],
                    stream=True,
                    extra_headers={"x-fake-stream-error": "cut"},
                ):
                    received.append(chunk.model_dump())
            outcomes.append(received)
    assert outcomes[0] == outcomes[1] and outcomes[0]
    calls = sidecar.calls()
    error = calls[-1].primary.error
    assert error is not None and error.kind is ErrorKind.INCOMPLETE


def test_in_band_stream_error_is_captured_as_such(sidecar: RunningSidecar) -> None:
    with anthropic.Anthropic(base_url=sidecar.url, api_key=KEY, max_retries=0) as client:
        before = len(sidecar.calls())
        with pytest.raises(anthropic.APIStatusError):
            with client.messages.stream(
                model="claude-sonnet-4-6",
                max_tokens=10,
                messages=[{"role": "user", "content": "x"}],
                extra_headers={"x-fake-stream-error": "event"},
            ) as stream:
                stream.get_final_message()
    (call,) = sidecar.calls(expected=before + 1)[before:]
    assert call.primary.status_code == 200 and call.primary.error is not None
    assert call.primary.error.kind is ErrorKind.STREAM
    assert call.primary.error.type == "overloaded_error"


def test_metrics_and_health(sidecar: RunningSidecar) -> None:
    with httpx2.Client() as client:
        health = client.get(sidecar.url + "/healthz").json()
        metrics = client.get(sidecar.url + "/metrics")
    assert health["status"] == "ok" and health["bus_connected"] is True
    text = metrics.text
    for name in (
        "shadowjudge_sidecar_requests_total",
        "shadowjudge_sidecar_captured_total",
        'shadowjudge_sidecar_dropped_total{reason="queue_full"}',
        "shadowjudge_sidecar_queue_depth",
        "shadowjudge_sidecar_publish_errors_total",
        "shadowjudge_sidecar_upstream_latency_seconds_bucket",
    ):
        assert name in text
    assert time.time() > 0
