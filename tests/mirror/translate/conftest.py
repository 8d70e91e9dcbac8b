"""A bridge that answers an SDK's call from the other provider's simulated API, translated.

The official SDK sends its request to an `httpx2.MockTransport`; the bridge translates it with
`translate_served_request`, sends it to the other provider's fake (served on loopback, as the
sidecar would reach a candidate), and translates the answer back with `translate_response` or
a `StreamTranslator` fed the chunks as they arrived. Each test names its scripted reply with
an `x-test-reply` header; `x-fake-*` headers are passed on to the fake.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from mirror.events import Api
from mirror.translate.response import translate_response, translate_served_request
from mirror.translate.stream import StreamTranslator
from simulation.providers import (
    UTF8_SAMPLE,
    FakeReply,
    FakeUsage,
    anthropic_app,
    openai_app,
    serve,
)

CHAT = Api.OPENAI_CHAT
MESSAGES = Api.ANTHROPIC_MESSAGES
#: The model each provider's candidate is; the translated answer reports it.
CANDIDATE = {MESSAGES: "claude-sonnet-4-5", CHAT: "gpt-4.1"}
TEXT = f"Oslo. {UTF8_SAMPLE} Done."
WEATHER = ("get_weather", '{"city":"Oslo","days":[1,2]}')
CLOCK = ("get_time", '{"zone":"Europe/Oslo"}')
REPLIES = {
    "text": FakeReply(text=TEXT, usage=FakeUsage(120, 9, cached_tokens=100)),
    "tools": FakeReply(tool_calls=[WEATHER, CLOCK], usage=FakeUsage(80, 30)),
    "text+tool": FakeReply(text="Let me check.", tool_calls=[WEATHER], usage=FakeUsage(50, 20)),
    "no-args": FakeReply(tool_calls=[("ping", "{}")]),
    "max_tokens": FakeReply(text="Cut sh", finish_reason="max_tokens"),
    "stop_sequence": FakeReply(text="One", finish_reason="stop_sequence", stop_sequence="Two"),
    "refusal": FakeReply(text="I can't", finish_reason="refusal"),
}


def respond(body: dict[str, Any], headers: Any) -> FakeReply | None:
    return REPLIES.get(headers.get("x-test-reply", ""))


@dataclass
class Bridge:
    openai_url: str
    anthropic_url: str
    #: The source bytes of the last stream, chunk by chunk as they arrived.
    raw: list[bytes] = field(default_factory=list)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        if request.url.path.endswith("/chat/completions"):
            source, target = CHAT, MESSAGES
            url = f"{self.anthropic_url}/v1/messages"
            headers = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
        else:
            source, target = MESSAGES, CHAT
            url = f"{self.openai_url}/v1/chat/completions"
            headers = {"authorization": "Bearer sk-test"}
        headers.update(
            (k, v) for k, v in request.headers.items() if k.startswith(("x-test-", "x-fake-"))
        )
        model = CANDIDATE[target]
        sent = translate_served_request(body, source=source, target=target, model=model)
        with httpx2.Client() as client, client.stream("POST", url, json=sent, headers=headers) as r:
            assert r.status_code == 200, r.read()
            if not body.get("stream"):
                answer = translate_response(r.read(), source=target, target=source, model=model)
                return httpx2.Response(
                    200, headers={"content-type": "application/json"}, content=answer
                )
            self.raw = list(r.iter_raw())
        options = body.get("stream_options") or {}
        translator = StreamTranslator(  # the answer goes back the other way
            source=target,
            target=source,
            model=model,
            include_usage=bool(options.get("include_usage")),
        )
        out = [translator.feed(chunk) for chunk in self.raw]
        out.append(translator.close())
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=b"".join(out)
        )

    def openai(self) -> openai.OpenAI:
        """An OpenAI SDK client whose calls Anthropic answers."""
        transport = httpx2.MockTransport(self.handle)
        return openai.OpenAI(
            base_url="http://bridge/v1",
            api_key="sk-app",
            http_client=httpx2.Client(transport=transport),
            max_retries=0,
        )

    def anthropic(self) -> anthropic.Anthropic:
        """An Anthropic SDK client whose calls OpenAI answers."""
        transport = httpx2.MockTransport(self.handle)
        return anthropic.Anthropic(
            base_url="http://bridge",
            api_key="sk-ant-app",
            http_client=httpx2.Client(transport=transport),
            max_retries=0,
        )


@pytest.fixture(scope="session")
def bridge() -> Iterator[Bridge]:
    with (
        serve(openai_app(responder=respond)) as o,
        serve(anthropic_app(responder=respond)) as a,
    ):
        yield Bridge(o.url, a.url)
