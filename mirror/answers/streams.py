"""Streamed answers reassembled: text, tool calls with arguments, finish reason, usage.

Each dialect has its own event grammar (DESIGN.md, "Wire facts"):
- Chat Completions: `data:` chunks with `choices[].delta`, tool call fragments by `index`, usage
  in a last chunk with `choices: []` when `stream_options.include_usage` is set, then `[DONE]`.
- Responses: named events with `sequence_number`; `response.completed` (or `.incomplete`,
  `.failed`) carries the whole response, which is used when present; deltas otherwise.
- Anthropic Messages: `message_start` … `content_block_*` … `message_delta` (cumulative usage)
  … `message_stop`; `event: error` may arrive inside a 200 stream.

A stream that ends without its terminal event is reported as `INCOMPLETE` with what arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mirror.answers.bodies import anthropic_usage, make_output, openai_usage, responses_body
from mirror.answers.sse import TimedEvent, iter_timed_events
from mirror.events import Api, ErrorInfo, ErrorKind, ToolCall, Usage


@dataclass
class StreamResult:
    fields: dict[str, Any] = field(default_factory=dict)
    first_token_at: float | None = None
    error: ErrorInfo | None = None


@dataclass
class _ToolDraft:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def done(self) -> ToolCall:
        return ToolCall(id=self.id, name=self.name, arguments="".join(self.arguments))


def reassemble_stream(api: Api, chunks: Sequence[bytes], times: Sequence[float]) -> StreamResult:
    events = iter_timed_events(chunks, times)
    if api is Api.ANTHROPIC_MESSAGES:
        return _anthropic(events)
    if api is Api.OPENAI_RESPONSES:
        return _responses(events)
    return _chat(events)


def _json(event: TimedEvent) -> Any:
    try:
        return event.json()
    except ValueError:
        return None


def _incomplete(what: str) -> ErrorInfo:
    return ErrorInfo(kind=ErrorKind.INCOMPLETE, message=f"stream ended before {what}")


def _chat(events: Any) -> StreamResult:
    result = StreamResult()
    text: list[str] = []
    refusal: list[str] = []
    tools: dict[int, _ToolDraft] = {}
    finish: str | None = None
    model: str | None = None
    usage: Usage | None = None
    done = False
    for event in events:
        if event.data == "[DONE]":
            done = True
            break
        chunk = _json(event)
        if not isinstance(chunk, dict):
            continue
        if isinstance(chunk.get("error"), dict):
            error = chunk["error"]
            result.error = ErrorInfo(
                kind=ErrorKind.STREAM, message=str(error.get("message", "")), type=error.get("type")
            )
            break
        model = chunk.get("model") or model
        if chunk.get("usage"):
            usage = openai_usage(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            piece = delta.get("content")
            calls = delta.get("tool_calls")
            if piece:
                text.append(piece)
            if delta.get("refusal"):
                refusal.append(delta["refusal"])
            for call in calls or ():
                draft = tools.setdefault(int(call.get("index", 0)), _ToolDraft())
                draft.id = call.get("id") or draft.id
                function = call.get("function") or {}
                draft.name = function.get("name") or draft.name
                if function.get("arguments"):
                    draft.arguments.append(function["arguments"])
            if result.first_token_at is None and (piece or calls or delta.get("refusal")):
                result.first_token_at = event.arrived
            finish = choice.get("finish_reason") or finish
    if not done and result.error is None:
        result.error = _incomplete("[DONE]")
    result.fields = {
        "model": model,
        "output": make_output(
            "".join(text), [tools[i].done() for i in sorted(tools)], finish, "".join(refusal)
        ),
        "usage": usage,
    }
    return result


def _responses(events: Any) -> StreamResult:
    result = StreamResult()
    text: list[str] = []
    tools: dict[str, _ToolDraft] = {}
    model: str | None = None
    for event in events:
        payload = _json(event)
        if not isinstance(payload, dict):
            continue
        kind = payload.get("type", event.event)
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            result.fields = responses_body(payload.get("response") or {})
            result.error = result.fields.pop("error", None)
            return result
        if kind == "error":
            result.error = ErrorInfo(
                kind=ErrorKind.STREAM,
                message=str(payload.get("message", "")),
                type=payload.get("code"),
            )
            break
        if kind == "response.created":
            model = (payload.get("response") or {}).get("model")
        elif kind == "response.output_item.added":
            item = payload.get("item") or {}
            if item.get("type") == "function_call":
                tools[str(item.get("id"))] = _ToolDraft(item.get("call_id"), item.get("name", ""))
        elif kind.endswith(".delta"):
            if result.first_token_at is None:
                result.first_token_at = event.arrived
            if kind == "response.output_text.delta":
                text.append(str(payload.get("delta", "")))
            elif kind == "response.function_call_arguments.delta":
                draft = tools.setdefault(str(payload.get("item_id")), _ToolDraft())
                draft.arguments.append(str(payload.get("delta", "")))
    if result.error is None:
        result.error = _incomplete("response.completed")
    result.fields = {
        "model": model,
        "output": make_output("".join(text), [t.done() for t in tools.values()]),
    }
    return result


def _anthropic(events: Any) -> StreamResult:
    result = StreamResult()
    blocks: dict[int, _ToolDraft | list[str]] = {}
    stop: str | None = None
    model: str | None = None
    usage: Usage | None = None
    done = False
    for event in events:
        payload = _json(event)
        if not isinstance(payload, dict):
            continue
        kind = payload.get("type", event.event)
        if kind == "message_start":
            message = payload.get("message") or {}
            model = message.get("model")
            usage = anthropic_usage(message.get("usage"))
        elif kind == "content_block_start":
            block = payload.get("content_block") or {}
            index = int(payload.get("index", 0))
            if block.get("type") in ("tool_use", "server_tool_use"):
                blocks[index] = _ToolDraft(block.get("id"), block.get("name", ""))
            elif block.get("type") == "text":
                blocks[index] = [block.get("text", "")]
        elif kind == "content_block_delta":
            delta = payload.get("delta") or {}
            target = blocks.get(int(payload.get("index", 0)))
            if delta.get("type") == "text_delta" and isinstance(target, list):
                target.append(delta.get("text", ""))
            elif delta.get("type") == "input_json_delta" and isinstance(target, _ToolDraft):
                target.arguments.append(delta.get("partial_json", ""))
            if result.first_token_at is None and delta.get("type") != "signature_delta":
                result.first_token_at = event.arrived
        elif kind == "message_delta":
            stop = (payload.get("delta") or {}).get("stop_reason") or stop
            usage = anthropic_usage(payload.get("usage"), usage)
        elif kind == "message_stop":
            done = True
            break
        elif kind == "error":
            error = payload.get("error") or {}
            result.error = ErrorInfo(
                kind=ErrorKind.STREAM, message=str(error.get("message", "")), type=error.get("type")
            )
            break
    if not done and result.error is None:
        result.error = _incomplete("message_stop")
    texts = ["".join(b) for _, b in sorted(blocks.items()) if isinstance(b, list)]
    calls = [b for _, b in sorted(blocks.items()) if isinstance(b, _ToolDraft)]
    tool_calls = [
        ToolCall(id=c.id, name=c.name, arguments="".join(c.arguments) or "{}") for c in calls
    ]
    text = "".join(texts)
    result.fields = {
        "model": model,
        "output": make_output(text, tool_calls, stop, text if stop == "refusal" else None),
        "usage": usage,
    }
    return result
