"""Anthropic Messages stream events as Chat Completions chunks.

One half of `mirror.translate.stream`, whose docstring holds the table; fed one event at a
time by `StreamTranslator`, it returns the bytes to send (often b"") or raises `Untranslatable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mirror.errors import Untranslatable
from mirror.translate.messages import JSON, present
from mirror.translate.response import (
    TO_CHAT,
    chat_finish,
    chat_id,
    chat_usage,
    refuse_block,
    screen,
    screen_tool_use,
    text_block_to_chat,
)
from mirror.translate.sse import Event, encode

DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class _Block:
    kind: Literal["text", "tool"]
    call: int = -1  # the Chat tool-call index of a tool_use block
    fragments: bool = False  # whether any input_json_delta carried text


class MessagesToChat:
    """Anthropic events in, Chat Completions chunks out; `done` after `message_stop` or an error."""

    def __init__(self, model: str, include_usage: bool, created: int) -> None:
        self._model = model
        self._include_usage = include_usage
        self._created = created
        self._id: str | None = None
        self._blocks: dict[int, _Block] = {}
        self._calls = 0
        self._usage: JSON = {}
        self._finish: str | None = None
        self.done = False

    def event(self, event: Event) -> bytes:
        if event.event == "ping" or not event.data:
            return b""
        payload = event.json_object()
        kind = payload.get("type")
        if event.event == "error" or kind == "error":
            self.done = True
            return self._error(payload.get("error"))
        if self._id is None:
            if kind != "message_start":
                raise Untranslatable(f"stream: {kind!r} before message_start")
            return self._start(payload["message"])
        if kind == "content_block_start":
            return self._block_start(payload["index"], payload["content_block"])
        if kind == "content_block_delta":
            return self._block_delta(payload["index"], payload["delta"])
        if kind == "content_block_stop":
            return self._block_stop(payload["index"])
        if kind == "message_delta":
            return self._message_delta(payload)
        if kind == "message_stop":
            return self._stop()
        return b""

    def _chunk(self, delta: JSON, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        data: JSON = {**self._head(), "choices": [choice]}
        if self._include_usage:
            data["usage"] = None
        return encode(data)

    def _head(self) -> JSON:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
        }

    def _error(self, error: Any) -> bytes:
        error = error if isinstance(error, dict) else {}
        message = error.get("message")
        return encode(
            {
                "error": {
                    "message": message if isinstance(message, str) else "stream error",
                    "type": "server_error",
                    "param": None,
                    "code": error.get("type"),
                }
            }
        )

    def _start(self, message: JSON) -> bytes:
        screen(
            message,
            "message.",
            ("id", "type", "role", "model", "usage"),
            TO_CHAT,
            ("content", "stop_reason", "stop_sequence", "stop_details", "diagnostics"),
        )
        if present(message.get("content")):
            raise Untranslatable("message.content: content in message_start")
        self._id = chat_id(message["id"])
        self._merge_usage(message.get("usage"))
        return self._chunk({"role": "assistant", "content": "", "refusal": None})

    def _merge_usage(self, usage: Any) -> None:
        # Anthropic's counts are cumulative: a later non-null value replaces an earlier one.
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def _block_start(self, index: int, block: JSON) -> bytes:
        where = f"content[{index}]"
        kind = block.get("type")
        if kind == "text":
            if self._calls:
                raise Untranslatable(
                    f"{where}: text after a tool_use cannot keep its place in {TO_CHAT}"
                )
            text = text_block_to_chat(block, where)
            self._blocks[index] = _Block("text")
            return self._chunk({"content": text}) if text else b""
        if kind == "tool_use":
            screen_tool_use(block, where)
            if present(block.get("input")):
                raise Untranslatable(f"{where}.input: a tool_use that starts with its input")
            call = self._calls
            self._calls += 1
            self._blocks[index] = _Block("tool", call)
            function = {"name": block["name"], "arguments": ""}
            item = {"index": call, "id": block["id"], "type": "function", "function": function}
            return self._chunk({"tool_calls": [item]})
        raise refuse_block(kind, where)

    def _block(self, index: int) -> _Block:
        block = self._blocks.get(index)
        if block is None:
            raise Untranslatable(f"content[{index}]: an event before its content_block_start")
        return block

    def _block_delta(self, index: int, delta: JSON) -> bytes:
        block = self._block(index)
        where = f"content[{index}]"
        kind = delta.get("type")
        if kind == "text_delta" and block.kind == "text":
            text = delta["text"]
            return self._chunk({"content": text}) if text else b""
        if kind == "input_json_delta" and block.kind == "tool":
            partial = delta["partial_json"]
            if not partial:
                return b""
            block.fragments = True
            item = {"index": block.call, "function": {"arguments": partial}}
            return self._chunk({"tool_calls": [item]})
        if kind == "citations_delta":
            raise Untranslatable(f"{where}.citations: has no {TO_CHAT} counterpart")
        raise Untranslatable(f"{where}: a {kind!r} delta has no {TO_CHAT} counterpart")

    def _block_stop(self, index: int) -> bytes:
        block = self._block(index)
        if block.kind == "tool" and not block.fragments:
            # An input streamed without any fragment is {}; Chat says so as "{}".
            item = {"index": block.call, "function": {"arguments": "{}"}}
            return self._chunk({"tool_calls": [item]})
        return b""

    def _message_delta(self, payload: JSON) -> bytes:
        delta = screen(
            payload["delta"],
            "delta.",
            ("stop_reason",),
            TO_CHAT,
            ("stop_sequence", "stop_details"),
        )
        self._merge_usage(payload.get("usage"))
        self._finish = chat_finish(delta.get("stop_reason"))
        return self._chunk({}, self._finish)

    def _stop(self) -> bytes:
        if self._finish is None:
            raise Untranslatable("stream: message_stop without a stop_reason")
        self.done = True
        if not self._include_usage:
            return DONE
        usage = {**self._head(), "choices": [], "usage": chat_usage(self._usage)}
        return encode(usage) + DONE
