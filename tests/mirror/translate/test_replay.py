"""Approximate translation for replays (`mirror.translate.replay`): what a replay translates
that a served call refuses, the notes it records, and the forced JSON tool's answer read back.

Translated bodies are checked against the SDKs' request types and sent through the real SDK
clients, as in `test_request`; the forced-tool round trip through the fake Anthropic API is in
`tests/mirror/runner/test_runner.py`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from mirror.answers.bodies import make_output
from mirror.errors import Untranslatable
from mirror.events import Api, ArmResult, FinishReason, ToolCall
from mirror.translate.params import (
    APPROX_JSON_OBJECT,
    APPROX_JSON_SCHEMA_STRICT,
    APPROX_TEMPERATURE,
    APPROX_TOP_K,
    APPROX_TOP_P,
    APPROX_TOP_P_KEPT_TEMPERATURE,
    JSON_TOOL,
)
from mirror.translate.replay import Replay, replay_answer, translate_replay
from mirror.translate.response import translate_served_request
from tests.mirror.translate.test_request import (
    ANSWER_SCHEMA,
    CHAT_REQUEST,
    USER,
    assert_valid_anthropic,
    assert_valid_openai,
    chat,
    claude,
    to_anthropic,
    to_chat,
)

JSON = dict[str, Any]
CHAT, MESSAGES = Api.OPENAI_CHAT, Api.ANTHROPIC_MESSAGES
OPEN_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"sku": {"type": "string"}}},
        },
        "owner": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/person"}]},
    },
    "$defs": {"person": {"type": "object", "properties": {"type": {"type": "string"}}}},
}


def replay(body: JSON, **options: Any) -> Replay:
    return translate_replay(body, source=CHAT, target=MESSAGES, model="claude-c", **options)


def replay_to_chat(body: JSON) -> Replay:
    return translate_replay(body, source=MESSAGES, target=CHAT, model="gpt-c")


def test_json_object_becomes_a_forced_tool_whose_input_is_the_object() -> None:
    out = replay(chat(USER, response_format={"type": "json_object"}))
    assert out.approximations == (APPROX_JSON_OBJECT,) and out.json_tool
    assert out.body["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    (tool,) = out.body["tools"]
    assert tool["name"] == JSON_TOOL and tool["input_schema"] == {"type": "object"}
    assert "output_config" not in out.body
    assert_valid_anthropic(out.body)
    assert_valid_anthropic(
        replay(chat(USER, stream=True, response_format={"type": "json_object"})).body
    )


@pytest.mark.parametrize(
    "params",
    [
        {"tools": CHAT_REQUEST["tools"]},
        {"tool_choice": "none"},
    ],
)
def test_json_object_beside_tools_is_still_refused(params: JSON) -> None:
    with pytest.raises(Untranslatable, match="forced JSON tool"):
        replay(chat(USER, response_format={"type": "json_object"}, **params))


def test_non_strict_schema_is_made_strict_everywhere_it_has_objects() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": OPEN_SCHEMA}}
    before = copy.deepcopy(fmt)
    out = replay(chat(USER, response_format=fmt))
    assert fmt == before  # the captured request is not changed
    assert out.approximations == (APPROX_JSON_SCHEMA_STRICT,)
    schema = out.body["output_config"]["format"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["items"]["items"]["additionalProperties"] is False
    assert schema["$defs"]["person"]["additionalProperties"] is False
    # A property named like a keyword is a property, not a schema keyword.
    assert schema["$defs"]["person"]["properties"]["type"] == {"type": "string"}
    assert "additionalProperties" not in schema["properties"]["summary"]
    assert_valid_anthropic(out.body)


def test_strict_schema_is_faithful_and_records_nothing() -> None:
    out = replay(chat(USER, response_format=CHAT_REQUEST["response_format"]))
    assert out.approximations == ()
    assert out.body["output_config"]["format"]["schema"] == ANSWER_SCHEMA


@pytest.mark.parametrize("extra", [True, {"type": "string"}])
def test_an_open_object_cannot_be_made_strict(extra: Any) -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": extra}
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema, "strict": False}}
    with pytest.raises(Untranslatable, match="additionalProperties"):
        replay(chat(USER, response_format=fmt))


@pytest.mark.parametrize(
    ("params", "sampling", "expected", "notes"),
    [
        ({"temperature": 0.2}, "approximate", {}, (APPROX_TEMPERATURE,)),
        (
            {"temperature": 0.2, "top_p": 0.5},
            "approximate",
            {},
            (APPROX_TEMPERATURE, APPROX_TOP_P),
        ),
        ({"temperature": 1, "top_p": 1}, "approximate", {}, ()),
        ({"temperature": 0.2, "top_p": 0.5}, "drop", {}, ()),
        (
            {"temperature": 0.2, "top_p": 0.5},
            "keep",
            {"temperature": 0.2},
            (APPROX_TOP_P_KEPT_TEMPERATURE,),
        ),
        ({"top_p": 0.5}, "keep", {"top_p": 0.5}, ()),
    ],
)
def test_sampling_in_a_replay(params: JSON, sampling: Any, expected: JSON, notes: Any) -> None:
    out = replay(chat(USER, **params), sampling=sampling)
    assert {k: out.body[k] for k in ("temperature", "top_p") if k in out.body} == expected
    assert out.approximations == notes


@pytest.mark.parametrize(
    ("params", "sampling", "reason"),
    [
        ({"temperature": 0.2}, "refuse", "policy is 'refuse'"),
        ({"temperature": 1.5}, "keep", "above Anthropic's range"),
    ],
)
def test_sampling_a_replay_still_refuses(params: JSON, sampling: Any, reason: str) -> None:
    with pytest.raises(Untranslatable, match=reason):
        replay(chat(USER, **params), sampling=sampling)


@pytest.mark.parametrize(
    "params",
    [
        {"response_format": {"type": "json_object"}},
        {"temperature": 0.2},
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": ANSWER_SCHEMA},
            }
        },
    ],
)
def test_a_served_call_is_never_approximated(params: JSON) -> None:
    with pytest.raises(Untranslatable):
        translate_served_request(
            chat(USER, **params), source=CHAT, target=MESSAGES, model="c", sampling="approximate"
        )
    with pytest.raises(Untranslatable):
        to_anthropic(chat(USER, **params))


def test_keep_sends_both_when_not_approximating() -> None:
    out = to_anthropic(chat(USER, temperature=0.2, top_p=0.5), sampling="keep")
    assert (out["temperature"], out["top_p"]) == (0.2, 0.5)


def test_top_k_is_left_out_towards_chat_completions() -> None:
    out = replay_to_chat(claude(USER, top_k=40, temperature=0.3))
    assert out.approximations == (APPROX_TOP_K,)
    assert "top_k" not in out.body and out.body["temperature"] == 0.3
    assert_valid_openai(out.body)
    with pytest.raises(Untranslatable, match="top_k"):
        to_chat(claude(USER, top_k=40))


def test_notes_come_in_the_order_the_changes_were_made() -> None:
    out = replay(chat(USER, temperature=0.5, top_p=0.2, response_format={"type": "json_object"}))
    assert out.approximations == (APPROX_JSON_OBJECT, APPROX_TEMPERATURE, APPROX_TOP_P)


def _answer(*calls: ToolCall, raw: str = "tool_use", text: str = "") -> ArmResult:
    return ArmResult(
        provider="anthropic", status_code=200, latency_ms=1.0, output=make_output(text, calls, raw)
    )


JSON_REPLAY = Replay({}, (APPROX_JSON_OBJECT, APPROX_TEMPERATURE))


def test_the_forced_tool_call_is_read_back_as_the_json_text() -> None:
    arguments = '{"intent":"refund","priority":2}'
    result = replay_answer(
        _answer(ToolCall(id="t1", name=JSON_TOOL, arguments=arguments)), JSON_REPLAY
    )
    assert result.output is not None
    assert result.output.text == arguments and result.output.tool_calls == ()
    assert result.output.parsed_json == json.loads(arguments)
    assert result.output.finish_reason is FinishReason.STOP
    assert result.output.raw_finish_reason == "end_turn"
    assert result.approximations == (APPROX_JSON_OBJECT, APPROX_TEMPERATURE)


def test_a_cut_forced_answer_keeps_its_finish_reason() -> None:
    call = ToolCall(id="t1", name=JSON_TOOL, arguments='{"intent":"ref')
    result = replay_answer(_answer(call, raw="max_tokens"), JSON_REPLAY)
    assert result.output is not None and result.output.text == '{"intent":"ref'
    assert result.output.finish_reason is FinishReason.LENGTH


@pytest.mark.parametrize(
    "calls",
    [
        (ToolCall(name="get_weather", arguments="{}"),),
        (ToolCall(name=JSON_TOOL, arguments="{}"), ToolCall(name="other", arguments="{}")),
        (),
    ],
)
def test_other_answers_are_left_as_given(calls: tuple[ToolCall, ...]) -> None:
    given = _answer(*calls, text="" if calls else "plain")
    result = replay_answer(given, JSON_REPLAY)
    assert result.output == given.output and result.approximations == JSON_REPLAY.approximations


def test_a_faithful_replay_changes_nothing() -> None:
    given = _answer(ToolCall(name=JSON_TOOL, arguments="{}"))
    assert replay_answer(given, Replay({})) == given
