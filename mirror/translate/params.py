"""Parameters between Chat Completions and Anthropic Messages: tools, tool choice, structured
output, sampling, limits, and the screen that refuses what has no counterpart.

Part of `mirror.translate.request`, whose docstring holds the table of decisions; raises
`Untranslatable` naming the parameter or path the target cannot express. A function given
`notes` (a list) may translate approximately instead, appending one of the `APPROX_*` notes for
each change; given None it refuses whatever it cannot translate faithfully.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any, Literal

from mirror.errors import Untranslatable
from mirror.translate.messages import JSON, TO_ANTHROPIC, TO_CHAT, check_keys, present

#: Chat Completions function names: at most 64 of these characters (Anthropic allows 128).
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Name given to an Anthropic output schema in Chat Completions, which requires one.
SCHEMA_NAME = "response"

SamplingPolicy = Literal["approximate", "refuse", "drop", "keep"]

#: The tool an Anthropic arm answers a `json_object` request through (approximate only): forced,
#: and its input is the answer.
JSON_TOOL = "json_output"
_JSON_TOOL_DESCRIPTION = "Give your whole answer as this tool's input: one JSON object."

#: The notes an approximate translation records, one per change (a fixed vocabulary: the store
#: keeps them as LowCardinality strings and the pages filter on them).
APPROX_JSON_OBJECT = "json_object as forced tool use"
APPROX_JSON_SCHEMA_STRICT = "json_schema made strict"
APPROX_TEMPERATURE = "temperature not sent"
APPROX_TOP_P = "top_p not sent"
APPROX_TOP_P_KEPT_TEMPERATURE = "top_p not sent (temperature kept)"
APPROX_TOP_K = "top_k not sent"

Notes = list[str] | None

_Check = Callable[[Any], bool]

_CHAT_HANDLED = frozenset(
    {
        *("model", "messages", "max_tokens", "max_completion_tokens", "stop", "stream"),
        *("stream_options", "user", "safety_identifier", "tools", "tool_choice"),
        *("parallel_tool_calls", "response_format", "temperature", "top_p"),
    }
)
_CHAT_DROPPED = frozenset(
    {
        *("store", "metadata", "service_tier", "prompt_cache_key", "prompt_cache_retention"),
        *("prompt_cache_options", "seed", "prediction", "logprobs", "top_logprobs"),
    }
)
_CHAT_NEUTRAL: dict[str, tuple[_Check, str]] = {
    "n": (lambda v: v == 1, "Anthropic returns one answer per request"),
    "logit_bias": (lambda v: not v, "Anthropic has no token biases"),
    "presence_penalty": (lambda v: v == 0, "Anthropic has no repetition penalties"),
    "frequency_penalty": (lambda v: v == 0, "Anthropic has no repetition penalties"),
    "modalities": (lambda v: v == ["text"], "Anthropic answers in text only"),
    "verbosity": (lambda v: v == "medium", "Anthropic has no verbosity setting"),
}
_CHAT_REFUSED = {
    "reasoning_effort": "Anthropic's output_config.effort and thinking are not the same control",
    "audio": "Anthropic has no audio output",
    "moderation": "Anthropic has no request moderation setting",
    "web_search_options": "OpenAI's built-in web search has no faithful Anthropic equivalent",
    "functions": "legacy functions are not translated",
    "function_call": "legacy functions are not translated",
}

_ANTHROPIC_HANDLED = frozenset(
    {
        *("model", "messages", "system", "max_tokens", "stop_sequences", "stream", "metadata"),
        *("tools", "tool_choice", "output_config", "temperature", "top_p"),
    }
)
_ANTHROPIC_DROPPED = frozenset(
    {
        *("cache_control", "service_tier", "speed", "inference_geo", "diagnostics"),
        *("user_profile_id", "workspace_id"),
    }
)
_ANTHROPIC_REFUSED = {
    "thinking": "Chat Completions' reasoning_effort is not the same control",
    "top_k": "Chat Completions has no top_k",
    "container": "code-execution containers have no Chat Completions counterpart",
}


def _screen(
    body: JSON,
    handled: frozenset[str],
    dropped: frozenset[str],
    neutral: dict[str, tuple[_Check, str]],
    refused: dict[str, str],
    target: str,
) -> None:
    for key, value in body.items():
        if key in handled or key in dropped or not present(value):
            continue
        if key in neutral:
            is_neutral, reason = neutral[key]
            if is_neutral(value):
                continue
            raise Untranslatable(f"{key}={value!r}: {reason}")
        if key in refused:
            raise Untranslatable(f"{key}: {refused[key]}")
        raise Untranslatable(f"{key}: unknown parameter, not translated to {target}")


def screen_chat(body: JSON) -> None:
    """Refuse a Chat Completions parameter with no faithful Anthropic counterpart."""
    _screen(body, _CHAT_HANDLED, _CHAT_DROPPED, _CHAT_NEUTRAL, _CHAT_REFUSED, TO_ANTHROPIC)


def screen_anthropic(body: JSON, notes: Notes = None) -> None:
    """Refuse an Anthropic parameter with no faithful Chat Completions counterpart; with
    `notes`, `top_k` is not sent (an approximation) instead."""
    if notes is not None and present(body.get("top_k")):
        body = {key: value for key, value in body.items() if key != "top_k"}
        notes.append(APPROX_TOP_K)
    _screen(body, _ANTHROPIC_HANDLED, _ANTHROPIC_DROPPED, {}, _ANTHROPIC_REFUSED, TO_CHAT)


def chat_max_tokens(body: JSON, default: int) -> int:
    completion, legacy = body.get("max_completion_tokens"), body.get("max_tokens")
    if completion is not None and legacy is not None and completion != legacy:
        raise Untranslatable("max_tokens and max_completion_tokens disagree")
    value = completion if completion is not None else legacy
    return default if value is None else int(value)


def chat_sampling_to_anthropic(body: JSON, policy: SamplingPolicy, notes: Notes = None) -> JSON:
    """`temperature`/`top_p` per the arm's policy (the second table of `request`'s docstring).

    `approximate` refuses like `refuse` without `notes` (a call the candidate serves)."""
    out: JSON = {}
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is None or policy == "drop":
            continue
        if policy == "keep":
            if key == "temperature" and value > 1:
                raise Untranslatable(f"temperature={value}: above Anthropic's range 0..1")
            out[key] = value
        elif value == 1:
            continue  # the neutral value: the same as not sending it
        elif policy == "approximate" and notes is not None:
            notes.append(APPROX_TEMPERATURE if key == "temperature" else APPROX_TOP_P)
        else:
            why = (
                "a call the candidate serves is not approximated"
                if policy == "approximate"
                else f"the arm's sampling policy is {policy!r}"
            )
            raise Untranslatable(
                f"{key}={value}: the Anthropic Messages API (2026-10-21) has no sampling "
                f"parameters; {why}"
            )
    if notes is not None and "temperature" in out and "top_p" in out:
        # Current Claude models take one of the two: temperature, the one apps tune.
        del out["top_p"]
        notes.append(APPROX_TOP_P_KEPT_TEMPERATURE)
    return out


def chat_tools_to_anthropic(tools: Any) -> list[JSON]:
    if not isinstance(tools, list):
        raise Untranslatable("tools: expected a list")
    out: list[JSON] = []
    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        check_keys(tool, path, ("type", "function"), TO_ANTHROPIC)
        if tool.get("type") != "function":
            raise Untranslatable(
                f"{path}: {tool.get('type')!r} tools have no Anthropic counterpart"
            )
        fn = check_keys(
            tool.get("function"),
            f"{path}.function",
            ("name", "description", "parameters", "strict"),
            TO_ANTHROPIC,
        )
        # Chat Completions: "omitting `parameters` defines a function with an empty parameter list".
        schema = fn.get("parameters") or {"type": "object", "properties": {}}
        converted: JSON = {"name": fn.get("name")}
        if fn.get("description") is not None:
            converted["description"] = fn["description"]
        converted["input_schema"] = schema
        if fn.get("strict"):
            converted["strict"] = True
        out.append(converted)
    return out


def chat_tool_choice_to_anthropic(choice: Any, parallel: Any, has_tools: bool) -> JSON | None:
    out: JSON | None
    if choice is None:
        out = None
    elif choice in ("auto", "none"):
        out = {"type": choice}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        check_keys(choice, "tool_choice", ("type", "function"), TO_ANTHROPIC)
        fn = check_keys(choice.get("function"), "tool_choice.function", ("name",), TO_ANTHROPIC)
        out = {"type": "tool", "name": fn.get("name")}
    else:
        kind = choice.get("type") if isinstance(choice, dict) else choice
        raise Untranslatable(f"tool_choice {kind!r} has no Anthropic counterpart")
    if parallel is False and has_tools:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


def chat_response_format_to_anthropic(fmt: Any, notes: Notes = None) -> JSON | None:
    """`output_config` for a `response_format`, or None (`text`, or `json_object`, which
    `json_object_tool` answers)."""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        if notes is None:
            raise Untranslatable(
                "response_format json_object: Anthropic has no JSON mode, only structured "
                "outputs with a schema"
            )
        check_keys(fmt, "response_format", ("type",), TO_ANTHROPIC)
        return None
    if kind != "json_schema":
        raise Untranslatable(f"response_format {kind!r}: unknown type")
    check_keys(fmt, "response_format", ("type", "json_schema"), TO_ANTHROPIC)
    spec = check_keys(
        fmt.get("json_schema"),
        "response_format.json_schema",
        ("name", "schema", "strict"),
        TO_ANTHROPIC,
    )
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise Untranslatable("response_format.json_schema.schema: missing")
    if spec.get("strict") is not True:
        if notes is None:
            raise Untranslatable(
                "response_format.json_schema.strict is not true: Anthropic structured outputs "
                "always constrain the answer to the schema"
            )
        schema = strict_schema(copy.deepcopy(schema), "response_format.json_schema.schema")
        notes.append(APPROX_JSON_SCHEMA_STRICT)
    return {"format": {"type": "json_schema", "schema": schema}}


def strict_schema(schema: Any, path: str) -> Any:
    """`schema` (a copy: changed in place) as a strict one: every object schema without
    `additionalProperties` gets `false`, as strict structured outputs require. An object open to
    other keys (`additionalProperties` true or a schema) cannot be made strict: refused."""
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "object" or "properties" in schema:
        if schema.setdefault("additionalProperties", False) is not False:
            raise Untranslatable(f"{path}.additionalProperties: an open object cannot be strict")
    for key in _SCHEMA_MAPS:
        for name, sub in (schema.get(key) or {}).items():
            strict_schema(sub, f"{path}.{key}.{name}")
    for key in _SCHEMA_ONE:
        strict_schema(schema.get(key), f"{path}.{key}")
    for key in _SCHEMA_LISTS:
        for i, sub in enumerate(schema.get(key) or ()):
            strict_schema(sub, f"{path}.{key}[{i}]")
    return schema


#: Where a JSON schema holds other schemas: maps of them, one, lists of them.
_SCHEMA_MAPS = ("properties", "$defs", "definitions")
_SCHEMA_ONE = ("items", "not")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")


def json_object_tool(body: JSON, notes: Notes) -> tuple[list[JSON], JSON]:
    """The forced tool that answers a `json_object` request on Anthropic: `tools` and
    `tool_choice`. Only approximately, and only for a request without tools of its own (forcing
    the JSON tool would keep the model from calling them)."""
    if notes is None:
        raise Untranslatable("response_format json_object: Anthropic has no JSON mode")
    if present(body.get("tools")) or present(body.get("tool_choice")):
        raise Untranslatable(
            "response_format json_object with tools: a forced JSON tool would keep the model "
            "from calling them"
        )
    notes.append(APPROX_JSON_OBJECT)
    tool = {
        "name": JSON_TOOL,
        "description": _JSON_TOOL_DESCRIPTION,
        "input_schema": {"type": "object"},
    }
    return [tool], {"type": "tool", "name": JSON_TOOL}


def anthropic_tools_to_chat(tools: Any) -> list[JSON]:
    if not isinstance(tools, list):
        raise Untranslatable("tools: expected a list")
    out: list[JSON] = []
    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind not in (None, "custom"):
            raise Untranslatable(f"{path}: server tool {kind!r} has no {TO_CHAT} counterpart")
        known = ("type", "name", "description", "input_schema", "strict", "allowed_callers")
        check_keys(tool, path, known, TO_CHAT, ("cache_control", "eager_input_streaming"))
        if tool.get("allowed_callers") not in (None, ["direct"]):
            raise Untranslatable(f"{path}.allowed_callers: has no {TO_CHAT} counterpart")
        name = tool.get("name")
        if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
            raise Untranslatable(f"{path}.name: {name!r} is not a valid Chat Completions name")
        fn: JSON = {"name": name}
        if tool.get("description") is not None:
            fn["description"] = tool["description"]
        fn["parameters"] = tool.get("input_schema")
        if tool.get("strict"):
            fn["strict"] = True
        out.append({"type": "function", "function": fn})
    return out


def anthropic_tool_choice_to_chat(choice: Any, has_tools: bool) -> tuple[Any, bool | None]:
    """Returns `tool_choice` (None: leave out) and `parallel_tool_calls` (None: leave out)."""
    if choice is None:
        return None, None
    kind = choice.get("type") if isinstance(choice, dict) else None
    known = ("type", "name") if kind == "tool" else ("type",)
    check_keys(choice, "tool_choice", known, TO_CHAT, ("disable_parallel_tool_use",))
    converted: Any
    if kind in ("auto", "none"):
        converted = kind
    elif kind == "any":
        converted = "required"
    elif kind == "tool":
        converted = {"type": "function", "function": {"name": choice.get("name")}}
    else:
        raise Untranslatable(f"tool_choice {kind!r} has no {TO_CHAT} counterpart")
    parallel = False if choice.get("disable_parallel_tool_use") and has_tools else None
    return converted, parallel


def anthropic_output_config_to_chat(output_config: Any) -> JSON:
    if present(output_config.get("effort")):
        raise Untranslatable("output_config.effort: Chat Completions' reasoning_effort differs")
    check_keys(output_config, "output_config", ("format",), TO_CHAT)
    fmt = output_config.get("format")
    if not present(fmt):
        return {}
    check_keys(fmt, "output_config.format", ("type", "schema"), TO_CHAT)
    if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise Untranslatable(f"output_config.format: unknown format {fmt.get('type')!r}")
    spec = {"name": SCHEMA_NAME, "schema": copy.deepcopy(fmt["schema"]), "strict": True}
    return {"response_format": {"type": "json_schema", "json_schema": spec}}
