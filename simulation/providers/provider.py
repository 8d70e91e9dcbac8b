"""The request flow both fakes share: record, check auth, parse, apply controls, answer.

A subclass names its routes, its auth rule, its error body and its response headers. The
order of checks follows the providers: unknown route (404), credentials (401), a body
that is not a JSON object (400), an ``x-fake-*`` header the fake cannot read (400),
``x-fake-status``, then the endpoint's own validation.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from .asgi import (
    Exchange,
    Headers,
    Receive,
    RecordedRequest,
    Scope,
    Send,
    lifespan,
    quiet_stream_cuts,
    read_body,
    record,
)
from .control import Control, ControlError, Timing, parse_control
from .reply import FakeReply, Prompt, Responder, default_reply

Handler = Callable[[Exchange], Awaitable[None]]


class FakeProvider:
    """Base of the fake provider apps (an ASGI 3 callable).

    Options (each request may override the timings with ``x-fake-*`` headers):
    ``latency_ms`` and ``ttft_ms`` as the headers of the same name; ``chunk_delay_ms``, the
    least gap between stream events after the first content; ``responder`` to script
    replies; ``api_key`` to accept only that key (None: any); ``max_recorded``.

    ``requests`` is a bounded deque of the last ``max_recorded`` requests received
    (``RecordedRequest``: method, path, query string, raw headers, raw body), oldest
    first; index it, iterate it, ``clear()`` it.
    """

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        ttft_ms: float = 0.0,
        chunk_delay_ms: float = 0.0,
        responder: Responder | None = None,
        api_key: str | None = None,
        max_recorded: int = 10_000,
    ) -> None:
        self.timing = Timing(latency_ms=latency_ms, ttft_ms=ttft_ms, chunk_delay_ms=chunk_delay_ms)
        self.responder = responder
        self.api_key = api_key
        self.requests: deque[RecordedRequest] = deque(maxlen=max_recorded)
        quiet_stream_cuts()

    # -- what a subclass provides -------------------------------------------------------

    def route(self, method: str, path: str) -> Handler | None:
        raise NotImplementedError

    def auth_error(self, request: RecordedRequest) -> tuple[int, str, str | None] | None:
        """``(status, message, code)`` when the credentials are missing or wrong."""
        raise NotImplementedError

    def error_payload(
        self,
        exchange: Exchange,
        status: int,
        message: str | None,
        kind: str | None,
        param: str | None,
        code: str | None,
    ) -> bytes:
        raise NotImplementedError

    def headers(self, exchange: Exchange) -> Headers:
        return []

    # -- the flow -----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if body is None:
            return
        request = record(scope, body, self.requests)
        problem = None
        try:
            control = parse_control(request.headers, self.timing)
        except ControlError as exc:
            control, problem = Control(timing=self.timing), str(exc)
        exchange = Exchange(request, control, receive, send)
        try:
            await self._dispatch(exchange, problem)
        finally:
            exchange.close()

    async def _dispatch(self, exchange: Exchange, problem: str | None) -> None:
        request = exchange.request
        handler = self.route(request.method, request.path)
        if handler is None:
            await self.send_error(exchange, 404, f"Invalid URL ({request.method} {request.path})")
            return
        denied = self.auth_error(request)
        if denied is not None:
            status, message, code = denied
            await self.send_error(exchange, status, message, code=code)
        elif problem is not None:
            await self.send_error(exchange, 400, problem)
        elif exchange.control.status is not None:
            await self.send_error(exchange, exchange.control.status)
        else:
            await handler(exchange)

    async def send_error(
        self,
        exchange: Exchange,
        status: int,
        message: str | None = None,
        *,
        kind: str | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        headers = self.headers(exchange)
        retry = retry_after or exchange.control.retry_after or ("1" if status == 429 else None)
        if retry:
            headers.append((b"retry-after", retry.encode("latin-1")))
        payload = self.error_payload(exchange, status, message, kind, param, code)
        await exchange.send_json(status, payload, headers, paced=False)

    async def json_body(self, exchange: Exchange) -> dict[str, Any] | None:
        """The request body as a JSON object, or None after answering a 400."""
        try:
            body = orjson.loads(exchange.request.body)
        except orjson.JSONDecodeError as exc:
            await self.send_error(exchange, 400, f"The request body is not valid JSON: {exc}")
            return None
        if not isinstance(body, dict):
            await self.send_error(exchange, 400, "The request body must be a JSON object.")
            return None
        return body

    async def reply(
        self, exchange: Exchange, body: dict[str, Any], prompt: Prompt
    ) -> FakeReply | None:
        """The responder's reply or the default one; None after answering a scripted error."""
        reply = None
        if self.responder is not None:
            headers: Mapping[str, str] = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in exchange.request.headers
            }
            result = self.responder(body, headers)
            reply = await result if inspect.isawaitable(result) else result
        if reply is None:
            reply = default_reply(prompt, exchange.control)
        if reply.status is not None:
            await self.send_error(
                exchange,
                reply.status,
                reply.error_message,
                kind=reply.error_type,
                retry_after=reply.retry_after,
            )
            return None
        return reply
