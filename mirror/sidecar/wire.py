"""HTTP/1.1 on asyncio protocols: the app's connections and the pool of upstream connections.

Why not ASGI and an HTTP client: on this 2-core machine a bare uvicorn + aiohttp proxy added
1.35 ms at the median (200 req/s), most of it in the two stacks' per-request machinery, while a
byte pipe on the same event loop added 0.09 ms (`tests/benchmarks/sidecar_overhead.py`). So
the sidecar speaks HTTP/1.1 itself, and leaves the parsing on both sides to httptools (llhttp,
the parser of Node.js, which uvicorn uses too).

The answer is a byte pipe. Every byte the upstream sends is written to the app as it arrives,
before anything looks at it: the status line, header names in their case, the framing
(chunked or not) and the body reach the app exactly as sent. A parser watches the same bytes
only to learn where the answer ends and to hand the body, de-chunked, to capture. The request
is re-framed instead (see `proxy`): its body is read whole, as capture needs it anyway.

This module knows nothing of providers or capture: an `AppConnection` hands each complete
request to its `Handler`; an `UpstreamConnection` reports to the `Listener` it serves.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, cast

import httptools

log = logging.getLogger(__name__)

#: Idle app connections are closed after this long. Longer than the idle expiry of the apps'
#: connection pools (httpx: 5 s), so the app, not the sidecar, closes an idle connection: the
#: other way round races, and the app sees an error it would not see from the provider.
APP_KEEP_ALIVE_S = 75.0


@dataclass(slots=True)
class Request:
    """One request as the app sent it, header names in their original case."""

    method: bytes = b""
    target: bytes = b""
    version: str = "1.1"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    parts: list[bytes] = field(default_factory=list)
    keep_alive: bool = True

    @property
    def body(self) -> bytes:
        parts = self.parts
        if not parts:
            return b""
        return parts[0] if len(parts) == 1 else b"".join(parts)


class Answering(Protocol):
    """What answers the app's current request: an upstream connection, or the sidecar's
    served-call task (staged rollout). It follows the app's flow control and is told when
    the app goes away."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def app_left(self) -> None: ...


class Handler(Protocol):
    def handle(self, app: AppConnection, request: Request) -> None:
        """Answer `request`, then call `app.done(...)` exactly once."""

    def bad_request(self, app: AppConnection, reason: str) -> None:
        """The app sent something that is not HTTP/1.1; answer and close."""


def simple_response(status: int, reason: bytes, content_type: bytes, body: bytes) -> bytes:
    """A whole response with a body of known length (the sidecar's own answers)."""
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"
            % (status, reason, content_type, len(body)),
            body,
        )
    )


class AppConnection(asyncio.Protocol):
    """One connection from the app. Requests are answered one at a time, in order."""

    def __init__(self, handler: Handler, registry: set[AppConnection]) -> None:
        self._handler = handler
        self._registry = registry
        self._parser = httptools.HttpRequestParser(self)
        self._request = Request()
        self._queue: deque[Request] = deque()
        self._idle: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.closed = False
        #: What answers the current request (an upstream connection, a served call), for
        #: flow control and for stopping it when the app goes away.
        self.upstream: Answering | None = None
        self.writing_paused = False

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass it
        self._registry.add(self)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._decline_upgrade(data[upgrade.args[0] :] if upgrade.args else b"")
        except httptools.HttpParserError as exc:
            if self.busy:  # an answer is being written: no room for ours in between
                self.cut()
            else:
                self._handler.bad_request(self, f"invalid HTTP request: {exc}")

    def _decline_upgrade(self, rest: bytes) -> None:
        """Answer an upgrade offer (`Upgrade: h2c`, WebSocket) as plain HTTP/1.1, as a server
        may: the head is parsed again without `Upgrade`, so its body and what follows are
        read as usual. CONNECT, which only a forward proxy serves, is refused."""
        request = self._request
        if request.method == b"CONNECT":
            self._handler.bad_request(self, "CONNECT is not served: this is a reverse proxy")
            return
        head = [b"%s %s HTTP/%s\r\n" % (request.method, request.target, request.version.encode())]
        head.extend(
            b"%s: %s\r\n" % (name, value)
            for name, value in request.headers
            if name.lower() != b"upgrade"
        )
        head.append(b"\r\n")
        self._parser = httptools.HttpRequestParser(self)
        self.data_received(b"".join(head) + rest)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._registry.discard(self)
        if self._idle is not None:
            self._idle.cancel()
        upstream = self.upstream
        if upstream is not None:
            upstream.app_left()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.upstream is not None:
            self.upstream.pause()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.upstream is not None:
            self.upstream.resume()

    # --- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._request = Request()

    def on_url(self, url: bytes) -> None:
        self._request.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._request.headers.append((name, value))

    def on_headers_complete(self) -> None:
        request = self._request
        parser = self._parser
        request.method = parser.get_method()
        request.version = parser.get_http_version()
        request.keep_alive = parser.should_keep_alive()
        if request.version == "1.1" and not self.busy and not self._queue:
            for name, value in request.headers:
                if name.lower() == b"expect" and value.lower() == b"100-continue":
                    self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._request.parts.append(body)

    def on_message_complete(self) -> None:
        if self._parser.should_upgrade():
            return  # not yet: see `_decline_upgrade`
        request = self._request
        if self.busy or self._queue:
            self._queue.append(request)  # pipelined: answered in order
            if self.transport is not None:
                self.transport.pause_reading()
            return
        self._start(request)

    # --- answering ---------------------------------------------------------------------------

    def _start(self, request: Request) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.busy = True
        try:
            self._handler.handle(self, request)
        except Exception:  # noqa: BLE001 - a bug of ours: the app sees a cut, we see why
            log.exception("sidecar failed to forward a request; cutting the app's connection")
            self.cut()

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def done(self, keep_alive: bool) -> None:
        """The answer to the current request is written: go on with the next, or close."""
        self.busy = False
        self.upstream = None
        if self.closed or self.transport is None:
            return
        if not keep_alive:
            self.transport.close()
            return
        if self._queue:
            self.transport.resume_reading()
            self._start(self._queue.popleft())
        else:
            self._arm_idle()

    def cut(self) -> None:
        """End the connection abruptly: the app sees what it would see from a broken upstream."""
        if self.transport is not None:
            self.transport.abort()

    def close_if_idle(self) -> None:
        if not self.busy and self.transport is not None:
            self.transport.close()

    def _arm_idle(self) -> None:
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(APP_KEEP_ALIVE_S, self.close_if_idle)


class Listener(Protocol):
    """What an upstream connection reports, for the request it is answering."""

    def response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...

    def response_body(self, data: bytes, arrived: float) -> None: ...

    def response_done(self, keep_alive: bool) -> None: ...

    def response_failed(self, reason: str, answered: bool) -> None:
        """The connection ended before the answer did. `answered`: bytes reached the app."""

    def app_left(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


class UpstreamConnection(asyncio.Protocol):
    """One connection to an upstream origin, answering one request at a time."""

    def __init__(self, pool: UpstreamPool, origin: Origin) -> None:
        self._pool = pool
        self.origin = origin
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._app: AppConnection | None = None
        self._listener: Listener | None = None
        self._head_only = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._status = 0
        self._answered = False
        self._complete = False
        self._keep_alive = False
        self._arrived = 0.0
        self._paused = False
        self._last_read = 0.0
        self._read_timer: asyncio.TimerHandle | None = None

    # --- use -------------------------------------------------------------------------------

    def send(self, app: AppConnection, listener: Listener, data: bytes, head_only: bool) -> None:
        """Send one request; the answer streams to `app` and is reported to `listener`."""
        assert self.transport is not None
        self._app = app
        self._listener = listener
        self._head_only = head_only
        self._headers = []
        self._status = 0
        self._answered = False
        self._complete = False
        app.upstream = self
        if app.writing_paused:
            self.pause()
        self.transport.write(data)
        timeout = self._pool.read_timeout_s
        if timeout is not None:
            loop = asyncio.get_running_loop()
            self._last_read = loop.time()
            self._read_timer = loop.call_at(self._last_read + timeout, self._check_read)

    def pause(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and self._paused:
            self._paused = False
            self.transport.resume_reading()

    def app_left(self) -> None:
        """The app closed its connection mid-answer: stop the upstream answer at once."""
        listener = self._release_request()
        self._pool.release(self, keep_alive=False)
        if listener is not None:
            listener.app_left()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.closed = True

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass it

    def data_received(self, data: bytes) -> None:
        app = self._app
        if app is None:
            # An idle connection should be silent; whatever this is, it cannot be reused.
            self.close()
            return
        self._arrived = time.perf_counter()
        if self._read_timer is not None:
            self._last_read = asyncio.get_running_loop().time()
        app.write(data)  # the pipe: the app gets the bytes before anything else happens
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # The app already has the bytes as they came; this connection is done for.
            self._fail(f"upstream answer is not valid HTTP: {exc}")
            return
        if self._complete:
            self._finish(self._keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.lost(self)
        if self._listener is None:
            return
        if self._status and not self._complete and self._ends_at_close():
            self._finish(keep_alive=False)
        else:
            self._fail("upstream closed the connection" + (f": {exc}" if exc else ""))

    # --- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._headers = []  # an interim answer (103 Early Hints): the real one follows
            return
        self._status = status
        if self._listener is not None:
            self._listener.response_head(status, self._headers)
        if self._head_only:
            self._keep_alive = self._parser.should_keep_alive()
            self._complete = True

    def on_body(self, body: bytes) -> None:
        if self._listener is not None:
            self._listener.response_body(body, self._arrived)

    def on_message_complete(self) -> None:
        if not self._status:
            return  # the end of an interim answer
        self._keep_alive = self._parser.should_keep_alive()
        self._complete = True

    # --- ends --------------------------------------------------------------------------------

    def _ends_at_close(self) -> bool:
        """The answer has no length of its own: the connection's end is its end."""
        for name, _ in self._headers:
            if name.lower() in (b"content-length", b"transfer-encoding"):
                return False
        return not self._head_only and self._status not in (204, 304)

    def _release_request(self) -> Listener | None:
        app, listener = self._app, self._listener
        self._app = None
        self._listener = None
        if app is not None and app.upstream is self:
            app.upstream = None
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        return listener

    def _finish(self, keep_alive: bool) -> None:
        listener = self._release_request()
        self.resume()
        # After a HEAD answer the parser still waits for the body its length announced, so
        # that connection is not reused (the app's connection goes on).
        self._pool.release(self, keep_alive and not self._head_only)
        if listener is not None:
            listener.response_done(keep_alive)

    def _fail(self, reason: str) -> None:
        listener = self._release_request()
        self._pool.release(self, keep_alive=False)
        if listener is not None:
            listener.response_failed(reason, self._answered)

    def _check_read(self) -> None:
        timeout = self._pool.read_timeout_s
        if self._listener is None or timeout is None:
            return
        loop = asyncio.get_running_loop()
        due = self._last_read + timeout
        if loop.time() >= due:
            self._fail(f"upstream read timeout ({timeout:g} s without data)")
        else:
            self._read_timer = loop.call_at(due, self._check_read)


class UpstreamPool:
    """Keep-alive connections per origin, most recently used first; a bound on those in use."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_s: float,
        connect_timeout_s: float,
        read_timeout_s: float | None,
    ) -> None:
        self._max = max_connections
        self._keepalive_s = keepalive_s
        self._connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._idle: dict[Origin, list[UpstreamConnection]] = {}
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._tls = ssl.create_default_context()

    def take(self, origin: Origin) -> UpstreamConnection | None:
        """An idle connection to `origin`, now in use, or None (then await `acquire`)."""
        idle = self._idle.get(origin)
        if not idle or self._in_use >= self._max:
            return None
        expired = time.monotonic() - self._keepalive_s
        while idle:
            connection = idle.pop()
            transport = connection.transport
            closing = transport is None or transport.is_closing()
            if connection.closed or closing or connection.idle_since < expired:
                connection.close()
                continue
            self._in_use += 1
            return connection
        return None

    async def acquire(self, origin: Origin) -> UpstreamConnection:
        """A connection to `origin`, in use: an idle one if one frees up while waiting for the
        bound, else a new one. OSError or TimeoutError when none can be had."""
        while self._in_use >= self._max:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
            if (connection := self.take(origin)) is not None:
                return connection
        self._in_use += 1
        try:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self._connect_timeout_s):
                _, protocol = await loop.create_connection(
                    lambda: UpstreamConnection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=self._tls if origin.tls else None,
                    server_hostname=origin.host if origin.tls else None,
                )
        except BaseException:
            self._returned()
            raise
        return protocol

    def release(self, connection: UpstreamConnection, keep_alive: bool) -> None:
        self._returned()
        if keep_alive and not connection.closed:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(connection.origin, []).append(connection)
        else:
            connection.close()

    def lost(self, connection: UpstreamConnection) -> None:
        idle = self._idle.get(connection.origin)
        if idle and connection in idle:
            idle.remove(connection)

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    def _returned(self) -> None:
        self._in_use -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
