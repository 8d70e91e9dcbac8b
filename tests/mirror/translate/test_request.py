"""Request translation (Chat Completions <-> Anthropic Messages) and arm transforms.

Translated bodies are checked against the SDKs' own request types twice: structurally, against
the TypedDicts (`anthropic.types.MessageCreateParams*`, `openai.types.chat.CompletionCreateParams*`)
with unknown keys refused, and on the wire, by sending them through the real SDK clients to an
`httpx2.MockTransport` and asserting the SDK sent exactly the body we built.
"""

from __future__ import annotations

import collections.abc
import copy
import json
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest
import typing_extensions
from anthropic.types import message_create_params as anthropic_params
from openai.types.chat import completion_create_params as openai_params

from mirror.errors import ConfigError, MirrorError, Untranslatable
from mirror.events import Api
from mirror.translate.request import (
    DEFAULT_MAX_TOKENS,
    anthropic_to_openai_chat,
    apply_arm_transforms,
    openai_chat_to_anthropic,
    translate_request,
)

JSON = dict[str, Any]

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ=="
WEATHER_SCHEMA: JSON = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
ANSWER_SCHEMA: JSON = {
    "type": "object",
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
    "additionalProperties": False,
}

#: A Chat Completions request in the form a round trip gives back unchanged.
CHAT_REQUEST: JSON = {
    "model": "gpt-primary",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather where these were taken?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Zürich"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
        {"role": "user", "content": "Summarise as JSON."},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather by city",
                "parameters": WEATHER_SCHEMA,
                "strict": True,
            },
        }
    ],
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": ANSWER_SCHEMA, "strict": True},
    },
    "stop": ["\n\nEND"],
    "max_completion_tokens": 512,
    "stream": True,
    "stream_options": {"include_usage": True},
    "user": "user-123",
}

#: An Anthropic Messages request in the form a round trip gives back unchanged.
ANTHROPIC_REQUEST: JSON = {
    "model": "claude-primary",
    "max_tokens": 512,
    "system": [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Answer in French."},
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
        {"role": "assistant", "content": "Probably rain."},
        {"role": "system", "content": "From now on, answer in English."},
        {"role": "user", "content": "Thanks."},
    ],
    "tools": [
        {"name": "get_weather", "description": "Current weather", "input_schema": WEATHER_SCHEMA}
    ],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "output_config": {"format": {"type": "json_schema", "schema": ANSWER_SCHEMA}},
    "stop_sequences": ["\n\nEND", "STOP"],
    "temperature": 0.3,
    "stream": True,
    "metadata": {"user_id": "user-123"},
}


def to_anthropic(body: JSON, **options: Any) -> JSON:
    return openai_chat_to_anthropic(body, model="claude-candidate", **options)


def to_chat(body: JSON) -> JSON:
    return anthropic_to_openai_chat(body, model="gpt-candidate")


def chat(*messages: JSON, **params: Any) -> JSON:
    return {"model": "gpt-primary", "messages": list(messages), **params}


def claude(*messages: JSON, **params: Any) -> JSON:
    return {"model": "claude-primary", "max_tokens": 100, "messages": list(messages), **params}


USER: JSON = {"role": "user", "content": "hi"}


# --- conformance with the SDK request types ----------------------------------------------------


def conforms(value: Any, tp: Any, path: str = "body") -> None:
    """Assert `value` is accepted by the SDK request type `tp`; TypedDicts refuse unknown keys."""
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return
    if typing_extensions.is_typeddict(tp):
        assert isinstance(value, dict), f"{path}: not an object"
        hints = typing.get_type_hints(tp, include_extras=True)
        # The SDKs' postponed annotations hide `Required[...]` from `__required_keys__`.
        marked = {key: typing.get_origin(hint) for key, hint in hints.items()}
        required = {key for key, mark in marked.items() if mark is typing_extensions.Required}
        optional = {key for key, mark in marked.items() if mark is typing_extensions.NotRequired}
        missing = (set(tp.__required_keys__) | required) - optional - value.keys()
        assert not missing, f"{path}: {tp.__name__} misses {missing}"
        for key, item in value.items():
            assert key in hints, f"{path}.{key}: not a field of {tp.__name__}"
            conforms(item, hints[key], f"{path}.{key}")
        return
    if origin in (typing.Union, types.UnionType):
        failures = []
        for member in typing.get_args(tp):
            try:
                conforms(value, member, path)
            except AssertionError as exc:
                failures.append(str(exc))
            else:
                return
        raise AssertionError(f"{path}: matches no member: {failures}")
    if origin in (typing_extensions.Required, typing_extensions.NotRequired, typing.Annotated):
        conforms(value, typing.get_args(tp)[0], path)
    elif origin is typing.Literal:
        assert value in typing.get_args(tp), f"{path}: {value!r} not in {typing.get_args(tp)}"
    elif origin in (list, collections.abc.Iterable, collections.abc.Sequence) or (
        getattr(origin, "__name__", "") == "SequenceNotStr"
    ):
        assert isinstance(value, list), f"{path}: not a list"
        for i, item in enumerate(value):
            conforms(item, typing.get_args(tp)[0], f"{path}[{i}]")
    elif origin is dict:
        assert isinstance(value, dict), f"{path}: not an object"
        for key, item in value.items():
            conforms(item, typing.get_args(tp)[1], f"{path}.{key}")
    elif tp is type(None):
        assert value is None, f"{path}: not null"
    elif tp is float:
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{path}: number"
    elif tp in (str, int, bool):
        assert type(value) is tp, f"{path}: not a {tp.__name__}"
    else:
        raise AssertionError(f"{path}: cannot check against {tp!r}")


def anthropic_type(body: JSON) -> Any:
    if body.get("stream"):
        return anthropic_params.MessageCreateParamsStreaming
    return anthropic_params.MessageCreateParamsNonStreaming


def openai_type(body: JSON) -> Any:
    if body.get("stream"):
        return openai_params.CompletionCreateParamsStreaming
    return openai_params.CompletionCreateParamsNonStreaming


def _echo(
    stream: bool, reply: JSON, seen: list[JSON]
) -> Callable[[httpx2.Request], httpx2.Response]:
    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        if stream:
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=b"")
        return httpx2.Response(200, json=reply)

    return handler


ANTHROPIC_REPLY: JSON = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-candidate",
    "content": [],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 1, "output_tokens": 1},
}
OPENAI_REPLY: JSON = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-candidate",
    "choices": [],
}
#: Parameters the SDK 2.x signature no longer has; they only travel through `extra_body`.
ANTHROPIC_EXTRA = ("temperature", "top_p")


def sent_by_anthropic_sdk(body: JSON) -> JSON:
    seen: list[JSON] = []
    transport = httpx2.MockTransport(_echo(bool(body.get("stream")), ANTHROPIC_REPLY, seen))
    kwargs = dict(body)
    extra = {key: kwargs.pop(key) for key in ANTHROPIC_EXTRA if key in kwargs}
    with anthropic.Anthropic(
        api_key="k",
        base_url="http://x",
        http_client=httpx2.Client(transport=transport),
        max_retries=0,
    ) as client:
        result = client.messages.create(**kwargs, extra_body=extra or None)
        if isinstance(result, anthropic.Stream):
            result.close()
    return seen[0]


def sent_by_openai_sdk(body: JSON) -> JSON:
    seen: list[JSON] = []
    transport = httpx2.MockTransport(_echo(bool(body.get("stream")), OPENAI_REPLY, seen))
    with openai.OpenAI(
        api_key="k",
        base_url="http://x/v1",
        http_client=httpx2.Client(transport=transport),
        max_retries=0,
    ) as client:
        result = client.chat.completions.create(**body)
        if isinstance(result, openai.Stream):
            result.close()
    return seen[0]


def assert_valid_anthropic(body: JSON) -> None:
    conforms({k: v for k, v in body.items() if k not in ANTHROPIC_EXTRA}, anthropic_type(body))
    assert sent_by_anthropic_sdk(body) == body


def assert_valid_openai(body: JSON) -> None:
    conforms(body, openai_type(body))
    assert sent_by_openai_sdk(body) == body


def test_conformance_checker_refuses_what_the_sdk_types_do_not_have() -> None:
    non_streaming = anthropic_params.MessageCreateParamsNonStreaming
    conforms(claude(USER), non_streaming)
    bad: list[tuple[JSON, Any, str]] = [
        (claude(USER, temperature=0.5), non_streaming, "temperature"),
        ({"model": "c", "messages": [USER]}, non_streaming, "max_tokens"),
        (claude({"role": "user", "content": [{"type": "image", "source": {}}]}), non_streaming, ""),
        (claude(USER, tool_choice={"type": "sometimes"}), non_streaming, "tool_choice"),
        (claude(USER, stream=True), non_streaming, "stream"),
        (
            chat({"role": "robot", "content": "x"}),
            openai_params.CompletionCreateParamsNonStreaming,
            "",
        ),
        (chat(USER, stop=[1]), openai_params.CompletionCreateParamsNonStreaming, "stop"),
    ]
    for body, request_type, where in bad:
        with pytest.raises(AssertionError, match=where or None):
            conforms(body, request_type)


# --- the SDKs accept every translated body ------------------------------------------------------


def _anthropic_bodies() -> Iterator[Any]:
    yield pytest.param(to_anthropic(CHAT_REQUEST), id="streaming")
    non_streaming = {**CHAT_REQUEST, "stream": False, "stream_options": None}
    yield pytest.param(to_anthropic(non_streaming), id="non-streaming")
    mid_system = chat(
        {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
        USER,
        {"role": "assistant", "content": "Hello."},
        {"role": "system", "content": "Now be brief."},
        USER,
        temperature=0.5,
        top_p=0.9,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        tools=CHAT_REQUEST["tools"],
    )
    yield pytest.param(
        to_anthropic(mid_system, sampling="keep", mid_conversation_system=True),
        id="mid-system-and-sampling",
    )
    no_tools = chat(USER, tool_choice="none", tools=CHAT_REQUEST["tools"])
    yield pytest.param(to_anthropic(no_tools), id="tool-choice-none")


def _openai_bodies() -> Iterator[Any]:
    yield pytest.param(to_chat(ANTHROPIC_REQUEST), id="streaming")
    yield pytest.param(to_chat({**ANTHROPIC_REQUEST, "stream": False}), id="non-streaming")
    named = claude(
        USER,
        tool_choice={"type": "tool", "name": "get_weather"},
        tools=ANTHROPIC_REQUEST["tools"],
        top_p=0.8,
    )
    yield pytest.param(to_chat(named), id="named-tool")
    required = claude(USER, tool_choice={"type": "any"}, tools=ANTHROPIC_REQUEST["tools"])
    yield pytest.param(to_chat(required), id="required-tool")


@pytest.mark.parametrize("body", list(_anthropic_bodies()))
def test_anthropic_sdk_sends_the_translated_body_unchanged(body: JSON) -> None:
    assert_valid_anthropic(body)


@pytest.mark.parametrize("body", list(_openai_bodies()))
def test_openai_sdk_sends_the_translated_body_unchanged(body: JSON) -> None:
    assert_valid_openai(body)


def test_the_source_requests_are_valid_for_their_own_sdk() -> None:
    assert_valid_openai(CHAT_REQUEST)
    assert_valid_anthropic(ANTHROPIC_REQUEST)


# --- round trips ------------------------------------------------------------------------------


def test_chat_round_trip_gives_back_the_request() -> None:
    there = to_anthropic(CHAT_REQUEST)
    back = anthropic_to_openai_chat(there, model="gpt-primary")
    assert back == CHAT_REQUEST


def test_anthropic_round_trip_gives_back_the_request() -> None:
    there = to_chat(ANTHROPIC_REQUEST)
    back = openai_chat_to_anthropic(
        there, model="claude-primary", sampling="keep", mid_conversation_system=True
    )
    assert back == ANTHROPIC_REQUEST


def test_chat_round_trip_normalises_equivalent_forms() -> None:
    body = chat(
        {"role": "developer", "content": "Be kind."},
        USER,
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Let me look."}],
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
            ],
            "refusal": None,
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        tools=[{"type": "function", "function": {"name": "f"}}],
        parallel_tool_calls=False,
        stop="END",
        max_tokens=50,
        stream=True,
    )
    back = anthropic_to_openai_chat(to_anthropic(body), model="gpt-primary")
    assert back == chat(
        {"role": "system", "content": "Be kind."},
        USER,
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        max_completion_tokens=50,
        tools=[
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
            }
        ],
        tool_choice="auto",
        parallel_tool_calls=False,
        stop=["END"],
        stream=True,
        stream_options={"include_usage": True},
    )


def test_translators_do_not_mutate_their_input() -> None:
    chat_body, claude_body = copy.deepcopy(CHAT_REQUEST), copy.deepcopy(ANTHROPIC_REQUEST)
    to_anthropic(chat_body)["messages"][1]["content"].clear()
    to_chat(claude_body)["messages"][0]["content"].clear()
    assert chat_body == CHAT_REQUEST
    assert claude_body == ANTHROPIC_REQUEST


# --- Chat Completions -> Anthropic: messages --------------------------------------------------


def test_single_string_system_message_becomes_a_system_string() -> None:
    out = to_anthropic(chat({"role": "system", "content": "Be kind."}, USER))
    assert out["system"] == "Be kind."
    assert out["messages"] == [USER]


def test_several_system_and_developer_messages_become_text_blocks_in_order() -> None:
    out = to_anthropic(
        chat(
            {"role": "system", "content": "A"},
            {
                "role": "developer",
                "content": [
                    {"type": "text", "text": "B", "prompt_cache_breakpoint": {"mode": "explicit"}},
                    {"type": "text", "text": "C"},
                ],
            },
            USER,
        )
    )
    assert out["system"] == [
        {"type": "text", "text": "A"},
        {"type": "text", "text": "B"},
        {"type": "text", "text": "C"},
    ]


def test_no_system_message_means_no_system() -> None:
    assert "system" not in to_anthropic(chat(USER))


def test_system_message_mid_conversation_is_refused_by_default() -> None:
    body = chat(
        USER, {"role": "assistant", "content": "ok"}, {"role": "system", "content": "X"}, USER
    )
    with pytest.raises(Untranslatable, match=r"messages\[2\].*mid-conversation"):
        to_anthropic(body)
    out = to_anthropic(body, mid_conversation_system=True)
    assert out["messages"][2] == {"role": "system", "content": "X"}
    assert "system" not in out


def test_only_system_messages_is_refused() -> None:
    with pytest.raises(Untranslatable, match="only system"):
        to_anthropic(chat({"role": "system", "content": "X"}))


def test_string_and_part_contents_keep_their_form() -> None:
    parts = {
        "role": "user",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }
    out = to_anthropic(chat(USER, {"role": "assistant", "content": "yo"}, parts))
    assert out["messages"] == [
        USER,
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]


def test_consecutive_same_role_messages_are_kept_as_anthropic_combines_them() -> None:
    out = to_anthropic(chat(USER, USER))
    assert out["messages"] == [USER, USER]


def test_consecutive_tool_results_and_the_follow_up_share_one_user_turn() -> None:
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        for i in (1, 2)
    ]
    out = to_anthropic(
        chat(
            USER,
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": ""},
            {"role": "user", "content": "next"},
        )
    )
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
            {"type": "tool_use", "id": "c2", "name": "f", "input": {}},
        ],
    }
    assert out["messages"][2:] == [
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "one"},
                {"type": "tool_result", "tool_use_id": "c2"},
                {"type": "text", "text": "next"},
            ],
        }
    ]


def _image(url: str, **extra: Any) -> JSON:
    return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url, **extra}}]}


def test_data_url_image_becomes_base64_source() -> None:
    out = to_anthropic(chat(_image(f"data:image/png;base64,{PNG}", detail="auto")))
    assert out["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    ]


def test_http_image_becomes_url_source() -> None:
    out = to_anthropic(chat(_image("https://example.com/a.png")))
    source = out["messages"][0]["content"][0]["source"]
    assert source == {"type": "url", "url": "https://example.com/a.png"}


@pytest.mark.parametrize(
    ("url", "extra", "reason"),
    [
        ("data:image/tiff;base64,AAAA", {}, "image/tiff"),
        ("ftp://example.com/a.png", {}, "neither"),
        ("https://example.com/a.png", {"detail": "high"}, "detail"),
        ("https://example.com/a.png", {"detail": "low"}, "detail"),
    ],
)
def test_images_without_a_faithful_source_are_refused(url: str, extra: JSON, reason: str) -> None:
    with pytest.raises(Untranslatable, match=reason):
        to_anthropic(chat(_image(url, **extra)))


@pytest.mark.parametrize(
    "part",
    [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,AAAA", "filename": "a"},
        },
    ],
)
def test_audio_and_file_parts_are_refused(part: JSON) -> None:
    with pytest.raises(Untranslatable, match=r"messages\[0\].content\[0\]"):
        to_anthropic(chat({"role": "user", "content": [part]}))


def _call(arguments: str, call_id: str = "call_1", kind: str = "function") -> JSON:
    call = {"id": call_id, "type": kind, "function": {"name": "f", "arguments": arguments}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def test_tool_call_arguments_become_an_input_object() -> None:
    out = to_anthropic(
        chat(
            USER,
            _call('{"x": [1, 2]}'),
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        )
    )
    assert out["messages"][1]["content"][0]["input"] == {"x": [1, 2]}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (_call("{not json"), "not valid JSON"),
        (_call(""), "not valid JSON"),
        (_call("[1, 2]"), "not a JSON object"),
        (_call("{}", call_id="call.1"), "tool_use id"),
        (_call("{}", kind="custom"), "custom"),
    ],
)
def test_tool_calls_without_a_faithful_tool_use_are_refused(message: JSON, reason: str) -> None:
    with pytest.raises(Untranslatable, match=reason):
        to_anthropic(
            chat(USER, message, {"role": "tool", "tool_call_id": "call_1", "content": "x"})
        )


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"role": "assistant", "content": None, "refusal": "I can't."}, "refusal"),
        ({"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]}, "refusal"),
        ({"role": "assistant", "content": "hi", "audio": {"id": "a1"}}, "audio"),
        ({"role": "user", "content": "hi", "name": "bob"}, "name"),
        ({"role": "function", "name": "f", "content": "x"}, "function"),
        (
            {
                "role": "assistant",
                "content": "x",
                "function_call": {"name": "f", "arguments": "{}"},
            },
            "function_call",
        ),
        ({"role": "assistant", "content": ""}, "empty assistant"),
        ({"role": "wizard", "content": "x"}, "unknown role"),
    ],
)
def test_message_features_without_counterpart_are_refused(message: JSON, reason: str) -> None:
    with pytest.raises(Untranslatable, match=reason):
        to_anthropic(chat(USER, message, USER))


def test_tool_result_with_text_parts_keeps_them_as_blocks() -> None:
    out = to_anthropic(
        chat(
            USER,
            _call("{}"),
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "r"}]},
        )
    )
    assert out["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "r"}]}
    ]


def test_a_final_assistant_message_would_be_a_prefill() -> None:
    with pytest.raises(Untranslatable, match="prefill"):
        to_anthropic(chat(USER, {"role": "assistant", "content": "The answer is"}))


# --- Chat Completions -> Anthropic: tools and parameters --------------------------------------


def test_function_tools_become_anthropic_tools() -> None:
    out = to_anthropic(
        chat(
            USER,
            tools=[
                CHAT_REQUEST["tools"][0],
                {"type": "function", "function": {"name": "now", "strict": False}},
            ],
        )
    )
    assert out["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather by city",
            "input_schema": WEATHER_SCHEMA,
            "strict": True,
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in out


def test_custom_tools_are_refused() -> None:
    tool = {"type": "custom", "custom": {"name": "grammar"}}
    with pytest.raises(Untranslatable, match="custom"):
        to_anthropic(chat(USER, tools=[tool]))


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice_is_mapped(choice: Any, expected: JSON) -> None:
    out = to_anthropic(chat(USER, tools=CHAT_REQUEST["tools"], tool_choice=choice))
    assert out["tool_choice"] == expected


def test_allowed_tools_choice_is_refused() -> None:
    choice = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}
    with pytest.raises(Untranslatable, match="allowed_tools"):
        to_anthropic(chat(USER, tools=CHAT_REQUEST["tools"], tool_choice=choice))


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", {"type": "any", "disable_parallel_tool_use": True}),
        ("none", {"type": "none"}),
    ],
)
def test_parallel_tool_calls_false_disables_parallel_tool_use(choice: Any, expected: JSON) -> None:
    out = to_anthropic(
        chat(USER, tools=CHAT_REQUEST["tools"], tool_choice=choice, parallel_tool_calls=False)
    )
    assert out["tool_choice"] == expected


def test_parallel_tool_calls_true_is_the_default() -> None:
    out = to_anthropic(chat(USER, tools=CHAT_REQUEST["tools"], parallel_tool_calls=True))
    assert "tool_choice" not in out


def test_strict_json_schema_becomes_output_config() -> None:
    out = to_anthropic(chat(USER, response_format=CHAT_REQUEST["response_format"]))
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": ANSWER_SCHEMA}}


@pytest.mark.parametrize(
    ("fmt", "reason"),
    [
        ({"type": "json_object"}, "JSON mode"),
        ({"type": "json_schema", "json_schema": {"name": "r", "schema": ANSWER_SCHEMA}}, "strict"),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": ANSWER_SCHEMA, "strict": False},
            },
            "strict",
        ),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "r",
                    "description": "d",
                    "schema": ANSWER_SCHEMA,
                    "strict": True,
                },
            },
            "description",
        ),
        ({"type": "json_schema", "json_schema": {"name": "r", "strict": True}}, "schema"),
        ({"type": "grammar"}, "unknown"),
    ],
)
def test_response_formats_without_counterpart_are_refused(fmt: JSON, reason: str) -> None:
    with pytest.raises(Untranslatable, match=reason):
        to_anthropic(chat(USER, response_format=fmt))


def test_text_response_format_is_the_default() -> None:
    assert "output_config" not in to_anthropic(chat(USER, response_format={"type": "text"}))


@pytest.mark.parametrize(("stop", "expected"), [("END", ["END"]), (["a", "b"], ["a", "b"])])
def test_stop_becomes_stop_sequences(stop: Any, expected: list[str]) -> None:
    assert to_anthropic(chat(USER, stop=stop))["stop_sequences"] == expected


@pytest.mark.parametrize(
    ("params", "options", "expected"),
    [
        ({"max_completion_tokens": 300}, {}, 300),
        ({"max_tokens": 200}, {}, 200),
        ({"max_tokens": 200, "max_completion_tokens": 200}, {}, 200),
        ({}, {}, DEFAULT_MAX_TOKENS),
        ({}, {"default_max_tokens": 1000}, 1000),
    ],
)
def test_max_tokens(params: JSON, options: JSON, expected: int) -> None:
    assert to_anthropic(chat(USER, **params), **options)["max_tokens"] == expected


def test_disagreeing_max_tokens_are_refused() -> None:
    with pytest.raises(Untranslatable, match="disagree"):
        to_anthropic(chat(USER, max_tokens=10, max_completion_tokens=20))


@pytest.mark.parametrize(
    ("params", "sampling", "expected"),
    [
        ({"temperature": 1}, "refuse", {}),
        ({"temperature": None, "top_p": 1.0}, "refuse", {}),
        ({"temperature": 0.2, "top_p": 0.5}, "drop", {}),
        ({"temperature": 0.2, "top_p": 0.5}, "keep", {"temperature": 0.2, "top_p": 0.5}),
        ({"temperature": 1.0}, "keep", {"temperature": 1.0}),
    ],
)
def test_sampling_policy(params: JSON, sampling: Any, expected: JSON) -> None:
    out = to_anthropic(chat(USER, **params), sampling=sampling)
    assert {k: out[k] for k in ("temperature", "top_p") if k in out} == expected


@pytest.mark.parametrize(
    ("params", "sampling", "reason"),
    [
        ({"temperature": 0.2}, "refuse", "no sampling parameters"),
        ({"temperature": 0}, "refuse", "no sampling parameters"),
        ({"top_p": 0.9}, "refuse", "no sampling parameters"),
        ({"temperature": 1.5}, "keep", "above Anthropic's range"),
    ],
)
def test_sampling_policy_refusals(params: JSON, sampling: Any, reason: str) -> None:
    with pytest.raises(Untranslatable, match=reason):
        to_anthropic(chat(USER, **params), sampling=sampling)


def test_stream_is_kept_and_stream_options_dropped() -> None:
    out = to_anthropic(chat(USER, stream=True, stream_options={"include_usage": True}))
    assert out["stream"] is True
    assert "stream_options" not in out
    assert "stream" not in to_anthropic(chat(USER, stream=False))


@pytest.mark.parametrize(
    ("params", "user_id"),
    [
        ({"user": "u1"}, "u1"),
        ({"safety_identifier": "s1"}, "s1"),
        ({"user": "u1", "safety_identifier": "s1"}, "s1"),
    ],
)
def test_end_user_id_becomes_metadata_user_id(params: JSON, user_id: str) -> None:
    assert to_anthropic(chat(USER, **params))["metadata"] == {"user_id": user_id}


@pytest.mark.parametrize(
    ("key", "neutral", "meaningful"),
    [
        ("n", 1, 2),
        ("logit_bias", {}, {"50256": -100}),
        ("presence_penalty", 0, 0.5),
        ("frequency_penalty", 0.0, -0.5),
        ("modalities", ["text"], ["text", "audio"]),
        ("verbosity", "medium", "low"),
    ],
)
def test_parameters_without_counterpart(key: str, neutral: Any, meaningful: Any) -> None:
    assert key not in to_anthropic(chat(USER, **{key: neutral}))
    assert key not in to_anthropic(chat(USER, **{key: None}))
    with pytest.raises(Untranslatable, match=key):
        to_anthropic(chat(USER, **{key: meaningful}))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("reasoning_effort", "low"),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("moderation", {"model": "omni-moderation-latest"}),
        ("web_search_options", {"search_context_size": "low"}),
        ("functions", [{"name": "f"}]),
        ("function_call", "auto"),
        ("some_future_parameter", True),
    ],
)
def test_parameters_that_change_the_answer_are_refused(key: str, value: Any) -> None:
    with pytest.raises(Untranslatable, match=key):
        to_anthropic(chat(USER, **{key: value}))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("store", True),
        ("metadata", {"feature": "search"}),
        ("service_tier", "priority"),
        ("prompt_cache_key", "k"),
        ("prompt_cache_retention", "24h"),
        ("prompt_cache_options", {"mode": "explicit"}),
        ("seed", 42),
        ("logprobs", True),
        ("top_logprobs", 5),
        ("prediction", {"type": "content", "content": "draft"}),
    ],
)
def test_harmless_parameters_are_dropped(key: str, value: Any) -> None:
    out = to_anthropic(chat(USER, **{key: value}))
    assert out == {
        "model": "claude-candidate",
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [USER],
    }


# --- Anthropic -> Chat Completions: messages --------------------------------------------------


def test_system_string_becomes_a_system_message() -> None:
    out = to_chat(claude(USER, system="Be kind."))
    assert out["messages"] == [{"role": "system", "content": "Be kind."}, USER]


def test_system_blocks_become_text_parts_without_cache_control() -> None:
    system = [
        {"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "B"},
    ]
    out = to_chat(claude(USER, system=system))
    assert out["messages"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
    }


def test_system_with_citations_is_refused() -> None:
    system = [{"type": "text", "text": "A", "citations": [{"type": "char_location"}]}]
    with pytest.raises(Untranslatable, match="citations"):
        to_chat(claude(USER, system=system))


def test_mid_conversation_system_message_keeps_its_place() -> None:
    out = to_chat(
        claude(
            USER, {"role": "assistant", "content": "ok"}, {"role": "system", "content": "X"}, USER
        )
    )
    assert out["messages"][2] == {"role": "system", "content": "X"}


def test_tool_results_become_tool_messages_before_the_follow_up() -> None:
    content = [
        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "a"}]},
        {"type": "tool_result", "tool_use_id": "t2", "is_error": False},
        {"type": "text", "text": "and?"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}},
    ]
    out = to_chat(claude({"role": "user", "content": content}))
    assert out["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": [{"type": "text", "text": "a"}]},
        {"role": "tool", "tool_call_id": "t2", "content": ""},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "and?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
            ],
        },
    ]


def test_base64_image_becomes_a_data_url() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/webp", "data": "UklG"},
    }
    out = to_chat(claude({"role": "user", "content": [image]}))
    assert out["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklG"}}
    ]


TOOL_USE: JSON = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": "ü"}}


def test_tool_use_becomes_a_tool_call_with_json_arguments() -> None:
    out = to_chat(claude(USER, {"role": "assistant", "content": [TOOL_USE]}, USER))
    assert out["messages"][1] == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "f", "arguments": '{"q":"ü"}'},
            }
        ],
    }


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": True}],
            },
            "is_error",
        ),
        (
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "x"},
                    {"type": "tool_result", "tool_use_id": "t"},
                ],
            },
            "after other",
        ),
        (
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "image", "source": {}}],
                    }
                ],
            },
            "'image' content",
        ),
        (
            {
                "role": "user",
                "content": [{"type": "document", "source": {"type": "text", "data": "x"}}],
            },
            "document",
        ),
        (
            {
                "role": "user",
                "content": [{"type": "search_result", "source": "s", "title": "t", "content": []}],
            },
            "search_result",
        ),
        (
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
            },
            "'file' image",
        ),
        (
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://e/x"},
                        "transformations": {"oversized_image": "error"},
                    }
                ],
            },
            "transformations",
        ),
        (
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "x", "citations": [{"type": "char_location"}]}
                ],
            },
            "citations",
        ),
        ({"role": "user", "content": []}, "non-empty"),
        (
            {"role": "assistant", "content": [TOOL_USE, {"type": "text", "text": "x"}]},
            "after a tool_use",
        ),
        (
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}],
            },
            "thinking",
        ),
        (
            {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"}]},
            "redacted_thinking",
        ),
        (
            {
                "role": "assistant",
                "content": [
                    {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}
                ],
            },
            "server_tool_use",
        ),
        (
            {
                "role": "assistant",
                "content": [
                    {**TOOL_USE, "caller": {"type": "code_execution_20250825", "tool_id": "x"}}
                ],
            },
            "caller",
        ),
        ({"role": "wizard", "content": "x"}, "unknown role"),
    ],
)
def test_anthropic_content_without_counterpart_is_refused(message: JSON, reason: str) -> None:
    with pytest.raises(Untranslatable, match=reason):
        to_chat(claude(USER, {"role": "assistant", "content": "ok"}, message, USER))


def test_anthropic_prefill_is_refused() -> None:
    with pytest.raises(Untranslatable, match="prefill"):
        to_chat(claude(USER, {"role": "assistant", "content": "The answer is"}))


def test_echoed_response_blocks_with_null_fields_are_accepted() -> None:
    text = {"type": "text", "text": "Hi", "citations": None}
    use = {**TOOL_USE, "caller": {"type": "direct"}, "cache_control": None}
    out = to_chat(claude(USER, {"role": "assistant", "content": [text, use]}, USER))
    assert out["messages"][1]["content"] == "Hi"


# --- Anthropic -> Chat Completions: tools and parameters --------------------------------------


def test_anthropic_tools_become_function_tools() -> None:
    tools = [
        {
            "name": "f",
            "input_schema": WEATHER_SCHEMA,
            "strict": True,
            "cache_control": {"type": "ephemeral"},
        },
        {
            "type": "custom",
            "name": "g",
            "description": "G",
            "input_schema": {"type": "object"},
            "allowed_callers": ["direct"],
        },
    ]
    out = to_chat(claude(USER, tools=tools))
    assert out["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "parameters": WEATHER_SCHEMA, "strict": True},
        },
        {
            "type": "function",
            "function": {"name": "g", "description": "G", "parameters": {"type": "object"}},
        },
    ]


@pytest.mark.parametrize(
    ("tool", "reason"),
    [
        ({"type": "web_search_20250305", "name": "web_search"}, "server tool"),
        ({"type": "bash_20250124", "name": "bash"}, "server tool"),
        ({"name": "f", "input_schema": {"type": "object"}, "defer_loading": True}, "defer_loading"),
        (
            {"name": "f", "input_schema": {"type": "object"}, "input_examples": [{"a": 1}]},
            "input_examples",
        ),
        (
            {
                "name": "f",
                "input_schema": {"type": "object"},
                "allowed_callers": ["code_execution_20250825"],
            },
            "allowed_callers",
        ),
        ({"name": "f" * 65, "input_schema": {"type": "object"}}, "name"),
    ],
)
def test_anthropic_tools_without_counterpart_are_refused(tool: JSON, reason: str) -> None:
    with pytest.raises(Untranslatable, match=reason):
        to_chat(claude(USER, tools=[tool]))


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "none"}, "none", None),
        ({"type": "any"}, "required", None),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
            None,
        ),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        ({"type": "auto", "disable_parallel_tool_use": False}, "auto", None),
    ],
)
def test_anthropic_tool_choice_is_mapped(
    choice: JSON, expected: Any, parallel: bool | None
) -> None:
    out = to_chat(claude(USER, tools=ANTHROPIC_REQUEST["tools"], tool_choice=choice))
    assert out["tool_choice"] == expected
    assert out.get("parallel_tool_calls") == parallel


def test_output_config_format_becomes_a_strict_json_schema() -> None:
    out = to_chat(claude(USER, output_config=ANTHROPIC_REQUEST["output_config"]))
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": ANSWER_SCHEMA, "strict": True},
    }


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"output_config": {"effort": "low"}}, "effort"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking"),
        ({"thinking": {"type": "adaptive"}}, "thinking"),
        ({"top_k": 40}, "top_k"),
        ({"container": "cntr_1"}, "container"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "at most 4"),
        ({"max_tokens": 0}, "max_tokens=0"),
        ({"mcp_servers": [{"type": "url", "url": "https://e", "name": "m"}]}, "mcp_servers"),
    ],
)
def test_anthropic_parameters_without_counterpart_are_refused(params: JSON, reason: str) -> None:
    with pytest.raises(Untranslatable, match=reason):
        to_chat(claude(USER, **params))


def test_anthropic_scalar_parameters() -> None:
    out = to_chat(
        claude(
            USER,
            max_tokens=77,
            stop_sequences=["x"],
            temperature=0.0,
            top_p=0.9,
            stream=True,
            metadata={"user_id": "u"},
        )
    )
    assert out == {
        "model": "gpt-candidate",
        "messages": [USER],
        "max_completion_tokens": 77,
        "stop": ["x"],
        "temperature": 0.0,
        "top_p": 0.9,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u",
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("cache_control", {"type": "ephemeral"}),
        ("service_tier", "standard_only"),
        ("speed", "fast"),
        ("inference_geo", "us"),
        ("diagnostics", {"previous_message_id": "msg_1"}),
        ("user_profile_id", "up_1"),
        ("workspace_id", "wrkspc_1"),
        ("metadata", {"user_id": None}),
        ("stream", False),
    ],
)
def test_anthropic_harmless_parameters_are_dropped(key: str, value: Any) -> None:
    out = to_chat(claude(USER, **{key: value}))
    assert out == {"model": "gpt-candidate", "messages": [USER], "max_completion_tokens": 100}


# --- dispatcher ---------------------------------------------------------------------------------


def test_same_dialect_is_copied_with_the_model_replaced() -> None:
    for api, body in ((Api.OPENAI_CHAT, CHAT_REQUEST), (Api.ANTHROPIC_MESSAGES, ANTHROPIC_REQUEST)):
        out = translate_request(body, source=api, target=api, model="other")
        assert out == {**body, "model": "other"}
        out["messages"].clear()
        assert body["messages"]
    embeddings = {"model": "e1", "input": ["a"]}
    out = translate_request(
        embeddings, source=Api.OPENAI_EMBEDDINGS, target=Api.OPENAI_EMBEDDINGS, model="e2"
    )
    assert out == {"model": "e2", "input": ["a"]}


def test_dispatcher_translates_across_providers_with_options() -> None:
    body = chat(USER, temperature=0.4)
    out = translate_request(
        body,
        source=Api.OPENAI_CHAT,
        target=Api.ANTHROPIC_MESSAGES,
        model="c",
        sampling="drop",
        default_max_tokens=64,
    )
    assert out == {"model": "c", "max_tokens": 64, "messages": [USER]}
    back = translate_request(out, source=Api.ANTHROPIC_MESSAGES, target=Api.OPENAI_CHAT, model="g")
    assert back == {"model": "g", "messages": [USER], "max_completion_tokens": 64}


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (Api.OPENAI_RESPONSES, Api.ANTHROPIC_MESSAGES),
        (Api.ANTHROPIC_MESSAGES, Api.OPENAI_RESPONSES),
        (Api.OPENAI_RESPONSES, Api.OPENAI_CHAT),
        (Api.OPENAI_CHAT, Api.OPENAI_RESPONSES),
        (Api.OPENAI_EMBEDDINGS, Api.ANTHROPIC_MESSAGES),
        (Api.OPENAI_CHAT, Api.OPENAI_EMBEDDINGS),
    ],
)
def test_other_pairs_are_untranslatable(source: Api, target: Api) -> None:
    with pytest.raises(Untranslatable, match="no translation"):
        translate_request({"model": "m"}, source=source, target=target, model="x")


def test_untranslatable_is_a_mirror_error_with_its_reason() -> None:
    with pytest.raises(Untranslatable) as info:
        to_anthropic(chat(USER, n=3))
    assert isinstance(info.value, MirrorError)
    assert not info.value.retriable
    assert info.value.reason == str(info.value) == "n=3: Anthropic returns one answer per request"


# --- arm transforms ---------------------------------------------------------------------------


SYSTEM = {"role": "system", "content": "Base."}


@pytest.mark.parametrize(
    ("messages", "mode", "expected"),
    [
        ([SYSTEM, USER], "replace", [{"role": "system", "content": "New."}, USER]),
        ([SYSTEM, USER], "prepend", [{"role": "system", "content": "New.\n\nBase."}, USER]),
        ([SYSTEM, USER], "append", [{"role": "system", "content": "Base.\n\nNew."}, USER]),
        ([USER], "replace", [{"role": "system", "content": "New."}, USER]),
        ([USER], "append", [{"role": "system", "content": "New."}, USER]),
        (
            [{"role": "developer", "content": "A"}, {"role": "system", "content": "B"}, USER],
            "replace",
            [{"role": "developer", "content": "New."}, USER],
        ),
        (
            [{"role": "developer", "content": "A"}, {"role": "system", "content": "B"}, USER],
            "append",
            [
                {"role": "developer", "content": "A"},
                {"role": "system", "content": "B\n\nNew."},
                USER,
            ],
        ),
        (
            [
                {
                    "role": "system",
                    "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
                },
                USER,
            ],
            "prepend",
            [
                {
                    "role": "system",
                    "content": [
                        {"type": "text", "text": "New.\n\nA"},
                        {"type": "text", "text": "B"},
                    ],
                },
                USER,
            ],
        ),
        (
            [SYSTEM, USER, {"role": "system", "content": "Later."}, USER],
            "replace",
            [
                {"role": "system", "content": "New."},
                USER,
                {"role": "system", "content": "Later."},
                USER,
            ],
        ),
    ],
)
def test_chat_system_prompt_override(messages: list[JSON], mode: Any, expected: list[JSON]) -> None:
    body = chat(*messages)
    before = copy.deepcopy(body)
    out = apply_arm_transforms(
        body, dialect=Api.OPENAI_CHAT, system_prompt="New.", system_mode=mode
    )
    assert out["messages"] == expected
    assert body == before


@pytest.mark.parametrize(
    ("system", "mode", "expected"),
    [
        (None, "prepend", "New."),
        ("Base.", "replace", "New."),
        ("Base.", "prepend", "New.\n\nBase."),
        ("Base.", "append", "Base.\n\nNew."),
        (
            [
                {"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "B"},
            ],
            "append",
            [
                {"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "B\n\nNew."},
            ],
        ),
    ],
)
def test_anthropic_system_prompt_override(system: Any, mode: Any, expected: Any) -> None:
    body = claude(USER) if system is None else claude(USER, system=system)
    before = copy.deepcopy(body)
    out = apply_arm_transforms(
        body, dialect=Api.ANTHROPIC_MESSAGES, system_prompt="New.", system_mode=mode
    )
    assert out["system"] == expected
    assert body == before


def test_responses_system_prompt_is_instructions() -> None:
    body = {"model": "m", "input": "hi", "instructions": "Base."}
    out = apply_arm_transforms(
        body, dialect=Api.OPENAI_RESPONSES, system_prompt="New.", system_mode="append"
    )
    assert out["instructions"] == "Base.\n\nNew."
    out = apply_arm_transforms(
        {"model": "m", "input": "hi"}, dialect=Api.OPENAI_RESPONSES, system_prompt="New."
    )
    assert out["instructions"] == "New."


def test_embeddings_have_no_system_prompt() -> None:
    with pytest.raises(Untranslatable, match="no system prompt"):
        apply_arm_transforms(
            {"model": "e", "input": "x"}, dialect=Api.OPENAI_EMBEDDINGS, system_prompt="S"
        )
    out = apply_arm_transforms(
        {"model": "e", "input": "x"}, dialect=Api.OPENAI_EMBEDDINGS, params={"dimensions": 256}
    )
    assert out["dimensions"] == 256


def test_parameter_overrides_set_and_remove() -> None:
    body = chat(USER, temperature=0.7, top_p=0.9, stop=["x"])
    before = copy.deepcopy(body)
    stop = ["y"]
    params: JSON = {"temperature": 0.0, "top_p": None, "seed": 7, "stop": stop}
    out = apply_arm_transforms(body, dialect=Api.OPENAI_CHAT, params=params)
    assert out == chat(USER, temperature=0.0, stop=["y"], seed=7)
    stop.append("z")
    assert out["stop"] == ["y"]
    assert body == before


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
def test_chat_max_tokens_keys_are_one_setting(key: str) -> None:
    out = apply_arm_transforms(
        chat(USER, max_completion_tokens=10, max_tokens=10),
        dialect=Api.OPENAI_CHAT,
        params={key: 99},
    )
    assert out == chat(USER, **{key: 99})


def test_anthropic_max_tokens_cannot_be_removed() -> None:
    with pytest.raises(ConfigError, match="max_tokens"):
        apply_arm_transforms(
            claude(USER), dialect=Api.ANTHROPIC_MESSAGES, params={"max_tokens": None}
        )
    out = apply_arm_transforms(
        claude(USER), dialect=Api.ANTHROPIC_MESSAGES, params={"max_tokens": 5}
    )
    assert out["max_tokens"] == 5


@pytest.mark.parametrize("key", ["model", "messages", "system", "instructions", "input"])
def test_reserved_parameters_cannot_be_overridden(key: str) -> None:
    with pytest.raises(ConfigError, match=f"params.{key}"):
        apply_arm_transforms(chat(USER), dialect=Api.OPENAI_CHAT, params={key: "x"})


def test_transformed_bodies_stay_valid_for_the_sdks() -> None:
    assert_valid_openai(
        apply_arm_transforms(
            CHAT_REQUEST,
            dialect=Api.OPENAI_CHAT,
            system_prompt="Extra.",
            system_mode="append",
            params={"max_completion_tokens": 64, "seed": 1},
        )
    )
    assert_valid_anthropic(
        apply_arm_transforms(
            ANTHROPIC_REQUEST,
            dialect=Api.ANTHROPIC_MESSAGES,
            system_prompt="Extra.",
            system_mode="prepend",
            params={"temperature": None, "max_tokens": 64},
        )
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (chat({"role": "user", "content": [{"type": "text"}]}), "malformed request: KeyError"),
        (chat(USER, stop=5), "malformed request: TypeError"),
        (chat(USER, max_tokens="many"), "malformed request: ValueError"),
        ({"model": "m"}, "non-empty list"),
        ({"model": "m", "messages": ["hello"]}, "unknown role"),
    ],
)
def test_malformed_chat_requests_are_untranslatable(body: JSON, reason: str) -> None:
    with pytest.raises(Untranslatable, match=reason):
        to_anthropic(body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (claude({"role": "user", "content": [{"type": "text"}]}), "malformed request: KeyError"),
        (claude(USER, stop_sequences=5), "malformed request: TypeError"),
        (claude(USER, output_config="json"), "malformed request: AttributeError"),
        ({"model": "m", "max_tokens": 5}, "non-empty list"),
    ],
)
def test_malformed_anthropic_requests_are_untranslatable(body: JSON, reason: str) -> None:
    with pytest.raises(Untranslatable, match=reason):
        to_chat(body)
