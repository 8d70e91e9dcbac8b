"""A fake Anthropic Messages API (plain ASGI) that the official ``anthropic`` SDK accepts.

Endpoints: ``POST /v1/messages`` (plain and ``stream: true``) and
``POST /v1/messages/count_tokens``. Point the SDK at it with ``Anthropic(base_url=url)``.

Stream order, as the real API and the SDK's ``client.messages.stream(...)`` expect:
``message_start`` (usage with the input tokens, ``output_tokens: 1``), then per content
block ``content_block_start``, (``ping`` after the first one), ``content_block_delta``
(``text_delta``, or ``input_json_delta`` whose ``partial_json`` fragments start with an
empty one for ``tool_use`` blocks), ``content_block_stop``; then ``message_delta``
(``stop_reason``, ``stop_sequence`` and cumulative usage) and ``message_stop``. Each
``data:`` line follows its ``event:`` line.

The default reply honours ``system``, ``stop_sequences`` (the text stops before the first
one, ``stop_reason: stop_sequence``), ``max_tokens`` (``stop_reason: max_tokens``) and
``tools``/``tool_choice`` (``stop_reason: tool_use``). Errors are
``{"type": "error", "error": {"type", "message"}, "request_id"}`` with a ``request-id``
header: 429 ``rate_limit_error`` (with ``retry-after``), 529 ``overloaded_error``, 500
``api_error`` and so on. Auth: ``x-api-key`` (or ``authorization: Bearer``; any key, or
exactly ``api_key`` when given) and ``anthropic-version``; a missing key is a 401, a
missing version a 400, as on the real API. ``x-fake-*`` headers: see ``control``.
"""

from __future__ import annotations

from typing import Any

import orjson

from .asgi import Exchange, Headers, RecordedRequest, dumps
from .prompt import messages_prompt
from .provider import FakeProvider, Handler
from .reply import (
    FakeReply,
    FakeUsage,
    Prompt,
    Responder,
    anthropic_stop,
    json_pieces,
    reply_usage,
    text_pieces,
)
from .seed import Seed

_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def _usage(usage: FakeUsage, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


class Message:
    """The body or the events of one Messages reply."""

    def __init__(self, body: dict[str, Any], reply: FakeReply, prompt: Prompt, seed: Seed) -> None:
        self.reply = reply
        self.usage = reply_usage(reply, prompt)
        self.stop_reason = anthropic_stop(reply.finish_reason, bool(reply.tool_calls))
        self.head = {
            "id": "msg_01" + seed.token("id", 22),
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
        }
        self.tool_ids = [
            f"toolu_01{seed.token(f'tool{i}', 22)}" for i in range(len(reply.tool_calls))
        ]

    def _stop(self) -> dict[str, Any]:
        return {"stop_reason": self.stop_reason, "stop_sequence": self.reply.stop_sequence}

    def payload(self) -> bytes:
        content: list[dict[str, Any]] = []
        if self.reply.text:
            content.append({"type": "text", "text": self.reply.text})
        for tool_id, (name, arguments) in zip(self.tool_ids, self.reply.tool_calls, strict=True):
            content.append(
                {"type": "tool_use", "id": tool_id, "name": name, "input": _tool_input(arguments)}
            )
        return dumps(
            {
                **self.head,
                "content": content,
                **self._stop(),
                "usage": _usage(self.usage, self.usage.output_tokens),
            }
        )

    def frames(self) -> tuple[list[bytes], int, int]:
        """SSE frames, the index of the first content delta and of the ``message_delta``."""
        start: dict[str, Any] = {
            **self.head,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(self.usage, 1),
        }
        frames = [_event("message_start", {"type": "message_start", "message": start})]
        first = 0
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if self.reply.text:
            deltas = [{"type": "text_delta", "text": p} for p in text_pieces(self.reply.text)]
            blocks.append(({"type": "text", "text": ""}, deltas))
        for tool_id, (name, arguments) in zip(self.tool_ids, self.reply.tool_calls, strict=True):
            pieces = ["", *json_pieces(_tool_json(arguments))]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
            blocks.append(({"type": "tool_use", "id": tool_id, "name": name, "input": {}}, deltas))
        for index, (block, deltas) in enumerate(blocks):
            frames.append(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                )
            )
            if index == 0:
                frames.append(_event("ping", {"type": "ping"}))
                first = len(frames)
            frames += [
                _event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
                for delta in deltas
            ]
            frames.append(
                _event("content_block_stop", {"type": "content_block_stop", "index": index})
            )
        if not blocks:
            frames.append(_event("ping", {"type": "ping"}))
            first = len(frames)
        end = len(frames)
        usage = _usage(self.usage, self.usage.output_tokens)
        del usage["cache_creation"], usage["service_tier"]
        frames.append(
            _event(
                "message_delta", {"type": "message_delta", "delta": self._stop(), "usage": usage}
            )
        )
        frames.append(_event("message_stop", {"type": "message_stop"}))
        return frames, first, end


def _tool_json(arguments: str) -> str:
    """The JSON text streamed for a tool's input: the reply's own text when it is an object."""
    value = _tool_input(arguments)
    try:
        same = orjson.loads(arguments) == value
    except orjson.JSONDecodeError:
        same = False
    return arguments if same else dumps(value).decode()


class AnthropicFake(FakeProvider):
    """The fake Anthropic app; see the module docstring. ``requests`` records every call."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/messages"): self._messages,
            ("POST", "/v1/messages/count_tokens"): self._count_tokens,
        }

    def route(self, method: str, path: str) -> Handler | None:
        return self._routes.get((method, path))

    def auth_error(self, request: RecordedRequest) -> tuple[int, str, str | None] | None:
        key = request.header("x-api-key")
        if key is None:
            scheme, _, token = (request.header("authorization") or "").partition(" ")
            key = token if scheme.lower() == "bearer" else None
        if not key:
            return 401, "x-api-key header is required", None
        if self.api_key is not None and key != self.api_key:
            return 401, "invalid x-api-key", None
        if not request.header("anthropic-version"):
            return 400, "anthropic-version: header is required", None
        return None

    def _request_id(self, exchange: Exchange) -> str:
        return "req_011C" + Seed(exchange.request.path, exchange.request.body).token("req", 20)

    def headers(self, exchange: Exchange) -> Headers:
        return [(b"request-id", self._request_id(exchange).encode())]

    def error_payload(
        self,
        exchange: Exchange,
        status: int,
        message: str | None,
        kind: str | None,
        param: str | None,
        code: str | None,
    ) -> bytes:
        default_kind, default_message = _ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", "Error.")
        )
        error = {"type": kind or default_kind, "message": message or default_message}
        return dumps({"type": "error", "error": error, "request_id": self._request_id(exchange)})

    async def _validated(self, exchange: Exchange, *required: str) -> dict[str, Any] | None:
        body = await self.json_body(exchange)
        if body is None:
            return None
        for name in required:
            if name not in body:
                await self.send_error(exchange, 400, f"{name}: Field required")
                return None
        if "max_tokens" in required and not isinstance(body["max_tokens"], int):
            await self.send_error(exchange, 400, "max_tokens: Input should be a valid integer")
            return None
        if not isinstance(body["messages"], list):
            await self.send_error(exchange, 400, "messages: Input should be a valid list")
            return None
        return body

    async def _messages(self, exchange: Exchange) -> None:
        body = await self._validated(exchange, "model", "max_tokens", "messages")
        if body is None:
            return
        prompt = messages_prompt(body)
        reply = await self.reply(exchange, body, prompt)
        if reply is None:
            return
        message = Message(body, reply, prompt, Seed(exchange.request.path, exchange.request.body))
        if body.get("stream") is not True:
            await exchange.send_json(200, message.payload(), self.headers(exchange))
            return
        frames, first, end = message.frames()
        half = first + max(1, (end - first) // 2)
        mode = exchange.control.stream_error
        cut_after = half if mode == "cut" else None
        if mode == "clean":
            frames = frames[:half]
        elif mode in ("default", "event"):
            error = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
                "request_id": self._request_id(exchange),
            }
            frames = [*frames[:half], _event("error", error)]
        await exchange.send_stream(
            frames, self.headers(exchange), first_content=first, cut_after=cut_after
        )

    async def _count_tokens(self, exchange: Exchange) -> None:
        body = await self._validated(exchange, "model", "messages")
        if body is None:
            return
        prompt = messages_prompt(body)
        tokens = reply_usage(FakeReply(), prompt).input_tokens
        await exchange.send_json(200, dumps({"input_tokens": tokens}), self.headers(exchange))


def anthropic_app(
    *,
    latency_ms: float = 0.0,
    ttft_ms: float = 0.0,
    chunk_delay_ms: float = 0.0,
    responder: Responder | None = None,
    api_key: str | None = None,
    max_recorded: int = 10_000,
) -> AnthropicFake:
    """A fake Anthropic ASGI app with these defaults (per-request ``x-fake-*`` headers win)."""
    return AnthropicFake(
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        chunk_delay_ms=chunk_delay_ms,
        responder=responder,
        api_key=api_key,
        max_recorded=max_recorded,
    )
