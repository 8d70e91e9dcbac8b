"""What both fakes share: determinism, recording, gzip, split UTF-8, scripted replies, serving."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import anthropic
import httpx2
import openai
import pytest

from simulation.providers import (
    UTF8_SAMPLE,
    AnthropicFake,
    FakeReply,
    FakeUsage,
    OpenAIFake,
    Served,
    anthropic_app,
    fail_first,
    last_user_text,
    openai_app,
    serve,
    serve_subprocess,
)
from simulation.providers.asgi import Message
from tests.simulation.conftest import ANTHROPIC_HEADERS, OPENAI_HEADERS

CHAT: Any = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say something"}]}
MESSAGES: Any = {
    "model": "claude",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Say something"}],
}


def post(raw: httpx2.Client, url: str, body: Any, headers: Mapping[str, str]) -> bytes:
    """The response body exactly as it came off the wire (before any decompression)."""
    request = raw.build_request(
        "POST",
        url,
        content=json.dumps(body).encode(),
        headers={**headers, "content-type": "application/json"},
    )
    response = raw.send(request, stream=True)
    try:
        return b"".join(response.iter_raw())
    finally:
        response.close()


@pytest.mark.parametrize("stream", [False, True])
def test_openai_answers_are_deterministic(
    openai_server: Served, anthropic_server: Served, raw: httpx2.Client, stream: bool
) -> None:
    chat = f"{openai_server.url}/v1/chat/completions"
    responses = f"{openai_server.url}/v1/responses"
    messages = f"{anthropic_server.url}/v1/messages"
    body = {**CHAT, "stream": stream, "stream_options": {"include_usage": True}} if stream else CHAT
    cases = [
        (chat, body, OPENAI_HEADERS),
        (
            responses,
            {"model": "gpt-4o", "input": "Say something", "stream": stream},
            OPENAI_HEADERS,
        ),
        (messages, {**MESSAGES, "stream": stream}, ANTHROPIC_HEADERS),
    ]
    for url, request, headers in cases:
        first = post(raw, url, request, {**headers, "accept-encoding": "gzip"})
        assert first == post(raw, url, request, {**headers, "accept-encoding": "gzip"})
        other = post(raw, url, {**request, "temperature": 0.5}, headers)
        assert other != first


def test_same_prompt_same_text_across_apis(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    chat = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Q?"}],
    )
    responses = oai.responses.create(model="gpt-4o", input="Q?")
    message = ant.messages.create(
        model="claude",
        max_tokens=512,
        system="Be kind.",
        messages=[{"role": "user", "content": "Q?"}],
    )
    assert message.content[0].type == "text"
    assert chat.choices[0].message.content == responses.output_text == message.content[0].text


def test_gzip_only_when_accepted_and_never_for_streams(
    openai_server: Served, anthropic_server: Served, raw: httpx2.Client
) -> None:
    url = f"{anthropic_server.url}/v1/messages"
    body = json.dumps(MESSAGES).encode()  # the same bytes as post() sends: ids hash the body
    zipped = raw.post(url, content=body, headers={**ANTHROPIC_HEADERS, "accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    wire = post(raw, url, MESSAGES, {**ANTHROPIC_HEADERS, "accept-encoding": "gzip"})
    assert json.loads(gzip.decompress(wire)) == zipped.json()
    plain = raw.post(
        url, content=body, headers={**ANTHROPIC_HEADERS, "accept-encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers and plain.json() == zipped.json()
    streamed = raw.post(
        f"{openai_server.url}/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={**OPENAI_HEADERS, "accept-encoding": "gzip"},
    )
    assert "content-encoding" not in streamed.headers


def test_requests_are_recorded_exactly(
    openai_server: Served, openai_fake: OpenAIFake, raw: httpx2.Client
) -> None:
    url = f"{openai_server.url}/v1/chat/completions"
    for body, problem in [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
    ]:
        response = raw.post(url, content=body, headers={**OPENAI_HEADERS, "x-trace": "t1"})
        assert response.status_code == 400 and problem in response.json()["error"]["message"]
        recorded = openai_fake.requests[-1]
        assert recorded.body == body and recorded.header("x-trace") == "t1"
        assert recorded.query_string == b"" and recorded.path == "/v1/chat/completions"


async def test_recording_is_bounded() -> None:
    app = openai_app(max_recorded=3)
    with serve(app) as served:
        async with httpx2.AsyncClient(base_url=served.url) as client:
            await asyncio.gather(
                *(client.get("/v1/models", headers=OPENAI_HEADERS) for _ in range(5))
            )
    assert len(app.requests) == 3


async def asgi_call(app: Any, path: str, body: Any, headers: Mapping[str, str]) -> list[Message]:
    """Call an ASGI app directly and collect what it sends."""
    sent: list[Message] = []
    pending = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]

    async def receive() -> Message:
        if pending:
            return pending.pop()
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_split_utf8_cuts_characters_across_sends(kind: str) -> None:
    if kind == "openai":
        sent = await asgi_call(
            openai_app(),
            "/v1/chat/completions",
            {**CHAT, "stream": True},
            {**OPENAI_HEADERS, "x-fake-split-utf8": "1"},
        )
    else:
        sent = await asgi_call(
            anthropic_app(),
            "/v1/messages",
            {**MESSAGES, "stream": True},
            {**ANTHROPIC_HEADERS, "x-fake-split-utf8": "1"},
        )
    chunks = [m["body"] for m in sent if m["type"] == "http.response.body"]
    broken = 0
    for chunk in chunks:
        try:
            chunk.decode()
        except UnicodeDecodeError:
            broken += 1
    assert broken >= 2
    joined = b"".join(chunks).decode()  # whole again once joined
    assert all(word in joined for word in UTF8_SAMPLE.split())


def test_split_utf8_through_the_sdks(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    headers = {"x-fake-split-utf8": "1"}
    stream = oai.chat.completions.create(
        model="gpt-4o",
        messages=CHAT["messages"],
        stream=True,
        extra_headers=headers,
    )
    with stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert UTF8_SAMPLE in text
    with ant.messages.stream(extra_headers=headers, **MESSAGES) as events:
        assert UTF8_SAMPLE in events.get_final_text()


def test_scripted_replies_and_judge(ant: anthropic.Anthropic) -> None:
    seen: list[tuple[str, str | None]] = []

    def judge(body: dict[str, Any], headers: Mapping[str, str]) -> FakeReply:
        seen.append((last_user_text(body), headers.get("x-arm")))
        return FakeReply(text="A", usage=FakeUsage(input_tokens=100, output_tokens=1))

    with (
        serve(openai_app(responder=judge)) as served,
        openai.OpenAI(base_url=f"{served.url}/v1", api_key="sk", max_retries=0) as client,
    ):
        verdict = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Which is better, A or B?"}],
            extra_headers={"x-arm": "judge"},
        )
        streamed = client.responses.create(model="gpt-4o", input="And now?", stream=True)
        with streamed:
            kinds = [event.type for event in streamed]
    assert verdict.choices[0].message.content == "A" and verdict.usage is not None
    assert verdict.usage.prompt_tokens == 100 and verdict.usage.completion_tokens == 1
    assert seen == [("Which is better, A or B?", "judge"), ("And now?", None)]
    assert kinds[-1] == "response.completed"


async def test_async_responder_tool_calls_and_errors() -> None:
    async def responder(body: dict[str, Any], headers: Mapping[str, str]) -> FakeReply | None:
        await asyncio.sleep(0)
        prompt = last_user_text(body)
        if prompt == "tool":
            return FakeReply(
                text="Checking.", tool_calls=[("lookup", '{"q": "x"}'), ("lookup", '{"q": "y"}')]
            )
        if prompt == "fail":
            return FakeReply(status=503, error_message="try later", retry_after="3")
        return None

    with serve(anthropic_app(responder=responder)) as served:
        async with anthropic.AsyncAnthropic(
            base_url=served.url, api_key="k", max_retries=0
        ) as client:
            async with client.messages.stream(
                model="claude", max_tokens=64, messages=[{"role": "user", "content": "tool"}]
            ) as stream:
                message = await stream.get_final_message()
            with pytest.raises(anthropic.InternalServerError) as caught:
                await client.messages.create(
                    model="claude", max_tokens=64, messages=[{"role": "user", "content": "fail"}]
                )
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    assert [getattr(block, "input", None) for block in message.content[1:]] == [
        {"q": "x"},
        {"q": "y"},
    ]
    assert caught.value.status_code == 503 and caught.value.api_message == "try later"
    assert caught.value.response.headers["retry-after"] == "3"


def test_sdk_retries_honour_retry_after() -> None:
    app = openai_app(responder=fail_first(2, 429, retry_after="0.05"))
    with (
        serve(app) as served,
        openai.OpenAI(base_url=f"{served.url}/v1", api_key="sk", max_retries=2) as client,
    ):
        completion = client.chat.completions.create(**CHAT)
    assert completion.choices[0].message.content.startswith("Echo: Say something")
    assert [r.header("x-stainless-retry-count") for r in app.requests] == ["0", "1", "2"]


def test_serve_stops_cleanly() -> None:
    app = anthropic_app()
    with serve(app) as served:
        assert served.url == f"http://127.0.0.1:{served.port}" and served.port > 0
        with socket.create_connection((served.host, served.port), timeout=5):
            pass
    with pytest.raises(OSError), socket.create_connection((served.host, served.port), timeout=1):
        pass


def test_answers_do_not_depend_on_the_process(openai_server: Served, raw: httpx2.Client) -> None:
    with serve_subprocess("openai") as served:
        other = post(raw, f"{served.url}/v1/chat/completions", CHAT, OPENAI_HEADERS)
    assert other == post(raw, f"{openai_server.url}/v1/chat/completions", CHAT, OPENAI_HEADERS)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_serve_subprocess(kind: Literal["openai", "anthropic"]) -> None:
    with serve_subprocess(kind, latency_ms=1) as served:
        if kind == "openai":
            with openai.OpenAI(base_url=f"{served.url}/v1", api_key="sk", max_retries=0) as c:
                assert c.models.list().data
        else:
            with anthropic.Anthropic(base_url=served.url, api_key="k", max_retries=0) as a:
                assert a.messages.create(**MESSAGES).usage.input_tokens > 0
    with pytest.raises(OSError), socket.create_connection((served.host, served.port), timeout=1):
        pass


def test_documented_command_line() -> None:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "simulation.providers", "openai", "--port", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        with httpx2.Client() as client:
            response = client.get(f"{line.split()[-1]}/v1/models", headers=OPENAI_HEADERS)
        assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_fake_classes_are_asgi_apps() -> None:
    assert isinstance(openai_app(), OpenAIFake) and isinstance(anthropic_app(), AnthropicFake)
