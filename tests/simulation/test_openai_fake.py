"""The fake OpenAI API, driven through the official ``openai`` SDK (sync and async)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import httpx2
import openai
import pytest

from simulation.providers import OpenAIFake, Served
from tests.simulation.conftest import OPENAI_HEADERS

HELLO: Any = [{"role": "user", "content": "Hello there, how are you?"}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
RESPONSES_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "strict": True,
    "parameters": WEATHER_TOOL["function"]["parameters"],
}


def sse_data(text: str) -> list[str]:
    return [line[6:] for line in text.split("\n") if line.startswith("data: ")]


def test_chat_completion(oai: openai.OpenAI, openai_fake: OpenAIFake) -> None:
    completion = oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content is not None
    assert choice.message.content.startswith("Echo: Hello there, how are you?")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    recorded = openai_fake.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.json()["messages"] == HELLO


def test_chat_stream_wire_format(openai_server: Served, raw: httpx2.Client) -> None:
    body = {
        "model": "gpt-4o",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = raw.post(
        f"{openai_server.url}/v1/chat/completions", json=body, headers=OPENAI_HEADERS
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in response.headers
    assert response.text.endswith("data: [DONE]\n\n")
    chunks = [json.loads(d) for d in sse_data(response.text)[:-1]]
    *deltas, last = chunks
    assert all(c["usage"] is None and len(c["choices"]) == 1 for c in deltas)
    assert last["choices"] == [] and last["usage"]["total_tokens"] > 0
    assert len({len(c["obfuscation"]) for c in deltas}) > 1
    assert deltas[0]["choices"][0]["delta"]["role"] == "assistant"
    assert deltas[-1]["choices"][0]["finish_reason"] == "stop"
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1


def test_chat_stream_helper_matches_plain_call(oai: openai.OpenAI) -> None:
    plain = oai.chat.completions.create(model="gpt-4o", messages=HELLO)
    with oai.chat.completions.stream(
        model="gpt-4o", messages=HELLO, stream_options={"include_usage": True}
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "content.delta" in kinds and kinds.count("content.done") == 1
    assert final.choices[0].message.content == plain.choices[0].message.content
    assert final.usage == plain.usage


async def test_async_chat_stream(aoai: openai.AsyncOpenAI) -> None:
    stream = await aoai.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
    parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert "".join(parts).startswith("Echo: Hello there")
    assert len(parts) > 5


def test_chat_tool_call_forced_by_header(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        extra_headers={"x-fake-tool": "1"},
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Weather in Paris?", "unit": "celsius"}


def test_chat_tool_call_stream_helper(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Use get_weather for Oslo"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    deltas = [e for e in events if e.type == "tool_calls.function.arguments.delta"]
    done = [e for e in events if e.type == "tool_calls.function.arguments.done"]
    assert len(deltas) > 2 and len(done) == 1
    assert done[0].parsed_arguments == {"city": "Use get_weather for Oslo", "unit": "celsius"}
    tool_calls = final.choices[0].message.tool_calls
    assert (
        tool_calls is not None
        and tool_calls[0].function.parsed_arguments == done[0].parsed_arguments
    )
    assert final.choices[0].finish_reason == "tool_calls"


def test_tool_result_turn_answers_with_text(oai: openai.OpenAI) -> None:
    messages: Any = [
        {"role": "user", "content": "Use get_weather for Oslo"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "-3 C and snow"},
    ]
    completion = oai.chat.completions.create(
        model="gpt-4o", messages=messages, tools=[WEATHER_TOOL]
    )
    assert completion.choices[0].message.content is not None
    assert completion.choices[0].message.content.startswith("Tool result: -3 C and snow")


def test_stop_and_max_tokens(oai: openai.OpenAI) -> None:
    stopped = oai.chat.completions.create(model="gpt-4o", messages=HELLO, stop=["how"])
    assert stopped.choices[0].message.content == "Echo: Hello there, "
    short = oai.chat.completions.create(model="gpt-4o", messages=HELLO, max_completion_tokens=3)
    assert short.choices[0].finish_reason == "length"
    assert short.choices[0].message.content == "Echo: Hello "


def test_responses_plain_and_stream_helper(oai: openai.OpenAI) -> None:
    plain = oai.responses.create(model="gpt-4.1", input="Hello there", instructions="Be brief.")
    assert plain.id.startswith("resp_") and plain.status == "completed"
    assert plain.output_text.startswith("Echo: Hello there")
    assert plain.instructions == "Be brief." and plain.usage is not None
    with oai.responses.stream(
        model="gpt-4.1", input="Hello there", instructions="Be brief."
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == plain.output_text
    assert final.usage == plain.usage


async def test_responses_function_call_stream_async(aoai: openai.AsyncOpenAI) -> None:
    async with aoai.responses.stream(
        model="gpt-4.1",
        input=[{"role": "user", "content": "Oslo weather?"}],
        tools=[RESPONSES_TOOL],
        tool_choice="required",
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds.count("response.function_call_arguments.delta") > 2
    call = final.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.parsed_arguments == {"city": "Oslo weather?", "unit": "celsius"}


def test_responses_length_is_incomplete(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model="gpt-4.1", input="Hello there", max_output_tokens=16) as s:
        kinds = [event.type for event in s]
    assert kinds[-1] == "response.incomplete"
    response = oai.responses.create(model="gpt-4.1", input="Hello there", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_embeddings_base64_default_and_float(oai: openai.OpenAI, openai_fake: OpenAIFake) -> None:
    decoded = oai.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert openai_fake.requests[-1].json()["encoding_format"] == "base64"
    floats = oai.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta"], encoding_format="float"
    )
    assert [d.embedding for d in decoded.data] == [d.embedding for d in floats.data]
    vector = floats.data[0].embedding
    assert len(vector) == 1536 and math.isclose(sum(v * v for v in vector), 1.0, rel_tol=1e-4)
    assert floats.data[0].embedding != floats.data[1].embedding
    small = oai.embeddings.create(model="text-embedding-3-large", input="x", dimensions=8)
    assert len(small.data[0].embedding) == 8 and small.usage.prompt_tokens == 1


def test_models(oai: openai.OpenAI) -> None:
    assert "gpt-4o" in [m.id for m in oai.models.list()]
    assert oai.models.retrieve("gpt-4o").owned_by == "system"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("gpt-nonexistent")


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (500, openai.InternalServerError),
        (529, openai.InternalServerError),
    ],
)
def test_status_errors(oai: openai.OpenAI, status: int, error_class: type[Exception]) -> None:
    with pytest.raises(error_class) as caught:
        oai.chat.completions.create(
            model="gpt-4o", messages=HELLO, extra_headers={"x-fake-status": str(status)}
        )
    assert isinstance(caught.value, openai.APIStatusError)
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and set(caught.value.body) == {
        "message",
        "type",
        "param",
        "code",
    }


def test_rate_limit_with_retry_after(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(
            model="gpt-4o", messages=HELLO, extra_headers={"x-fake-status": "429"}
        )
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(
            model="gpt-4o",
            messages=HELLO,
            stream=True,
            extra_headers={"x-fake-status": "429", "x-fake-retry-after": "7"},
        )
    assert caught.value.response.headers["retry-after"] == "7"


async def test_async_errors(aoai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        await aoai.responses.create(
            model="gpt-4.1", input="hi", extra_headers={"x-fake-status": "500"}
        )
    with pytest.raises(openai.BadRequestError) as caught:
        await aoai.chat.completions.create(model="gpt-4o", messages=[])
    assert caught.value.status_code == 400
    with pytest.raises(openai.BadRequestError):  # an unreadable control header
        await aoai.models.list(extra_headers={"x-fake-size": "big"})


def test_missing_or_wrong_api_key(openai_server: Served, raw: httpx2.Client) -> None:
    response = raw.get(f"{openai_server.url}/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    keyed = OpenAIFake(api_key="sk-right")
    from simulation.providers import serve

    with (
        serve(keyed) as served,
        openai.OpenAI(base_url=f"{served.url}/v1", api_key="sk-wrong", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        client.models.list()
    assert caught.value.code == "invalid_api_key"


def test_stream_errors(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        for _ in oai.chat.completions.create(
            model="gpt-4o", messages=HELLO, stream=True, extra_headers={"x-fake-stream-error": "1"}
        ):
            pass
    with pytest.raises(openai.APIError, match="server had an error"):
        for _ in oai.chat.completions.create(
            model="gpt-4o",
            messages=HELLO,
            stream=True,
            extra_headers={"x-fake-stream-error": "event"},
        ):
            pass
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=HELLO,
            stream=True,
            extra_headers={"x-fake-stream-error": "clean"},
        )
    )
    assert chunks and chunks[-1].choices[0].finish_reason is None
    with oai.responses.stream(
        model="gpt-4.1", input="hi", extra_headers={"x-fake-stream-error": "event"}
    ) as stream:
        kinds = [event.type for event in stream]
        assert kinds[-2:] == ["error", "response.failed"]
        with pytest.raises(RuntimeError, match="response.completed"):
            stream.get_final_response()


def test_latency_and_ttft(oai: openai.OpenAI) -> None:
    started = time.perf_counter()
    oai.chat.completions.create(
        model="gpt-4o", messages=HELLO, extra_headers={"x-fake-latency-ms": "150"}
    )
    assert time.perf_counter() - started >= 0.15
    started = time.perf_counter()
    stream = oai.chat.completions.create(
        model="gpt-4o",
        messages=HELLO,
        stream=True,
        extra_headers={"x-fake-ttft-ms": "120", "x-fake-latency-ms": "200"},
    )
    with stream:
        arrivals = [(time.perf_counter() - started, c.choices[0].delta.content) for c in stream]
    first_content = next(t for t, content in arrivals if content)
    assert 0.12 <= first_content < 0.19
    assert arrivals[-1][0] >= 0.2


def test_size_header(oai: openai.OpenAI) -> None:
    big = oai.chat.completions.create(
        model="gpt-4o", messages=HELLO, extra_headers={"x-fake-size": "5000000"}
    )
    content = big.choices[0].message.content
    assert content is not None and len(content.encode()) == 5_000_000
    stream = oai.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, extra_headers={"x-fake-size": "100000"}
    )
    with stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert len(text.encode()) == 100_000
