"""The fake Anthropic Messages API, driven through the official ``anthropic`` SDK."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest

from simulation.providers import AnthropicFake, Served
from tests.simulation.conftest import ANTHROPIC_HEADERS

HELLO: Any = [{"role": "user", "content": "Hello there, how are you?"}]
WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    },
}


def events_of(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) pairs; asserts every data line directly follows its event line."""
    pairs = []
    for block in text.strip("\n").split("\n\n"):
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        pairs.append((event_line[7:], json.loads(data_line[6:])))
    return pairs


def test_message(ant: anthropic.Anthropic, anthropic_fake: AnthropicFake) -> None:
    message = ant.messages.create(
        model="claude-sonnet-5", max_tokens=512, messages=HELLO, system="You are terse."
    )
    assert message.id.startswith("msg_01") and message.model == "claude-sonnet-5"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    block = message.content[0]
    assert block.type == "text" and block.text.startswith("Echo: Hello there, how are you?")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    recorded = anthropic_fake.requests[-1]
    assert recorded.header("anthropic-version")  # the SDK sends its own API version
    assert recorded.json()["system"] == "You are terse."


def test_stop_sequences_and_max_tokens(ant: anthropic.Anthropic) -> None:
    stopped = ant.messages.create(
        model="claude", max_tokens=512, messages=HELLO, stop_sequences=["how", "are"]
    )
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "how"
    assert stopped.content[0].type == "text" and stopped.content[0].text == "Echo: Hello there, "
    short = ant.messages.create(model="claude", max_tokens=2, messages=HELLO)
    assert short.stop_reason == "max_tokens"
    assert short.content[0].type == "text" and short.content[0].text == "Echo: He"


def test_stream_wire_format(anthropic_server: Served, raw: httpx2.Client) -> None:
    body = {"model": "claude", "max_tokens": 512, "messages": HELLO, "stream": True}
    response = raw.post(f"{anthropic_server.url}/v1/messages", json=body, headers=ANTHROPIC_HEADERS)
    assert response.headers["content-type"].startswith("text/event-stream")
    pairs = events_of(response.text)
    names = [name for name, _ in pairs]
    assert all(name == data["type"] for name, data in pairs)
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start, delta = pairs[0][1]["message"], pairs[-2][1]
    assert start["content"] == [] and start["stop_reason"] is None
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["input_tokens"] == start["usage"]["input_tokens"]
    text = "".join(data["delta"]["text"] for name, data in pairs if name == "content_block_delta")
    assert delta["usage"]["output_tokens"] == (len(text) + 3) // 4


def test_stream_helper_matches_plain_call(ant: anthropic.Anthropic) -> None:
    plain = ant.messages.create(model="claude", max_tokens=512, messages=HELLO)
    with ant.messages.stream(model="claude", max_tokens=512, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert plain.content[0].type == "text" and text == plain.content[0].text
    assert final.to_dict()["content"] == plain.to_dict()["content"]
    assert final.usage == plain.usage
    assert final.stop_reason == plain.stop_reason


async def test_async_stream_helper(aant: anthropic.AsyncAnthropic) -> None:
    async with aant.messages.stream(model="claude", max_tokens=512, messages=HELLO) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.content[0].type == "text" and final.content[0].text.startswith("Echo: Hello")


def test_tool_use(ant: anthropic.Anthropic) -> None:
    message = ant.messages.create(
        model="claude",
        max_tokens=512,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather in Rome?"}],
    )
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use" and block.id.startswith("toolu_01")
    assert block.name == "get_weather" and block.input == {"city": "Weather in Rome?", "days": 1}


def test_tool_use_stream(
    ant: anthropic.Anthropic, anthropic_server: Served, raw: httpx2.Client
) -> None:
    params: Any = {
        "model": "claude",
        "max_tokens": 512,
        "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": "Rome? use get_weather"}],
    }
    with ant.messages.stream(**params) as stream:
        final = stream.get_final_message()
    block = final.content[0]
    assert final.stop_reason == "tool_use"
    assert block.type == "tool_use" and block.input == {"city": "Rome? use get_weather", "days": 1}
    response = raw.post(
        f"{anthropic_server.url}/v1/messages",
        json={**params, "stream": True},
        headers=ANTHROPIC_HEADERS,
    )
    fragments = [
        d["delta"]["partial_json"]
        for n, d in events_of(response.text)
        if n == "content_block_delta"
    ]
    assert fragments[0] == "" and len(fragments) > 3
    assert json.loads("".join(fragments)) == block.input


def test_tool_result_and_header_forced_tool(ant: anthropic.Anthropic) -> None:
    messages: Any = [
        {"role": "user", "content": "Weather in Rome?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21 C, sunny"}
            ],
        },
    ]
    answer = ant.messages.create(
        model="claude", max_tokens=512, tools=[WEATHER_TOOL], messages=messages
    )
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text"
    assert answer.content[0].text.startswith("Tool result: 21 C, sunny")
    forced = ant.messages.create(
        model="claude", max_tokens=512, messages=HELLO, extra_headers={"x-fake-tool": "lookup"}
    )
    assert forced.content[0].type == "tool_use" and forced.content[0].name == "lookup"


def test_count_tokens(ant: anthropic.Anthropic) -> None:
    counted = ant.messages.count_tokens(model="claude", messages=HELLO)
    message = ant.messages.create(model="claude", max_tokens=512, messages=HELLO)
    assert counted.input_tokens == message.usage.input_tokens > 0


@pytest.mark.parametrize(
    ("status", "error_class", "kind"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_status_errors(
    ant: anthropic.Anthropic, status: int, error_class: type[Exception], kind: str
) -> None:
    with pytest.raises(error_class) as caught:
        ant.messages.create(
            model="claude",
            max_tokens=64,
            messages=HELLO,
            extra_headers={"x-fake-status": str(status)},
        )
    error = caught.value
    assert isinstance(error, anthropic.APIStatusError) and error.status_code == status
    assert error.type == kind and error.request_id == error.response.headers["request-id"]
    assert isinstance(error.body, dict) and error.body["type"] == "error"
    if status == 429:
        assert error.response.headers["retry-after"] == "1"


async def test_async_overloaded_is_internal_server_error(aant: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.InternalServerError) as caught:
        await aant.messages.create(
            model="claude",
            max_tokens=64,
            messages=HELLO,
            stream=True,
            extra_headers={"x-fake-status": "529"},
        )
    assert caught.value.status_code == 529


def test_mid_stream_error_event(ant: anthropic.Anthropic) -> None:
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        ant.messages.stream(
            model="claude",
            max_tokens=512,
            messages=HELLO,
            extra_headers={"x-fake-stream-error": "1"},
        ) as stream,
    ):
        for _ in stream:
            pass
    assert caught.value.status_code == 200 and caught.value.type == "overloaded_error"


def test_dropped_and_truncated_streams(ant: anthropic.Anthropic) -> None:
    # The anthropic SDK lets the transport error through unwrapped.
    with (
        pytest.raises(httpx2.RemoteProtocolError),
        ant.messages.stream(
            model="claude",
            max_tokens=512,
            messages=HELLO,
            extra_headers={"x-fake-stream-error": "cut"},
        ) as stream,
    ):
        for _ in stream:
            pass
    with ant.messages.stream(
        model="claude",
        max_tokens=512,
        messages=HELLO,
        extra_headers={"x-fake-stream-error": "clean"},
    ) as stream:
        kinds = [event.type for event in stream]
    assert "message_stop" not in kinds and "message_delta" not in kinds


def test_auth_and_validation(anthropic_server: Served, raw: httpx2.Client) -> None:
    url = f"{anthropic_server.url}/v1/messages"
    body = {"model": "claude", "max_tokens": 8, "messages": HELLO}
    no_key = raw.post(url, json=body, headers={"anthropic-version": "2023-06-01"})
    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "authentication_error"
    no_version = raw.post(url, json=body, headers={"x-api-key": "k"})
    assert no_version.status_code == 400
    missing = raw.post(url, json={"model": "claude", "messages": HELLO}, headers=ANTHROPIC_HEADERS)
    assert missing.status_code == 400
    assert missing.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    unknown = raw.post(f"{anthropic_server.url}/v1/nothing", headers=ANTHROPIC_HEADERS)
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("stream", [False, True])
def test_structured_output_is_json_fitting_the_schema(
    ant: anthropic.Anthropic, stream: bool
) -> None:
    schema = {**WEATHER_TOOL["input_schema"], "additionalProperties": False}
    params: Any = {
        "model": "claude",
        "max_tokens": 512,
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
        "messages": [{"role": "user", "content": "Weather in Rome?"}],
    }
    if stream:
        with ant.messages.stream(**params) as events:
            message = events.get_final_message()
    else:
        message = ant.messages.create(**params)
    assert message.stop_reason == "end_turn" and len(message.content) == 1
    block = message.content[0]
    assert block.type == "text"
    assert json.loads(block.text) == {"city": "Weather in Rome?", "days": 1}
