"""Chat Completions stream chunks as Anthropic Messages events.

One half of `mirror.translate.stream`, whose docstring holds the table; fed one event at a
time by `StreamTranslator`, it returns the bytes to send (often b"") or raises `Untranslatable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mirror.errors import Untranslatable
from mirror.translate.messages import JSON, present
from mirror.translate.response import (
    TO_ANTHROPIC,
    message_id,
    message_stop_reason,
    messages_usage,
    screen,
    tool_arguments,
    tool_use_id,
)
from mirror.translate.sse import Event, encode


@dataclass(slots=True)
class _Call:
    block: int  # its Anthropic content-block index
    arguments: list[str] = field(default_factory=list)


_CHUNK_KEYS = ("id", "object", "created", "model", "choices", "usage")
_CHUNK_DROPPED = ("service_tier", "system_fingerprint", "obfuscation")


class ChatToMessages:
    """Chat chunks in, Anthropic events out; `done` after `[DONE]` or an error."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._id: str | None = None
        self._next = 0  # the next content-block index
        self._open: int | None = None  # the open block's index
        self._open_call: int | None = None  # the Chat tool-call index of the open block
        self._calls: dict[int, _Call] = {}
        self._finish: str | None = None
        self._usage: JSON | None = None
        self.done = False

    def event(self, event: Event) -> bytes:
        if not event.data:
            return b""
        if event.data == "[DONE]":
            return self._end()
        payload = event.json_object()
        if present(payload.get("error")):
            self.done = True
            return self._error(payload["error"])
        screen(payload, "", _CHUNK_KEYS, TO_ANTHROPIC, _CHUNK_DROPPED)
        if payload.get("object") != "chat.completion.chunk":
            raise Untranslatable(f"object={payload.get('object')!r}: not a chat completion chunk")
        out: list[bytes] = []
        if self._id is None:
            self._id = message_id(payload["id"])
            out.append(self._message_start())
        for i, choice in enumerate(payload["choices"]):
            out.append(self._choice(choice, i))
        if payload.get("usage") is not None:
            self._usage = payload["usage"]
        return b"".join(out)

    def _message_start(self) -> bytes:
        message: JSON = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return encode({"type": "message_start", "message": message}, event="message_start")

    def _error(self, error: Any) -> bytes:
        message = error.get("message") if isinstance(error, dict) else None
        body = {
            "type": "error",
            "error": {
                "type": "api_error",
                "message": message if isinstance(message, str) else "stream error",
            },
        }
        return encode(body, event="error")

    def _choice(self, choice: Any, i: int) -> bytes:
        if not isinstance(choice, dict) or choice.get("index") != 0:
            raise Untranslatable(
                f"choices[{i}]: more than one choice (n > 1) has no {TO_ANTHROPIC} counterpart"
            )
        screen(choice, "choices[0].", ("index", "delta", "finish_reason"), TO_ANTHROPIC)
        delta = screen(
            choice.get("delta") or {},
            "choices[0].delta.",
            ("role", "content", "tool_calls"),
            TO_ANTHROPIC,
        )
        content = delta.get("content")
        calls = delta.get("tool_calls") or []
        if self._finish is not None and (content or calls):
            raise Untranslatable("choices[0].delta: content after the finish_reason")
        out: list[bytes] = []
        if content:
            if not isinstance(content, str):
                raise Untranslatable("choices[0].delta.content: expected a string")
            if self._open is None or self._open_call is not None:
                out.append(self._close())
                out.append(self._open_block({"type": "text", "text": ""}))
            out.append(self._delta({"type": "text_delta", "text": content}))
        for k, call in enumerate(calls):
            out.append(self._tool_delta(call, f"choices[0].delta.tool_calls[{k}]"))
        finish = choice.get("finish_reason")
        if finish is not None:
            out.append(self._close())
            self._finish = message_stop_reason(finish, tool_calls=bool(self._calls))
        return b"".join(out)

    def _tool_delta(self, call: Any, where: str) -> bytes:
        screen(call, f"{where}.", ("index", "id", "type", "function"), TO_ANTHROPIC)
        if call.get("type") not in (None, "function"):
            raise Untranslatable(
                f"{where}: {call['type']!r} tool calls have no {TO_ANTHROPIC} counterpart"
            )
        fn = screen(
            call.get("function") or {}, f"{where}.function.", ("name", "arguments"), TO_ANTHROPIC
        )
        index = call["index"]
        out: list[bytes] = []
        state = self._calls.get(index)
        if state is None:
            call_id = tool_use_id(call.get("id"), f"{where}.id")
            name = fn.get("name")
            if not isinstance(name, str) or not name:
                raise Untranslatable(f"{where}.function.name: a tool call without a name")
            out.append(self._close())
            block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
            out.append(self._open_block(block))
            state = self._calls[index] = _Call(block=self._next - 1)
            self._open_call = index
        elif self._open_call != index:
            raise Untranslatable(
                f"{where}: arguments of an earlier tool call after a later one started "
                f"({TO_ANTHROPIC} streams one block at a time)"
            )
        arguments = fn.get("arguments")
        if arguments:
            state.arguments.append(arguments)
            out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return b"".join(out)

    def _open_block(self, block: JSON) -> bytes:
        self._open = self._next
        self._next += 1
        data = {"type": "content_block_start", "index": self._open, "content_block": block}
        return encode(data, event="content_block_start")

    def _delta(self, delta: JSON) -> bytes:
        data = {"type": "content_block_delta", "index": self._open, "delta": delta}
        return encode(data, event="content_block_delta")

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        if self._open_call is not None:
            where = f"choices[0].delta.tool_calls[{self._open_call}].function.arguments"
            tool_arguments("".join(self._calls[self._open_call].arguments), where)
        data = {"type": "content_block_stop", "index": self._open}
        self._open = self._open_call = None
        return encode(data, event="content_block_stop")

    def _end(self) -> bytes:
        if self._finish is None:
            raise Untranslatable("stream: [DONE] before a finish_reason")
        if self._usage is None:
            raise Untranslatable(
                "usage: the stream carried none (stream_options.include_usage unset); "
                f"{TO_ANTHROPIC} reports it in message_delta"
            )
        self.done = True
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._finish, "stop_sequence": None},
            "usage": messages_usage(self._usage),
        }
        stop = encode({"type": "message_stop"}, event="message_stop")
        return encode(delta, event="message_delta") + stop
