"""Bodies and event streams of the fake OpenAI Responses API (``POST /v1/responses``).

The stream follows the order the SDK's ``client.responses.stream(...)`` helper checks:
``response.created`` (``output: []``), ``response.in_progress``, then per output item
``response.output_item.added``, for a message ``response.content_part.added``,
``response.output_text.delta``..., ``response.output_text.done``,
``response.content_part.done``, for a function call
``response.function_call_arguments.delta``... and ``.done``, then
``response.output_item.done``; last ``response.completed`` (``response.incomplete`` when
the reply stopped on length or content filter). Every event is ``event: <type>`` plus
``data: {..., "sequence_number": n}`` counting from 0; there is no ``[DONE]``.
"""

from __future__ import annotations

from typing import Any

from .asgi import dumps
from .reply import (
    FakeReply,
    FakeUsage,
    Prompt,
    json_pieces,
    openai_finish,
    reply_usage,
    text_pieces,
)
from .seed import BASE62, HEX, Seed


def response_usage(usage: FakeUsage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cache_write_tokens": 0, "cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _tools(body: dict[str, Any]) -> list[Any]:
    tools = body["tools"] if isinstance(body.get("tools"), list) else []
    return [
        {"description": None, "strict": True, **tool}
        if isinstance(tool, dict) and tool.get("type") == "function"
        else tool
        for tool in tools
    ]


class ResponseBuilder:
    """The output items and response objects of one reply."""

    def __init__(self, body: dict[str, Any], reply: FakeReply, prompt: Prompt, seed: Seed) -> None:
        self.body = body
        self.reply = reply
        self.usage = reply_usage(reply, prompt)
        finish = openai_finish(reply.finish_reason, bool(reply.tool_calls))
        self.incomplete = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(
            finish
        )
        self.id = "resp_" + seed.token("id", 50, HEX)
        self.created = seed.created()
        self.message_id = "msg_" + seed.token("msg", 50, HEX)
        self.calls = [
            (
                f"fc_{seed.token(f'fc{i}', 50, HEX)}",
                f"call_{seed.token(f'call{i}', 24)}",
                name,
                args,
            )
            for i, (name, args) in enumerate(reply.tool_calls)
        ]

    def message(self, status: str, text: str | None) -> dict[str, Any]:
        content = [] if text is None else [self.text_part(text)]
        return {
            "id": self.message_id,
            "type": "message",
            "status": status,
            "content": content,
            "role": "assistant",
        }

    @staticmethod
    def text_part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}

    @staticmethod
    def call(item: tuple[str, str, str, str], status: str, arguments: str) -> dict[str, Any]:
        item_id, call_id, name, _ = item
        return {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "arguments": arguments,
            "call_id": call_id,
            "name": name,
        }

    def output(self) -> list[dict[str, Any]]:
        status = "incomplete" if self.incomplete else "completed"
        items = [self.message(status, self.reply.text)] if self.reply.text else []
        return items + [self.call(call, "completed", call[3]) for call in self.calls]

    def response(self, status: str, output: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        body = self.body
        done = status in ("completed", "incomplete")
        text = body["text"] if isinstance(body.get("text"), dict) else {}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "completed_at": self.created + 1 if done else None,
            "error": None,
            "incomplete_details": {"reason": self.incomplete} if status == "incomplete" else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": body.get("model"),
            "output": output or [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium", **text},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": _tools(body),
            "top_logprobs": body.get("top_logprobs", 0),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": response_usage(self.usage) if done else None,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def final_status(self) -> str:
        return "incomplete" if self.incomplete else "completed"


def responses_payload(body: dict[str, Any], reply: FakeReply, prompt: Prompt, seed: Seed) -> bytes:
    builder = ResponseBuilder(body, reply, prompt, seed)
    return dumps(builder.response(builder.final_status(), builder.output()), indent=True)


def _events(builder: ResponseBuilder, noise: Any) -> tuple[list[dict[str, Any]], int]:
    """Unnumbered events and the index of the first one that carries content."""
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": builder.response("in_progress")},
        {"type": "response.in_progress", "response": builder.response("in_progress")},
    ]
    first = len(events)
    text = builder.reply.text
    final_items = builder.output()
    index = 0
    if text:
        mid = builder.message_id
        at = {"item_id": mid, "output_index": index, "content_index": 0}
        events.append(
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": builder.message("in_progress", None),
            }
        )
        events.append({"type": "response.content_part.added", **at, "part": builder.text_part("")})
        for piece in text_pieces(text):
            events.append(
                {
                    "type": "response.output_text.delta",
                    **at,
                    "delta": piece,
                    "logprobs": [],
                    **noise(),
                }
            )
        events.append({"type": "response.output_text.done", **at, "text": text, "logprobs": []})
        events.append({"type": "response.content_part.done", **at, "part": builder.text_part(text)})
        events.append(
            {"type": "response.output_item.done", "output_index": index, "item": final_items[index]}
        )
        index += 1
    for call in builder.calls:
        at = {"item_id": call[0], "output_index": index}
        events.append(
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": builder.call(call, "in_progress", ""),
            }
        )
        for piece in json_pieces(call[3]):
            events.append(
                {"type": "response.function_call_arguments.delta", **at, "delta": piece, **noise()}
            )
        events.append(
            {
                "type": "response.function_call_arguments.done",
                **at,
                "name": call[2],
                "arguments": call[3],
            }
        )
        events.append(
            {"type": "response.output_item.done", "output_index": index, "item": final_items[index]}
        )
        index += 1
    status = builder.final_status()
    events.append({"type": f"response.{status}", "response": builder.response(status, final_items)})
    return events, first


def responses_stream(
    body: dict[str, Any], reply: FakeReply, prompt: Prompt, seed: Seed, stream_error: str | None
) -> tuple[list[bytes], int, int | None]:
    """SSE frames, the first content frame and, for ``cut``, where to drop the connection."""
    builder = ResponseBuilder(body, reply, prompt, seed)
    options = body["stream_options"] if isinstance(body.get("stream_options"), dict) else {}
    if options.get("include_obfuscation", True):
        rng = seed.rng("obfuscation")

        def noise() -> dict[str, str]:
            return {"obfuscation": "".join(rng.choices(BASE62, k=rng.randint(1, 16)))}
    else:

        def noise() -> dict[str, str]:
            return {}

    events, first = _events(builder, noise)
    half = first + max(1, (len(events) - 1 - first) // 2)
    cut_after = None
    if stream_error in ("default", "cut"):
        cut_after = half
    elif stream_error == "clean":
        events = events[:half]
    elif stream_error == "event":
        message = "An error occurred while processing your request."
        failed = builder.response("failed", [])
        failed["error"] = {"code": "server_error", "message": message}
        events = [
            *events[:half],
            {"type": "error", "code": "server_error", "message": message, "param": None},
            {"type": "response.failed", "response": failed},
        ]
    frames = [
        b"event: "
        + event["type"].encode()
        + b"\ndata: "
        + dumps({**event, "sequence_number": number})
        + b"\n\n"
        for number, event in enumerate(events)
    ]
    return frames, first, cut_after
