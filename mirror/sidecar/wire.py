"""HTTP/1.1 on asyncio protocols: the app's side (`AppConnection`); the provider's side is
`mirror.sidecar.upstream`. What a request is, the limits and rules it meets, and the refusals
it gets are `mirror.sidecar.request`.

Why not ASGI and an HTTP client: on this 2-core machine a bare uvicorn + aiohttp proxy added
1.35 ms at the median (200 req/s), most of it in the two stacks' per-request machinery, while a
byte pipe on the same event loop added 0.09 ms (`tests/benchmarks/sidecar_overhead.py`). So
the sidecar speaks HTTP/1.1 itself, and leaves the parsing on both sides to httptools (llhttp,
the parser of Node.js, which uvicorn uses too).

The answer is a byte pipe (see `upstream`). The request is re-framed instead (see `proxy`):
its body is read whole, as capture needs it anyway.

The one copy of a request body: llhttp hands it over in pieces (`on_body`), which are joined
once when the message ends into `Request.body`; the pieces are dropped then, and the body is
written upstream as its own write after the head (no head + body concatenation). When the
connection closes, the parser (which refers back to its protocol), the request being read and
the queue are dropped, so refcounting frees bodies and credentials at once instead of at the
next (rare, see `tune_gc`) cyclic collection. Between requests a connection holds no request:
the handler holds the one it answers, capture its own (cut to `capture.max_body_bytes`).

This module knows nothing of providers or capture: an `AppConnection` hands each complete
request to its `Handler`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from typing import Protocol, cast

import httptools

from mirror.sidecar.request import Limits, Refusal, Request, check_head

log = logging.getLogger(__name__)


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

    def refuse(self, app: AppConnection, request: Request, refusal: Refusal) -> None:
        """Answer `refusal` (`request` is what was read of it), then `app.done(False)`."""


# Where the app's current incoming message is.
_IDLE, _HEAD, _BODY = 0, 1, 2
#: What a field value may not hold (RFC 9110 5.5): controls other than tab; llhttp lets them by.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
#: How long a refused connection is drained before it is closed (see `AppConnection._linger`).
_LINGER_S = 2.0


class AppConnection(asyncio.Protocol):
    """One connection from the app. Requests are answered one at a time, in order."""

    def __init__(
        self, handler: Handler, registry: set[AppConnection], limits: Limits | None = None
    ) -> None:
        self._handler = handler
        self._registry = registry
        self._limits = limits or Limits()
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._request = Request()
        self._parts: list[bytes] = []
        self._queue: deque[Request] = deque()
        self._phase = _IDLE
        self._head_bytes = 0  # bytes of the current head received so far
        self._head_seen = 0  # of them, those the callbacks have handed over
        self._fields = 0
        self._body_bytes = 0
        self._refused = False  # nothing more is read: a refusal is answered, then the close
        self._timer: asyncio.TimerHandle | None = None
        self._timer_phase = -1  # the phase the running timer watches
        self._head_started = 0.0
        self._last_read = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.closed = False
        #: What answers the current request (an upstream connection, a served call), for
        #: flow control and for stopping it when the app goes away.
        self.upstream: Answering | None = None
        self.writing_paused = False
        #: Set by whoever answers a request with a refusal: the close then drains what the
        #: app still sends (`_linger`), so the answer is not lost to a reset.
        self.linger = False

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass it
        self._loop = asyncio.get_running_loop()
        self._registry.add(self)
        self._arm()

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self._refused:
            return
        began = self._phase
        if began == _BODY and self._loop is not None:
            self._last_read = self._loop.time()
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._decline_upgrade(data[upgrade.args[0] :] if upgrade.args else b"")
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, Refusal):  # a bug of ours: a 502 and a log line
                log.error("reading a request failed: %r", cause, exc_info=cause)
                cause = Refusal(502, "the sidecar failed to read the request")
            self._refuse(cause)
            return
        except httptools.HttpParserError as exc:
            self._refuse(Refusal(400, f"invalid HTTP request: {exc}"))
            return
        except Exception:  # noqa: BLE001 - a bug of ours: the app sees a cut, we see why
            log.exception("reading a request failed; cutting the app's connection")
            self.cut()
            return
        phase = self._phase
        if phase == _HEAD:
            # A head that began in an earlier chunk counts every byte since; one that began in
            # this chunk counts what the callbacks saw (llhttp holds at most this chunk more).
            self._head_bytes = self._head_bytes + len(data) if began == _HEAD else self._head_seen
            if self._head_bytes > self._limits.max_head_bytes:
                self._refuse(self._too_long())
                return
        if phase != self._timer_phase and not self.busy and not self._refused:
            self._arm()

    def _too_long(self) -> Refusal:
        limit = self._limits.max_head_bytes
        if not self._request.headers:
            return Refusal(414, f"the request line passes {limit} bytes")
        return Refusal(431, f"the request head passes {limit} bytes")

    def _decline_upgrade(self, rest: bytes) -> None:
        """Answer an upgrade offer (`Upgrade: h2c`, WebSocket) as plain HTTP/1.1, as a server
        may: the head is parsed again without `Upgrade`, so its body and what follows are
        read as usual."""
        request = self._request
        head = [b"%s %s HTTP/%s\r\n" % (request.method, request.target, request.version.encode())]
        head.extend(
            b"%s: %s\r\n" % (name, value)
            for name, value in request.headers
            if name.lower() != b"upgrade"
        )
        head.append(b"\r\n")
        self._parser = httptools.HttpRequestParser(self)
        self._phase = _IDLE
        self.data_received(b"".join(head) + rest)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._registry.discard(self)
        self._cancel_timer()
        upstream = self.upstream
        if upstream is not None:
            upstream.app_left()
        # Break the cycles (the parser refers to this protocol) so refcounting frees the
        # bodies and credentials now, not at the next full collection.
        self._parser = None
        self._request = Request()
        self._parts = []
        self._queue.clear()
        self.upstream = None

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.upstream is not None:
            self.upstream.pause()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.upstream is not None:
            self.upstream.resume()

    # --- httptools callbacks (a Refusal raised here is answered by `_refuse`) ----------------

    def on_message_begin(self) -> None:
        self._request = Request()
        self._parts = []
        self._phase = _HEAD
        self._head_bytes = self._head_seen = self._fields = self._body_bytes = 0
        if self._loop is not None:
            self._head_started = self._loop.time()

    def on_url(self, url: bytes) -> None:
        request = self._request
        request.target += url
        self._head_seen += len(url)
        if len(request.target) > self._limits.max_head_bytes:
            raise Refusal(414, f"the request target passes {self._limits.max_head_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._phase != _HEAD:
            return  # a trailer field of a chunked body: dropped, never merged into the head
        self._fields += 1
        if self._fields > self._limits.max_header_fields:
            raise Refusal(431, f"more than {self._limits.max_header_fields} header fields")
        if _CONTROL.search(value) is not None:
            raise Refusal(400, "a header value holds a control character")  # RFC 9110 5.5
        self._head_seen += len(name) + len(value) + 4
        if self._head_seen > self._limits.max_head_bytes:
            raise Refusal(431, f"the request head passes {self._limits.max_head_bytes} bytes")
        # llhttp keeps trailing whitespace in a value; it is not part of it (RFC 9112 5).
        self._request.headers.append((name, value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        request = self._request
        parser = self._parser
        if parser is None or self._refused:
            return  # the connection closes after the answer in progress
        self._phase = _BODY
        if self._loop is not None:
            self._last_read = self._loop.time()
        request.method = parser.get_method()
        request.version = parser.get_http_version()
        request.keep_alive = parser.should_keep_alive()
        expect = check_head(request, self._limits, self._head_seen)
        if expect and request.version == "1.1" and not self.busy and not self._queue:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._limits.max_body_bytes:
            raise Refusal(413, f"the request body passes {self._limits.max_body_bytes} bytes")
        self._parts.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        if self._refused:
            return  # the connection closes after the answer in progress
        if parser is not None and parser.should_upgrade():
            return  # not yet: see `_decline_upgrade`
        request = self._request
        parts = self._parts
        if parts:
            # The one copy: joined once (a single piece is taken as it is), the pieces dropped.
            request.body = parts[0] if len(parts) == 1 else b"".join(parts)
            self._parts = []
        self._phase = _IDLE
        self._request = Request()  # the handler holds this one; an idle connection, none
        if self.busy or self._queue:
            self._queue.append(request)  # pipelined: answered in order
            if self.transport is not None:
                self.transport.pause_reading()
            return
        self._start(request)

    # --- answering ---------------------------------------------------------------------------

    def _refuse(self, refusal: Refusal) -> None:
        """Stop reading; answer `refusal` after what is queued before it, then close."""
        if self._refused:
            return  # already closing: one answer ends a connection
        self._refused = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.pause_reading()
        current = self._request
        request = Request(method=current.method, target=current.target, headers=current.headers)
        request.refusal = refusal
        self._parts = []
        if self.busy or self._queue:
            self._queue.append(request)
        else:
            self._start(request)

    def _start(self, request: Request) -> None:
        self._cancel_timer()
        self.busy = True
        try:
            if request.refusal is not None:
                self.linger = True
                self._handler.refuse(self, request, request.refusal)
            else:
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
            self._refused = True  # nothing after this answer is read or started
            if self.linger:
                self._linger()
            else:
                self.transport.close()
            return
        if self._queue:
            if not self._refused:
                self.transport.resume_reading()
            self._start(self._queue.popleft())
        elif not self._refused:
            if self._phase != _IDLE and self._loop is not None:
                # A request begun while we answered: the deadline counts from now, not from
                # while we were not reading it.
                self._head_started = self._last_read = self._loop.time()
            self._arm()

    def _linger(self) -> None:
        """Close after a refusal without losing it: a close with unread bytes (the rest of a
        refused body, a pipeline) makes the kernel send a reset, which can destroy the answer
        before the app reads it. So the write side is shut, what still comes is read and
        dropped, and the connection closes at the app's end or after `_LINGER_S`."""
        transport = self.transport
        loop = self._loop
        if transport is None or loop is None:
            return
        if transport.can_write_eof():
            transport.write_eof()
        transport.resume_reading()
        self._cancel_timer()
        self._timer = loop.call_later(_LINGER_S, transport.close)

    def cut(self) -> None:
        """End the connection abruptly: the app sees what it would see from a broken upstream."""
        if self.transport is not None:
            self.transport.abort()

    def close_if_idle(self) -> None:
        if not self.busy and self.transport is not None:
            self.transport.close()

    # --- timers: one at a time, the one that fits where the incoming message is ---------------

    def _arm(self) -> None:
        self._cancel_timer()
        loop = self._loop
        if loop is None:
            return
        phase = self._timer_phase = self._phase
        limits = self._limits
        if phase == _IDLE:
            self._timer = loop.call_later(limits.keep_alive_s, self.close_if_idle)
        elif phase == _HEAD:
            due = self._head_started + limits.head_timeout_s
            self._timer = loop.call_at(due, self._head_late)
        else:
            due = self._last_read + limits.body_idle_timeout_s
            self._timer = loop.call_at(due, self._body_late)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_phase = -1

    def _head_late(self) -> None:
        self._timer = None
        self._timer_phase = -1
        if self._phase == _HEAD and not self.busy and not self.closed:
            limit = self._limits.head_timeout_s
            self._refuse(Refusal(408, f"the request head took more than {limit:g} s"))

    def _body_late(self) -> None:
        self._timer = None
        self._timer_phase = -1
        if self._phase != _BODY or self.busy or self.closed or self._loop is None:
            return
        limit = self._limits.body_idle_timeout_s
        if self._loop.time() >= self._last_read + limit:
            self._refuse(Refusal(408, f"the request body paused for more than {limit:g} s"))
        else:
            self._arm()
