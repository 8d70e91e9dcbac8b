"""In-process capture: an httpx transport that wraps the real one, for apps without a sidecar.

    mirror = InProcessMirror(settings.capture, settings.bus)
    client = anthropic.Anthropic(http_client=httpx2.Client(transport=mirror.transport()))
    openai_client = openai.AsyncOpenAI(
        http_client=httpx2.AsyncClient(transport=mirror.async_transport())
    )

The current SDKs are built on httpx2 (anthropic refuses a plain httpx client); openai still takes
an httpx client, so both libraries are offered: `transport()`/`async_transport()` for httpx2 and
`httpx_transport()`/`httpx_async_transport()` for httpx. The wrapper passes the request and the
response through untouched — it tees the raw (still encoded) response bytes as the app reads
them — and hands the same `Exchange` the sidecar builds to the same publisher. The publisher
runs on its own thread with its own event loop, so sync and async apps, in any number of
threads or loops, share one bounded queue and one bus connection; `submit` never blocks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import httpx2

from mirror.bus.base import Bus
from mirror.bus.factory import open_bus
from mirror.config import BusSettings, CaptureSettings
from mirror.events import SHADOW_TRAFFIC_HEADER, ErrorInfo, ErrorKind
from mirror.sidecar.capture import Exchange, api_for, new_exchange
from mirror.sidecar.metrics import SidecarMetrics
from mirror.sidecar.publisher import Publisher


class InProcessMirror:
    """A publisher on a background thread, and transports that feed it."""

    def __init__(
        self,
        capture: CaptureSettings,
        bus_settings: BusSettings,
        *,
        bus: Bus | None = None,
        metrics: SidecarMetrics | None = None,
    ) -> None:
        self.metrics = metrics or SidecarMetrics()
        self.loop = asyncio.new_event_loop()
        self.bus = bus or open_bus(bus_settings, client_id="shadowjudge-inprocess")
        self.publisher = Publisher(
            self.bus, bus_settings.topics.calls, capture, self.metrics, own_bus=True
        )
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.publisher.start(), self.loop).result()

    def close(self, drain_timeout_s: float = 5.0) -> None:
        """Publish what is queued (within the timeout) and stop the background thread."""
        future = asyncio.run_coroutine_threadsafe(self.publisher.stop(drain_timeout_s), self.loop)
        future.result(drain_timeout_s * 3)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()

    def transport(
        self, inner: httpx2.BaseTransport | None = None, *, provider: str = "openai"
    ) -> CaptureTransport:
        return CaptureTransport(inner or httpx2.HTTPTransport(), self.publisher, provider)

    def async_transport(
        self, inner: httpx2.AsyncBaseTransport | None = None, *, provider: str = "openai"
    ) -> AsyncCaptureTransport:
        return AsyncCaptureTransport(inner or httpx2.AsyncHTTPTransport(), self.publisher, provider)

    def httpx_transport(
        self, inner: httpx.BaseTransport | None = None, *, provider: str = "openai"
    ) -> HttpxCaptureTransport:
        return HttpxCaptureTransport(inner or httpx.HTTPTransport(), self.publisher, provider)

    def httpx_async_transport(
        self, inner: httpx.AsyncBaseTransport | None = None, *, provider: str = "openai"
    ) -> HttpxAsyncCaptureTransport:
        return HttpxAsyncCaptureTransport(
            inner or httpx.AsyncHTTPTransport(), self.publisher, provider
        )


def _begin(
    publisher: Publisher, provider: str, method: str, path: str, headers: Any, body: bytes
) -> Exchange | None:
    at = path.find("/v1/")
    api = api_for(method, path[at:] if at >= 0 else path)
    if api is None or SHADOW_TRAFFIC_HEADER in headers:
        return None
    return new_exchange(api, provider, list(headers.raw), body)


class _Tee:
    """Records the chunks an app reads; submits the exchange when the response is closed."""

    def __init__(self, exchange: Exchange, publisher: Publisher) -> None:
        self.exchange = exchange
        self.publisher = publisher
        self.cap = publisher.max_body_bytes
        self.complete = False
        self.submitted = False

    def record(self, chunk: bytes) -> None:
        self.exchange.record(chunk, time.perf_counter(), self.cap)

    def finish(self) -> None:
        if self.submitted:
            return
        self.submitted = True
        exchange = self.exchange
        exchange.ended = exchange.ended or time.perf_counter()
        if not self.complete and exchange.error is None:
            exchange.error = ErrorInfo(
                kind=ErrorKind.CLIENT_DISCONNECT, message="the app closed the response early"
            )
        self.publisher.submit(exchange)

    def done(self) -> None:
        self.complete = True
        self.exchange.ended = time.perf_counter()


class _SyncTeeStream:
    def __init__(self, inner: Any, tee: _Tee) -> None:
        self._inner = inner
        self._tee = tee

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._tee.record(chunk)
            yield chunk
        self._tee.done()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._tee.finish()


class _AsyncTeeStream:
    def __init__(self, inner: Any, tee: _Tee) -> None:
        self._inner = inner
        self._tee = tee

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._tee.record(chunk)
            yield chunk
        self._tee.done()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._tee.finish()


class _HttpxSyncTee(_SyncTeeStream, httpx.SyncByteStream):
    pass


class _HttpxAsyncTee(_AsyncTeeStream, httpx.AsyncByteStream):
    pass


class _Httpx2SyncTee(_SyncTeeStream, httpx2.SyncByteStream):
    pass


class _Httpx2AsyncTee(_AsyncTeeStream, httpx2.AsyncByteStream):
    pass


def _unreachable(exchange: Exchange, publisher: Publisher, exc: Exception) -> None:
    exchange.ended = time.perf_counter()
    exchange.error = ErrorInfo(kind=ErrorKind.UNREACHABLE, message=type(exc).__name__)
    publisher.submit(exchange)


def _teed(lib: Any, tee_type: type, response: Any, exchange: Exchange, publisher: Publisher) -> Any:
    """The inner response, same status, headers and extensions, its stream teed."""
    exchange.status, exchange.response_headers = response.status_code, response.headers.raw
    return lib.Response(
        response.status_code,
        headers=response.headers,
        stream=tee_type(response.stream, _Tee(exchange, publisher)),
        extensions=response.extensions,
    )


class _SyncWrapper:
    """One sync transport body for both libraries: `_lib` and `_tee` name the library's own."""

    _lib: Any
    _tee: type

    def __init__(self, inner: Any, publisher: Publisher, provider: str) -> None:
        self._inner, self._publisher, self._provider = inner, publisher, provider

    def _handle(self, request: Any) -> Any:
        exchange = _begin(
            self._publisher, self._provider, request.method, request.url.path,
            request.headers, request.read(),
        )  # fmt: skip
        if exchange is None:
            return self._inner.handle_request(request)
        try:
            response = self._inner.handle_request(request)
        except Exception as exc:
            _unreachable(exchange, self._publisher, exc)
            raise
        return _teed(self._lib, self._tee, response, exchange, self._publisher)

    def close(self) -> None:
        self._inner.close()


class _AsyncWrapper:
    _lib: Any
    _tee: type

    def __init__(self, inner: Any, publisher: Publisher, provider: str) -> None:
        self._inner, self._publisher, self._provider = inner, publisher, provider

    async def _handle(self, request: Any) -> Any:
        exchange = _begin(
            self._publisher, self._provider, request.method, request.url.path,
            request.headers, await request.aread(),
        )  # fmt: skip
        if exchange is None:
            return await self._inner.handle_async_request(request)
        try:
            response = await self._inner.handle_async_request(request)
        except Exception as exc:
            _unreachable(exchange, self._publisher, exc)
            raise
        return _teed(self._lib, self._tee, response, exchange, self._publisher)

    async def aclose(self) -> None:
        await self._inner.aclose()


class CaptureTransport(_SyncWrapper, httpx2.BaseTransport):
    _lib, _tee = httpx2, _Httpx2SyncTee

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self._handle(request)  # type: ignore[no-any-return]


class AsyncCaptureTransport(_AsyncWrapper, httpx2.AsyncBaseTransport):
    _lib, _tee = httpx2, _Httpx2AsyncTee

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self._handle(request)  # type: ignore[no-any-return]


class HttpxCaptureTransport(_SyncWrapper, httpx.BaseTransport):
    _lib, _tee = httpx, _HttpxSyncTee

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._handle(request)  # type: ignore[no-any-return]


class HttpxAsyncCaptureTransport(_AsyncWrapper, httpx.AsyncBaseTransport):
    _lib, _tee = httpx, _HttpxAsyncTee

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._handle(request)  # type: ignore[no-any-return]
