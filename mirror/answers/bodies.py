"""Non-streaming answer bodies normalised into `ArmResult` fields, and the shared pieces.

Finish reasons map to one vocabulary; usage maps OpenAI's `prompt_tokens`/`input_tokens` and
Anthropic's cache fields to one `Usage`; text that is JSON (bare or in one markdown fence) is
parsed so format drift can compare structures. Readers are tolerant: a missing or odd field
gives `None`, never an exception, because a broken answer is itself data.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import orjson

from mirror.events import (
    Api,
    EmbeddingSummary,
    ErrorInfo,
    ErrorKind,
    FinishReason,
    Output,
    ToolCall,
    Usage,
)

_FINISH = {
    "stop": FinishReason.STOP,
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "completed": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "max_tokens": FinishReason.LENGTH,
    "max_output_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "tool_use": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
    "refusal": FinishReason.CONTENT_FILTER,
}

_FENCED = re.compile(r"\A\s*```[a-zA-Z0-9_-]*[ \t]*\r?\n(.*?)\r?\n?```\s*\Z", re.DOTALL)


def finish_reason(raw: str | None) -> FinishReason | None:
    if raw is None:
        return None
    return _FINISH.get(raw, FinishReason.OTHER)


def parse_json_text(text: str) -> Any:
    """The text as JSON when it is a JSON object or array, bare or in one markdown fence."""
    stripped = text.strip()
    if not stripped:
        return None
    if stripped[0] not in "{[":
        fenced = _FENCED.match(stripped)
        if fenced is None:
            return None
        stripped = fenced.group(1).strip()
        if not stripped or stripped[0] not in "{[":
            return None
    try:
        return orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return None


def make_output(
    text: str,
    tool_calls: Sequence[ToolCall] = (),
    raw_finish: str | None = None,
    refusal: str | None = None,
) -> Output:
    return Output(
        text=text,
        tool_calls=tuple(tool_calls),
        finish_reason=finish_reason(raw_finish),
        raw_finish_reason=raw_finish,
        parsed_json=parse_json_text(text),
        refusal=refusal or None,
    )


def http_error(status: int, payload: Any, body: bytes) -> ErrorInfo:
    """The provider's error body (OpenAI or Anthropic shape) as an `ErrorInfo`."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return ErrorInfo(
            kind=ErrorKind.HTTP,
            message=str(error.get("message", ""))[:2000],
            type=_str_or_none(error.get("type") or error.get("code")),
        )
    return ErrorInfo(
        kind=ErrorKind.HTTP,
        message=f"HTTP {status}: {body[:500].decode('utf-8', 'replace')}",
    )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dig(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def normalize_body(api: Api, payload: Mapping[str, Any]) -> dict[str, Any]:
    """`ArmResult` fields (model, output, usage) from a non-streaming answer body."""
    if api is Api.OPENAI_CHAT:
        return _chat_body(payload)
    if api is Api.OPENAI_RESPONSES:
        return responses_body(payload)
    if api is Api.OPENAI_EMBEDDINGS:
        return _embeddings_body(payload)
    return _anthropic_body(payload)


def _first_int(*values: Any) -> int | None:
    for value in values:
        number = _int(value)
        if number is not None:
            return number
    return None


def openai_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    return Usage(
        input_tokens=_first_int(usage.get("prompt_tokens"), usage.get("input_tokens")),
        output_tokens=_first_int(usage.get("completion_tokens"), usage.get("output_tokens")),
        cached_tokens=_first_int(
            _dig(usage, "prompt_tokens_details", "cached_tokens"),
            _dig(usage, "input_tokens_details", "cached_tokens"),
        ),
        reasoning_tokens=_first_int(
            _dig(usage, "completion_tokens_details", "reasoning_tokens"),
            _dig(usage, "output_tokens_details", "reasoning_tokens"),
        ),
    )


def anthropic_usage(usage: Any, base: Usage | None = None) -> Usage | None:
    """Anthropic usage; a stream's `message_delta` totals are laid over `message_start`'s."""
    if not isinstance(usage, dict):
        return base
    start = base or Usage()
    return Usage(
        input_tokens=_first_int(usage.get("input_tokens"), start.input_tokens),
        output_tokens=_first_int(usage.get("output_tokens"), start.output_tokens),
        cached_tokens=_first_int(usage.get("cache_read_input_tokens"), start.cached_tokens),
        cache_write_tokens=_first_int(
            usage.get("cache_creation_input_tokens"), start.cache_write_tokens
        ),
    )


def _chat_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    choices = payload.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    message = choice.get("message") or {} if isinstance(choice, dict) else {}
    calls = [
        ToolCall(
            id=_str_or_none(call.get("id")),
            name=str(_dig(call, "function", "name") or ""),
            arguments=str(_dig(call, "function", "arguments") or ""),
        )
        for call in message.get("tool_calls") or ()
        if isinstance(call, dict)
    ]
    content = message.get("content")
    return {
        "model": _str_or_none(payload.get("model")),
        "output": make_output(
            content if isinstance(content, str) else "",
            calls,
            _str_or_none(choice.get("finish_reason")) if isinstance(choice, dict) else None,
            _str_or_none(message.get("refusal")),
        ),
        "usage": openai_usage(payload.get("usage")),
    }


def responses_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Fields from a Responses API `response` object (the body, or a stream's last event)."""
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[ToolCall] = []
    for item in payload.get("output") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(str(part.get("text", "")))
                elif isinstance(part, dict) and part.get("type") == "refusal":
                    refusals.append(str(part.get("refusal", "")))
        elif item.get("type") == "function_call":
            calls.append(
                ToolCall(
                    id=_str_or_none(item.get("call_id")),
                    name=str(item.get("name", "")),
                    arguments=str(item.get("arguments", "")),
                )
            )
    status = _str_or_none(payload.get("status"))
    raw_finish = status
    if status == "incomplete":
        raw_finish = _str_or_none(_dig(payload, "incomplete_details", "reason")) or status
    elif status == "completed" and calls:
        raw_finish = "tool_calls"
    error = None
    if status == "failed":
        error = ErrorInfo(
            kind=ErrorKind.STREAM,
            message=str(_dig(payload, "error", "message") or "response failed"),
            type=_str_or_none(_dig(payload, "error", "code")),
        )
    return {
        "model": _str_or_none(payload.get("model")),
        "output": make_output("".join(texts), calls, raw_finish, "".join(refusals)),
        "usage": openai_usage(payload.get("usage")),
        "error": error,
    }


def _embeddings_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    data = [d for d in payload.get("data") or () if isinstance(d, dict)]
    dims: int | None = None
    encoding: Literal["float", "base64"] = "float"
    if data:
        first = data[0].get("embedding")
        if isinstance(first, list):
            dims = len(first)
        elif isinstance(first, str):
            encoding = "base64"
            try:
                dims = len(base64.b64decode(first)) // 4
            except ValueError:
                dims = None
    summary = EmbeddingSummary(count=len(data), dimensions=dims, encoding=encoding)
    return {
        "model": _str_or_none(payload.get("model")),
        "output": Output(embeddings=summary),
        "usage": openai_usage(payload.get("usage")),
    }


def _anthropic_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in payload.get("content") or ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") in ("tool_use", "server_tool_use"):
            calls.append(
                ToolCall(
                    id=_str_or_none(block.get("id")),
                    name=str(block.get("name", "")),
                    arguments=orjson.dumps(block.get("input", {})).decode(),
                )
            )
    stop = _str_or_none(payload.get("stop_reason"))
    return {
        "model": _str_or_none(payload.get("model")),
        "output": make_output(
            "".join(texts), calls, stop, "".join(texts) if stop == "refusal" else None
        ),
        "usage": anthropic_usage(payload.get("usage")),
    }
