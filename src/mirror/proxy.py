"""The sidecar: a transparent reverse proxy for the provider APIs that captures as it forwards.

Plain ASGI (a framework adds nothing here), served by uvicorn; upstream calls through one
aiohttp session, which measured the cheapest per-request cost of the Python HTTP clients on
this path. What the app sees is what the provider sent: status, headers (less the hop-by-hop
ones, which belong to each connection) and body bytes as they arrive, compressed or not, JSON
or not; no timeout shorter than the provider's own; no re-serialisation; a stream chunk is
forwarded before it is looked at.

Routing: `/<provider>/v1/...` goes to that configured provider; any other path goes to the
default provider of its dialect — Anthropic when the path is `/v1/messages...` or the request
carries `anthropic-version`, OpenAI otherwise. Unreachable upstream: a 502 in that provider's
own error shape. When the app goes away, the upstream request is closed at once.

Capture costs the live path a list append per chunk and one `Publisher.submit` at the end; all
parsing happens later in the publisher's task. Headers named `x-shadow-*` are ours (segment
labels) and are not forwarded, nor is the runner's shadow-traffic marker.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
from yarl import URL

from mirror.capture import Exchange, api_for, new_exchange
from mirror.config import ProviderSettings, SidecarSettings
from mirror.events import (
    SEGMENT_HEADER_PREFIX,
    SHADOW_TRAFFIC_HEADER,
    ErrorInfo,
    ErrorKind,
    ProviderKind,
)
from mirror.metrics import CONTENT_TYPE, SidecarMetrics
from mirror.publisher import Publisher

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length", SHADOW_TRAFFIC_HEADER.encode()}
_SEGMENT_PREFIX = SEGMENT_HEADER_PREFIX.encode()
_SHADOW = SHADOW_TRAFFIC_HEADER.encode()
_ANTHROPIC_VERSION = b"anthropic-version"
_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
_BIG_BODY = 1 << 20


_CLIENT_LEFT = ErrorInfo(kind=ErrorKind.CLIENT_DISCONNECT, message="the app closed the connection")


def _went_away(watcher: asyncio.Future[bool]) -> bool:
    return (
        watcher.done()
        and not watcher.cancelled()
        and watcher.exception() is None
        and (watcher.result())
    )


class UpstreamBroken(Exception):
    """The upstream connection broke mid-answer: the app's connection is cut the same way."""


def default_upstreams(
    providers: Mapping[str, ProviderSettings], chosen: Mapping[ProviderKind, str]
) -> dict[ProviderKind, str]:
    defaults: dict[ProviderKind, str] = {}
    for kind in ProviderKind:
        if kind in chosen:
            defaults[kind] = chosen[kind]
        elif kind.value in providers and providers[kind.value].kind is kind:
            defaults[kind] = kind.value
        else:
            named = [name for name, p in providers.items() if p.kind is kind]
            if named:
                defaults[kind] = named[0]
    return defaults


def error_body(kind: ProviderKind, message: str) -> bytes:
    """An error body in the provider's own shape, so the app's SDK parses it as usual."""
    if kind is ProviderKind.ANTHROPIC:
        return orjson.dumps({"type": "error", "error": {"type": "api_error", "message": message}})
    return orjson.dumps(
        {"error": {"message": message, "type": "api_error", "param": None, "code": None}}
    )


class Sidecar:
    """The ASGI app. `publisher` None means pass-through only."""

    def __init__(
        self,
        settings: SidecarSettings,
        providers: Mapping[str, ProviderSettings],
        publisher: Publisher | None,
        metrics: SidecarMetrics,
    ) -> None:
        self._settings = settings
        self._providers = dict(providers)
        self._defaults = default_upstreams(providers, settings.upstream)
        self._publisher = publisher
        self._metrics = metrics
        self._session: aiohttp.ClientSession | None = None
        self._request_counters: dict[tuple[str, str], Any] = {}
        self._latency: dict[str, Any] = {}

    # --- lifecycle -------------------------------------------------------------------------

    async def startup(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._settings.max_connections, ttl_dns_cache=300),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=self._settings.connect_timeout_s,
                sock_read=self._settings.read_timeout_s,
            ),
        )
        if self._publisher is not None:
            await self._publisher.start()

    async def shutdown(self) -> None:
        if self._publisher is not None:
            await self._publisher.stop()
        if self._session is not None:
            await self._session.close()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- requests --------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "GET" and path in ("/metrics", "/healthz"):
            await self._local(path, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)

        forward: list[tuple[str, str]] = []
        anthropic_hint = False
        shadow_traffic = False
        for name, value in scope["headers"]:
            if name in _NOT_FORWARDED or name.startswith(_SEGMENT_PREFIX):
                shadow_traffic = shadow_traffic or name == _SHADOW
                continue
            anthropic_hint = anthropic_hint or name == _ANTHROPIC_VERSION
            forward.append((name.decode("latin-1"), value.decode("latin-1")))

        raw_path: bytes = scope.get("raw_path") or path.encode()
        provider_name, upstream_path = self._route(path, raw_path, anthropic_hint)
        provider = self._providers.get(provider_name) if provider_name else None
        if provider is None:
            await self._reply(send, 502, ProviderKind.OPENAI, "no upstream provider configured")
            return
        query: bytes = scope.get("query_string", b"")
        target = provider.base_url + upstream_path.decode("latin-1")
        if query:
            target += "?" + query.decode("latin-1")

        api = api_for(method, upstream_path.decode("latin-1"))
        exchange: Exchange | None = None
        if api is not None and self._publisher is not None and not shadow_traffic:
            exchange = new_exchange(api, provider_name, scope["headers"], body)
        api_label = api.value if api is not None else "other"
        started = time.perf_counter()
        await self._forward(
            method,
            target,
            forward,
            body,
            provider,
            provider_name,
            exchange,
            api_label,
            receive,
            send,
        )
        self._observe(api_label, started)

    def _route(self, path: str, raw_path: bytes, anthropic_hint: bool) -> tuple[str, bytes]:
        first = path.split("/", 2)[1] if path.count("/") >= 2 else ""
        if first in self._providers:
            return first, raw_path[len(first) + 1 :]
        if path.startswith("/v1/messages") or anthropic_hint:
            kind = ProviderKind.ANTHROPIC
        else:
            kind = ProviderKind.OPENAI
        return self._defaults.get(kind, ""), raw_path

    async def _forward(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        provider: ProviderSettings,
        provider_name: str,
        exchange: Exchange | None,
        api_label: str,
        receive: Any,
        send: Any,
    ) -> None:
        assert self._session is not None
        try:
            response = await self._session.request(
                method,
                URL(target, encoded=True),
                # aiohttp warns that big raw bytes block the loop while they are copied;
                # a BytesIO view is streamed in chunks instead (same bytes, same length).
                data=body if len(body) < _BIG_BODY else io.BytesIO(body),
                headers=headers,
                skip_auto_headers=_AUTO_HEADERS,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._metrics.upstream_errors.labels(provider_name).inc()
            message = (
                f"shadowjudge sidecar: upstream {provider_name} unreachable: {type(exc).__name__}"
            )
            await self._reply(send, 502, provider.kind, message)
            self._count(api_label, "5xx")
            if exchange is not None:
                exchange.ended = time.perf_counter()
                exchange.error = ErrorInfo(kind=ErrorKind.UNREACHABLE, message=message)
                self._finish(exchange)
            return

        watcher = asyncio.ensure_future(self._watch_disconnect(receive, response))
        error: ErrorInfo | None = None
        broken: BaseException | None = None
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [
                        (k, v) for k, v in response.raw_headers if k.lower() not in HOP_BY_HOP
                    ],
                }
            )
            if exchange is not None:
                exchange.status = response.status
                exchange.response_headers = response.raw_headers
                await self._stream_captured(response, exchange, send)
            else:
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if _went_away(watcher):
                error = _CLIENT_LEFT
            else:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            if _went_away(watcher):
                error = _CLIENT_LEFT
            else:
                broken = exc
                error = ErrorInfo(
                    kind=ErrorKind.INCOMPLETE, message=f"upstream broke: {type(exc).__name__}"
                )
        finally:
            watcher.cancel()
            response.release()
            self._count(api_label, f"{response.status // 100}xx")
        if exchange is not None:
            exchange.ended = exchange.ended or time.perf_counter()
            exchange.error = error
            self._finish(exchange)
        if broken is not None:
            raise UpstreamBroken(f"upstream {provider_name} broke mid-answer") from broken

    async def _stream_captured(
        self, response: aiohttp.ClientResponse, exchange: Exchange, send: Any
    ) -> None:
        assert self._publisher is not None
        cap = self._publisher.max_body_bytes
        chunks = exchange.chunks
        times = exchange.chunk_times
        async for chunk in response.content.iter_any():
            arrived = time.perf_counter()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not exchange.response_truncated:
                room = cap - exchange.captured_bytes
                if len(chunk) > room:
                    chunk = chunk[:room]
                    exchange.response_truncated = True
                chunks.append(chunk)
                times.append(arrived)
                exchange.captured_bytes += len(chunk)
        exchange.ended = time.perf_counter()

    async def _watch_disconnect(self, receive: Any, response: aiohttp.ClientResponse) -> bool:
        """Wait for the app to go away; then close the upstream answer. True if it went."""
        message = await receive()
        if message["type"] == "http.disconnect":
            response.close()
            return True
        return False

    def _finish(self, exchange: Exchange) -> None:
        if self._publisher is not None:
            self._publisher.submit(exchange)

    def _count(self, api: str, status_class: str) -> None:
        key = (api, status_class)
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self._request_counters[key] = self._metrics.requests.labels(*key)
        counter.inc()

    def _observe(self, api: str, started: float) -> None:
        histogram = self._latency.get(api)
        if histogram is None:
            histogram = self._latency[api] = self._metrics.upstream_latency.labels(api)
        histogram.observe(time.perf_counter() - started)

    async def _reply(self, send: Any, status: int, kind: ProviderKind, message: str) -> None:
        body = error_body(kind, message)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _local(self, path: str, send: Any) -> None:
        if path == "/metrics":
            body = self._metrics.render()
            content_type = CONTENT_TYPE.encode()
        else:
            publisher = self._publisher
            body = orjson.dumps(
                {
                    "status": "ok",
                    "capture": publisher is not None,
                    "bus_connected": publisher.connected if publisher else None,
                    "queue_depth": publisher.depth if publisher else 0,
                }
            )
            content_type = b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
