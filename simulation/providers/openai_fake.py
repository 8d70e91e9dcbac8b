"""A fake OpenAI API (plain ASGI) that the official ``openai`` SDK accepts unchanged.

Endpoints: ``POST /v1/chat/completions`` (plain and ``stream: true``, with
``stream_options.include_usage`` and ``include_obfuscation``), ``POST /v1/responses``
(plain and streamed, see ``openai_responses``), ``POST /v1/embeddings`` (``float`` or
``base64`` little-endian float32; real offline models or vectors seeded by the input, see
``openai_embeddings``), ``GET /v1/models``
and ``GET /v1/models/{id}``. Point the SDK at it with ``OpenAI(base_url=f"{url}/v1")``.

Wire behaviour mirrored from the real API: non-streaming bodies are pretty-printed JSON
(gzipped when the client accepts gzip); stream chunks are ``data: {json}\\n\\n`` lines,
every delta chunk carries an ``obfuscation`` string of varying length and, with
``include_usage``, ``"usage": null``; the last chunk has ``"choices": []`` and the usage;
then ``data: [DONE]``. Errors are ``{"error": {"message", "type", "param", "code"}}``; a
429 carries ``retry-after``. Auth: ``authorization: Bearer <key>`` (any key, or exactly
``api_key`` when the app was given one).

Determinism: ids, ``created``, ``x-request-id``, ``system_fingerprint`` (from the model)
and obfuscation strings come from a hash of the path and body, the text from the prompt
(see ``reply``); per-request ``x-fake-*`` headers are described in ``control``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ..embeddings import Embedder, EmbeddingInputError
from .asgi import Exchange, Headers, RecordedRequest, dumps
from .openai_embeddings import embeddings_payload
from .openai_responses import responses_payload, responses_stream
from .prompt import chat_prompt, responses_prompt
from .provider import FakeProvider, Handler
from .reply import (
    FakeReply,
    FakeUsage,
    Prompt,
    Responder,
    json_pieces,
    openai_finish,
    reply_usage,
    text_pieces,
)
from .seed import BASE62, HEX, Seed, hash_label

MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please retry."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", "service_unavailable", "The server is overloaded or not ready yet."),
}


def chat_usage(usage: FakeUsage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def obfuscator(seed: Seed) -> Any:
    """Deterministic stand-ins for the random padding real streams carry."""
    rng = seed.rng("obfuscation")
    return lambda: "".join(rng.choices(BASE62, k=rng.randint(1, 16)))


class ChatCompletion:
    """The body or the chunks of one chat completion."""

    def __init__(self, body: dict[str, Any], reply: FakeReply, prompt: Prompt, seed: Seed) -> None:
        self.reply = reply
        self.usage = reply_usage(reply, prompt)
        self.finish = openai_finish(reply.finish_reason, bool(reply.tool_calls))
        model = str(body["model"])
        self.head: dict[str, Any] = {
            "id": "chatcmpl-" + seed.token("id", 29),
            "object": "chat.completion",
            "created": seed.created(),
            "model": model,
        }
        fingerprint = f"fp_{hash_label(model):010x}"[:13]
        self.tail = {"service_tier": "default", "system_fingerprint": fingerprint}
        self.call_ids = [f"call_{seed.token(f'call{i}', 24)}" for i in range(len(reply.tool_calls))]
        self.seed = seed

    def payload(self) -> bytes:
        calls = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, (name, args) in zip(self.call_ids, self.reply.tool_calls, strict=True)
        ]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.reply.text or (None if calls else ""),
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish}
        body = {**self.head, "choices": [choice], "usage": chat_usage(self.usage), **self.tail}
        return dumps(body, indent=True)

    def frames(self, options: Any) -> tuple[list[bytes], int, int]:
        """SSE frames, the index of the first content frame and the end of the deltas."""
        options = options if isinstance(options, dict) else {}
        include_usage = options.get("include_usage") is True
        noise = obfuscator(self.seed) if options.get("include_obfuscation", True) else None
        head = {**self.head, "object": "chat.completion.chunk", **self.tail}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            data: dict[str, Any] = {**head, "choices": [choice]}
            if include_usage:
                data["usage"] = None
            if noise is not None:
                data["obfuscation"] = noise()
            return b"data: " + dumps(data) + b"\n\n"

        text, calls = self.reply.text, self.reply.tool_calls
        content = "" if text or not calls else None
        frames = [chunk({"role": "assistant", "content": content, "refusal": None})]
        frames += [chunk({"content": piece}) for piece in text_pieces(text)]
        for index, (cid, (name, args)) in enumerate(zip(self.call_ids, calls, strict=True)):
            function = {"name": name, "arguments": ""}
            frames.append(
                chunk(
                    {
                        "tool_calls": [
                            {"index": index, "id": cid, "type": "function", "function": function}
                        ]
                    }
                )
            )
            frames += [
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                for piece in json_pieces(args)
            ]
        frames.append(chunk({}, self.finish))
        end = len(frames)
        if include_usage:
            last = {**head, "choices": [], "usage": chat_usage(self.usage)}
            frames.append(b"data: " + dumps(last) + b"\n\n")
        frames.append(b"data: [DONE]\n\n")
        return frames, 1, end


class OpenAIFake(FakeProvider):
    """The fake OpenAI app; see the module docstring. ``requests`` records every call."""

    def __init__(
        self,
        *,
        models: tuple[str, ...] = MODELS,
        embedders: Mapping[str, Embedder] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.embedders: Mapping[str, Embedder] = dict(embedders or {})
        self.models = (*models, *(name for name in self.embedders if name not in models))
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/responses"): self._responses,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("GET", "/v1/models"): self._list_models,
        }

    def route(self, method: str, path: str) -> Handler | None:
        if method == "GET" and path.startswith("/v1/models/"):
            return self._get_model
        return self._routes.get((method, path))

    def auth_error(self, request: RecordedRequest) -> tuple[int, str, str | None] | None:
        value = request.header("authorization") or ""
        scheme, _, key = value.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return (
                401,
                (
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                ),
                None,
            )
        if self.api_key is not None and key.strip() != self.api_key:
            return 401, f"Incorrect API key provided: {key[:3]}***{key[-4:]}.", "invalid_api_key"
        return None

    def headers(self, exchange: Exchange) -> Headers:
        request_id = Seed(exchange.request.path, exchange.request.body).token("req", 32, HEX)
        return [
            (b"x-request-id", b"req_" + request_id.encode()),
            (b"openai-version", b"2020-10-01"),
            (b"openai-processing-ms", str(int(exchange.control.timing.latency_ms)).encode()),
        ]

    def error_payload(
        self,
        exchange: Exchange,
        status: int,
        message: str | None,
        kind: str | None,
        param: str | None,
        code: str | None,
    ) -> bytes:
        default_kind, default_code, default_message = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
        )
        if message is None:  # a bare status (x-fake-status, a scripted error): the usual body
            message, code = default_message, code or default_code
        error = {"message": message, "type": kind or default_kind, "param": param, "code": code}
        return dumps({"error": error}, indent=True)

    async def _require(self, exchange: Exchange, body: dict[str, Any], *names: str) -> bool:
        for name in names:
            if body.get(name) is None:
                await self.send_error(
                    exchange,
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )
                return False
        return True

    async def _chat(self, exchange: Exchange) -> None:
        body = await self.json_body(exchange)
        if body is None or not await self._require(exchange, body, "model", "messages"):
            return
        if not isinstance(body["messages"], list) or not body["messages"]:
            message = "Invalid 'messages': expected an array with minimum length 1."
            await self.send_error(exchange, 400, message, param="messages", code="empty_array")
            return
        prompt = chat_prompt(body)
        reply = await self.reply(exchange, body, prompt)
        if reply is None:
            return
        request = exchange.request
        completion = ChatCompletion(body, reply, prompt, Seed(request.path, request.body))
        if body.get("stream") is not True:
            await exchange.send_json(200, completion.payload(), self.headers(exchange))
            return
        frames, first, end = completion.frames(body.get("stream_options"))
        await self._stream(exchange, frames, first, end)

    async def _stream(self, exchange: Exchange, frames: list[bytes], first: int, end: int) -> None:
        mode = exchange.control.stream_error
        half = first + max(1, (end - first) // 2)
        cut_after = None
        if mode in ("default", "cut"):
            cut_after = half
        elif mode == "clean":
            frames = frames[:half]
        elif mode == "event":
            error = {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
                "param": None,
                "code": None,
            }
            frames = [*frames[:half], b"data: " + dumps({"error": error}) + b"\n\n"]
        await exchange.send_stream(
            frames, self.headers(exchange), first_content=first, cut_after=cut_after
        )

    async def _responses(self, exchange: Exchange) -> None:
        body = await self.json_body(exchange)
        if body is None or not await self._require(exchange, body, "model"):
            return
        prompt = responses_prompt(body)
        reply = await self.reply(exchange, body, prompt)
        if reply is None:
            return
        seed = Seed(exchange.request.path, exchange.request.body)
        if body.get("stream") is not True:
            payload = responses_payload(body, reply, prompt, seed)
            await exchange.send_json(200, payload, self.headers(exchange))
            return
        mode = exchange.control.stream_error
        frames, first, cut_after = responses_stream(body, reply, prompt, seed, mode)
        await exchange.send_stream(
            frames, self.headers(exchange), first_content=first, cut_after=cut_after
        )

    async def _embeddings(self, exchange: Exchange) -> None:
        body = await self.json_body(exchange)
        if body is None or not await self._require(exchange, body, "model", "input"):
            return
        try:
            if str(body["model"]) in self.embedders:  # a real model: off the event loop
                payload = await asyncio.to_thread(embeddings_payload, body, self.embedders)
            else:
                payload = embeddings_payload(body, self.embedders)
        except EmbeddingInputError as exc:
            await self.send_error(exchange, 400, str(exc), param=exc.param)
            return
        await exchange.send_json(200, payload, self.headers(exchange))

    def _model(self, name: str) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": 1_700_000_000 + hash_label(name) % 10**7,
            "owned_by": "system",
        }

    async def _list_models(self, exchange: Exchange) -> None:
        payload = {"object": "list", "data": [self._model(name) for name in self.models]}
        await exchange.send_json(200, dumps(payload, indent=True), self.headers(exchange))

    async def _get_model(self, exchange: Exchange) -> None:
        name = exchange.request.path.removeprefix("/v1/models/")
        if name not in self.models:
            await self.send_error(
                exchange,
                404,
                f"The model '{name}' does not exist",
                param="model",
                code="model_not_found",
            )
            return
        await exchange.send_json(200, dumps(self._model(name), indent=True), self.headers(exchange))


def openai_app(
    *,
    latency_ms: float = 0.0,
    ttft_ms: float = 0.0,
    chunk_delay_ms: float = 0.0,
    responder: Responder | None = None,
    api_key: str | None = None,
    models: tuple[str, ...] = MODELS,
    embedders: Mapping[str, Embedder] | None = None,
    max_recorded: int = 10_000,
) -> OpenAIFake:
    """A fake OpenAI ASGI app with these defaults (per-request ``x-fake-*`` headers win).

    ``embedders``: real embedding models by served name (for example
    ``simulation.embeddings.offline_models()``); other embedding model names get seeded
    vectors (see ``openai_embeddings``).
    """
    return OpenAIFake(
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        chunk_delay_ms=chunk_delay_ms,
        responder=responder,
        api_key=api_key,
        models=models,
        embedders=embedders,
        max_recorded=max_recorded,
    )
