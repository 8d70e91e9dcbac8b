"""Answers translated back, read by the official SDKs: OpenAI's reading Anthropic's answers and
Anthropic's reading OpenAI's, whole and streamed (see conftest's bridge); and what is refused.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import anthropic
import openai
import orjson
import pytest

from mirror.errors import Untranslatable
from mirror.translate.request import translate_request
from mirror.translate.response import translate_response, translate_served_request
from tests.mirror.translate.conftest import CANDIDATE, CHAT, CLOCK, MESSAGES, TEXT, WEATHER, Bridge

JSON = dict[str, Any]
ASK = [{"role": "user", "content": "Weather in Oslo?"}]
CHAT_TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {"type": "object", "properties": {}},
        },
    }
    for name in ("get_weather", "get_time", "ping")
]
MESSAGES_TOOLS: Any = [
    {"name": name, "input_schema": {"type": "object", "properties": {}}}
    for name in ("get_weather", "get_time", "ping")
]


def reply(name: str) -> Any:
    return {"x-test-reply": name}


def chat(bridge: Bridge, name: str, headers: Any = None, **options: Any) -> Any:
    return bridge.openai().chat.completions.create(
        model="gpt-4o",
        messages=ASK,
        tools=CHAT_TOOLS,
        extra_headers={**reply(name), **(headers or {})},
        **options,
    )


def message(bridge: Bridge, name: str, **options: Any) -> Any:
    return bridge.anthropic().messages.create(
        model="claude-app",
        max_tokens=1024,
        messages=ASK,
        tools=MESSAGES_TOOLS,
        extra_headers=reply(name),
        **options,
    )


# --- the OpenAI SDK reads Anthropic's answers -------------------------------------------------


def test_openai_sdk_reads_an_anthropic_text_answer(bridge: Bridge) -> None:
    completion = chat(bridge, "text")
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-") and not completion.id.startswith("chatcmpl-msg")
    assert completion.model == CANDIDATE[MESSAGES]
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == TEXT
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    # Anthropic counts 120 uncached and 100 read apart; Chat's prompt includes the cache.
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (220, 9, 229)
    assert usage.prompt_tokens_details.cached_tokens == 100


def test_openai_sdk_reads_anthropic_tool_calls(bridge: Bridge) -> None:
    completion = chat(bridge, "tools")
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        (WEATHER[0], json.loads(WEATHER[1])),
        (CLOCK[0], json.loads(CLOCK[1])),
    ]
    assert all(c.id.startswith("toolu_") and c.type == "function" for c in calls)
    assert len({c.id for c in calls}) == 2


def test_openai_sdk_reads_text_and_a_tool_call(bridge: Bridge) -> None:
    choice = chat(bridge, "text+tool").choices[0]
    assert choice.message.content == "Let me check."
    assert [c.function.name for c in choice.message.tool_calls or []] == ["get_weather"]
    assert choice.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("name", "finish"),
    [("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")],
)
def test_anthropic_stop_reasons_map_to_finish_reasons(
    bridge: Bridge, name: str, finish: str
) -> None:
    assert chat(bridge, name).choices[0].finish_reason == finish
    chunks = list(chat(bridge, name, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == [finish]


def test_openai_sdk_streams_an_anthropic_answer_with_usage(bridge: Bridge) -> None:
    chunks = list(chat(bridge, "text", stream=True, stream_options={"include_usage": True}))
    first, *middle, finish, last = chunks
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert finish.choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (220, 9)
    assert {c.id for c in chunks} == {first.id} and first.id.startswith("chatcmpl-")
    assert {c.model for c in chunks} == {CANDIDATE[MESSAGES]}


def test_without_include_usage_no_usage_chunk(bridge: Bridge) -> None:
    chunks = list(chat(bridge, "text", stream=True))
    assert all(c.choices and c.usage is None for c in chunks)
    assert bridge.raw and b"message_stop" in b"".join(bridge.raw)


def test_openai_sdk_streams_anthropic_tool_calls(bridge: Bridge) -> None:
    chunks = list(chat(bridge, "text+tool", stream=True))
    calls = [t for c in chunks for t in c.choices[0].delta.tool_calls or []]
    assert calls[0].index == 0 and calls[0].id and calls[0].id.startswith("toolu_")
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    arguments = "".join(t.function.arguments or "" for t in calls if t.function)
    assert json.loads(arguments) == json.loads(WEATHER[1])
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Let me check."


def test_openai_stream_helper_final_completion(bridge: Bridge) -> None:
    client = bridge.openai()
    with client.chat.completions.stream(
        model="gpt-4o",
        messages=ASK,
        tools=CHAT_TOOLS,
        extra_headers=reply("tools"),
        stream_options={"include_usage": True},
    ) as stream:
        completion = stream.get_final_completion()
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [
        json.loads(WEATHER[1]),
        json.loads(CLOCK[1]),
    ]
    assert completion.usage is not None and completion.usage.completion_tokens == 30
    with client.chat.completions.stream(
        model="gpt-4o", messages=ASK, extra_headers=reply("text")
    ) as stream:
        assert stream.get_final_completion().choices[0].message.content == TEXT


def test_a_tool_use_without_input_fragments_has_empty_object_arguments(bridge: Bridge) -> None:
    calls = chat(bridge, "no-args").choices[0].message.tool_calls or []
    assert [c.function.arguments for c in calls] == ["{}"]
    streamed = [
        t for c in chat(bridge, "no-args", stream=True) for t in c.choices[0].delta.tool_calls or []
    ]
    assert json.loads("".join(t.function.arguments or "" for t in streamed if t.function)) == {}


def test_an_anthropic_stream_error_raises_in_the_openai_sdk(bridge: Bridge) -> None:
    stream = chat(bridge, "text", {"x-fake-stream-error": "event"}, stream=True)
    with pytest.raises(openai.APIError, match="Overloaded"):
        list(stream)


# --- the Anthropic SDK reads OpenAI's answers -------------------------------------------------


def test_anthropic_sdk_reads_an_openai_text_answer(bridge: Bridge) -> None:
    answer = message(bridge, "text")
    assert answer.type == "message" and answer.role == "assistant"
    assert answer.id.startswith("msg_") and "chatcmpl" not in answer.id
    assert answer.model == CANDIDATE[CHAT]
    assert [b.type for b in answer.content] == ["text"]
    assert answer.content[0].text == TEXT  # type: ignore[union-attr]
    assert answer.stop_reason == "end_turn" and answer.stop_sequence is None
    # OpenAI's 120 prompt tokens include the 100 cached: Anthropic counts them apart.
    usage = answer.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (20, 100, 9)


def test_anthropic_sdk_reads_openai_tool_calls(bridge: Bridge) -> None:
    answer = message(bridge, "text+tool")
    assert answer.stop_reason == "tool_use"
    text, tool = answer.content
    assert text.type == "text" and text.text == "Let me check."
    assert tool.type == "tool_use" and tool.name == "get_weather"
    assert tool.input == json.loads(WEATHER[1]) and tool.id.startswith("call_")


@pytest.mark.parametrize(
    ("name", "stop"),
    [("max_tokens", "max_tokens"), ("stop_sequence", "end_turn"), ("refusal", "refusal")],
)
def test_openai_finish_reasons_map_to_stop_reasons(bridge: Bridge, name: str, stop: str) -> None:
    assert message(bridge, name).stop_reason == stop
    with bridge.anthropic().messages.stream(
        model="claude-app", max_tokens=64, messages=ASK, extra_headers=reply(name)
    ) as stream:
        assert stream.get_final_message().stop_reason == stop


def test_anthropic_stream_helper_reads_an_openai_stream(bridge: Bridge) -> None:
    with bridge.anthropic().messages.stream(
        model="claude-app", max_tokens=1024, messages=ASK, extra_headers=reply("text")
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert final.content[0].text == TEXT  # type: ignore[union-attr]
    assert final.model == CANDIDATE[CHAT] and final.id.startswith("msg_")
    assert final.stop_reason == "end_turn"
    # message_start reported 0 input tokens; the message_delta totals replaced them.
    usage = final.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (20, 100, 9)


def test_anthropic_stream_helper_reads_openai_tool_calls(bridge: Bridge) -> None:
    with bridge.anthropic().messages.stream(
        model="claude-app",
        max_tokens=1024,
        messages=ASK,
        tools=MESSAGES_TOOLS,
        extra_headers=reply("tools"),
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.type, b.name, b.input) for b in final.content] == [  # type: ignore[union-attr]
        ("tool_use", WEATHER[0], json.loads(WEATHER[1])),
        ("tool_use", CLOCK[0], json.loads(CLOCK[1])),
    ]
    assert final.usage.output_tokens == 30
    with bridge.anthropic().messages.stream(
        model="claude-app",
        max_tokens=64,
        messages=ASK,
        tools=MESSAGES_TOOLS,
        extra_headers=reply("no-args"),
    ) as stream:
        assert [b.input for b in stream.get_final_message().content] == [{}]  # type: ignore[union-attr]


def test_an_openai_stream_error_raises_in_the_anthropic_sdk(bridge: Bridge) -> None:
    headers = {**reply("text"), "x-fake-stream-error": "event"}
    with pytest.raises(anthropic.APIStatusError, match="server had an error"):
        with bridge.anthropic().messages.stream(
            model="claude-app", max_tokens=1024, messages=ASK, extra_headers=headers
        ) as stream:
            stream.get_final_message()


# --- what is refused --------------------------------------------------------------------------

ANTHROPIC_ANSWER: JSON = {
    "id": "msg_01abc",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "text", "text": "Hi"},
        {"type": "tool_use", "id": "toolu_01x", "name": "f", "input": {"a": 1}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 4, "service_tier": "standard"},
}
CHAT_ANSWER: JSON = {
    "id": "chatcmpl-abc",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4.1",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hi",
                "refusal": None,
                "annotations": [],
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    "system_fingerprint": "fp_1",
}


def from_anthropic(payload: JSON) -> JSON:
    out = translate_response(
        orjson.dumps(payload), source=MESSAGES, target=CHAT, model="m", created=7
    )
    result: JSON = orjson.loads(out)
    return result


def from_chat(payload: JSON) -> JSON:
    out = translate_response(orjson.dumps(payload), source=CHAT, target=MESSAGES, model="m")
    result: JSON = orjson.loads(out)
    return result


def test_the_reference_answers_translate_both_ways() -> None:
    chat_answer = from_anthropic(ANTHROPIC_ANSWER)
    assert chat_answer["id"] == "chatcmpl-01abc" and chat_answer["created"] == 7
    assert chat_answer["choices"][0]["message"]["tool_calls"] == [
        {"id": "toolu_01x", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    ]
    back = from_chat(chat_answer)
    assert back["id"] == "msg_01abc"
    assert back["content"] == ANTHROPIC_ANSWER["content"]
    assert back["stop_reason"] == "tool_use"
    assert from_chat(CHAT_ANSWER)["content"][1] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "f",
        "input": {"a": 1},
    }


def test_usage_keeps_cache_reads_and_writes_both_ways() -> None:
    answer = copy.deepcopy(ANTHROPIC_ANSWER)
    answer["usage"] = {
        "input_tokens": 10,
        "cache_read_input_tokens": 200,
        "cache_creation_input_tokens": 50,
        "output_tokens": 5,
        "output_tokens_details": {"thinking_tokens": 2},
    }
    usage = from_anthropic(answer)["usage"]
    assert usage == {
        "prompt_tokens": 260,
        "completion_tokens": 5,
        "total_tokens": 265,
        "prompt_tokens_details": {"cached_tokens": 200, "cache_write_tokens": 50},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    completion = copy.deepcopy(CHAT_ANSWER)
    completion["usage"] = usage
    assert from_chat(completion)["usage"] == answer["usage"]


def test_the_same_api_needs_no_translation() -> None:
    body = orjson.dumps(CHAT_ANSWER)
    assert translate_response(body, source=CHAT, target=CHAT, model="m") is body


def changed(base: JSON, path: tuple[Any, ...], value: Any) -> JSON:
    out = copy.deepcopy(base)
    target = out
    for key in path[:-1]:
        target = target[key]
    if isinstance(target, list) and path[-1] == len(target):
        target.append(value)
    else:
        target[path[-1]] = value
    return out


THINKING = {"type": "thinking", "thinking": "hmm", "signature": "s"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (changed(ANTHROPIC_ANSWER, ("content", 0), THINKING), "content[0]: 'thinking' blocks"),
        (
            changed(ANTHROPIC_ANSWER, ("content", 0), {"type": "redacted_thinking", "data": "x"}),
            "content[0]: 'redacted_thinking' blocks",
        ),
        (
            changed(
                ANTHROPIC_ANSWER,
                ("content", 1),
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
            ),
            "content[1]: 'server_tool_use' blocks",
        ),
        (
            changed(
                ANTHROPIC_ANSWER,
                ("content", 1),
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            ),
            "content[1]: 'web_search_tool_result' blocks",
        ),
        (
            changed(ANTHROPIC_ANSWER, ("content", 0, "citations"), [{"type": "char_location"}]),
            "content[0].citations",
        ),
        (
            changed(ANTHROPIC_ANSWER, ("content", 2), {"type": "text", "text": "after"}),
            "content[2]: text after a tool_use",
        ),
        (
            changed(ANTHROPIC_ANSWER, ("content", 1, "caller"), {"type": "code_execution"}),
            "content[1].caller",
        ),
        (changed(ANTHROPIC_ANSWER, ("stop_reason",), "pause_turn"), "stop_reason='pause_turn'"),
        (changed(ANTHROPIC_ANSWER, ("container",), {"id": "c"}), "container"),
        (changed(ANTHROPIC_ANSWER, ("novelty",), 1), "novelty: has no Chat Completions"),
        (changed(ANTHROPIC_ANSWER, ("type",), "error"), "type='error'"),
        (changed(ANTHROPIC_ANSWER, ("content",), 3), "malformed answer"),
    ],
)
def test_untranslatable_anthropic_answers_name_the_field(payload: JSON, reason: str) -> None:
    with pytest.raises(Untranslatable) as caught:
        from_anthropic(payload)
    assert reason in caught.value.reason


CHOICE = CHAT_ANSWER["choices"][0]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (changed(CHAT_ANSWER, ("choices",), [CHOICE, {**CHOICE, "index": 1}]), "choices: 2"),
        (changed(CHAT_ANSWER, ("choices",), []), "choices: 0"),
        (changed(CHAT_ANSWER, ("choices", 0, "logprobs"), {"content": []}), "choices[0].logprobs"),
        (
            changed(CHAT_ANSWER, ("choices", 0, "message", "refusal"), "No."),
            "choices[0].message.refusal",
        ),
        (
            changed(CHAT_ANSWER, ("choices", 0, "message", "audio"), {"id": "a", "data": "x"}),
            "choices[0].message.audio",
        ),
        (
            changed(CHAT_ANSWER, ("choices", 0, "message", "annotations"), [{"type": "url"}]),
            "choices[0].message.annotations",
        ),
        (
            changed(CHAT_ANSWER, ("choices", 0, "finish_reason"), "function_call"),
            "finish_reason='function_call'",
        ),
        (
            changed(
                CHAT_ANSWER,
                ("choices", 0, "message", "tool_calls", 0, "function", "arguments"),
                "[1]",
            ),
            "choices[0].message.tool_calls[0].function.arguments: not a JSON object",
        ),
        (
            changed(CHAT_ANSWER, ("choices", 0, "message", "tool_calls", 0, "type"), "custom"),
            "choices[0].message.tool_calls[0]: 'custom' tool calls",
        ),
        (
            changed(CHAT_ANSWER, ("choices", 0, "message", "tool_calls", 0, "id"), "call 1"),
            "choices[0].message.tool_calls[0].id",
        ),
        (changed(CHAT_ANSWER, ("moderation",), {"type": "x"}), "moderation"),
        (changed(CHAT_ANSWER, ("usage",), None), "usage: missing"),
    ],
)
def test_untranslatable_openai_answers_name_the_field(payload: JSON, reason: str) -> None:
    with pytest.raises(Untranslatable) as caught:
        from_chat(payload)
    assert reason in caught.value.reason


def test_a_body_that_is_not_json_is_untranslatable() -> None:
    with pytest.raises(Untranslatable, match="body: not JSON"):
        translate_response(b"\x1f\x8b gzip", source=CHAT, target=MESSAGES, model="m")


def test_a_served_request_refuses_logprobs_the_app_would_miss() -> None:
    body: JSON = {"model": "gpt-4o", "messages": ASK, "logprobs": True, "top_logprobs": 2}
    with pytest.raises(Untranslatable, match="logprobs"):
        translate_served_request(body, source=CHAT, target=MESSAGES, model="claude")
    plain: JSON = {"model": "gpt-4o", "messages": ASK, "stream": True}
    assert translate_served_request(
        plain, source=CHAT, target=MESSAGES, model="claude"
    ) == translate_request(plain, source=CHAT, target=MESSAGES, model="claude")
