"""HTTP/1.1 to the providers: an upstream connection (`UpstreamConnection`); their pool is
`mirror.sidecar.pool`.

The answer is a byte pipe, framed first. The status line and headers are read whole (at most
`MAX_HEAD_BYTES`) and checked by llhttp before the app sees any of them; then every body byte
the upstream sends is written to the app as it arrives, before anything looks at it: the
status line, header names in their case, the framing (chunked or not) and the body reach the
app exactly as sent. A parser watches the same body bytes to hand them, de-chunked, to capture.
The end of the answer is found from its framing (a Content-Length counted, the chunked framing
followed by `ChunkedEnd` in `mirror.sidecar.chunked`, or the connection's end), so bytes past it
are never forwarded: they are dropped, and that connection is closed rather than reused.

What the app gets from a broken upstream, always in the provider's error shape while nothing
has reached it yet (a 502 from `Listener.response_failed(answered=False)`), else a cut:

- a status line or head llhttp refuses, a status outside 100-599, a head past 64 KiB: 502;
- `101 Switching Protocols`: the sidecar never asks for an upgrade, so 502;
- `100 Continue` is dropped (the sidecar answers the app's `Expect` itself and does not send
  it on); other interim answers (102, 103 Early Hints) pass to an HTTP/1.1 app as they came
  and are dropped for an HTTP/1.0 one (RFC 9110 15.2);
- a body llhttp refuses, or a connection that ends inside the answer: the app's connection is
  cut, as it would be by the provider;
- a kept-alive connection that closes before any byte of its next answer (the provider closed
  it while idle, and the close crossed the request on the wire): the request is sent once
  more on a fresh connection (`response_failed(stale=True)`), as curl does, instead of a 502
  for an answer the provider never began;
- a bug in reading any of it: a log line and the same 502 or cut, never a traceback into the
  loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol, cast

import httptools

from mirror.sidecar.chunked import ChunkedEnd
from mirror.sidecar.wire import AppConnection

log = logging.getLogger(__name__)

#: The longest status line and headers an upstream may send.
MAX_HEAD_BYTES = 64 * 1024


class Listener(Protocol):
    """What an upstream connection reports, for the request it is answering."""

    def response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...

    def response_body(self, data: bytes, arrived: float) -> None: ...

    def response_done(self, keep_alive: bool, ended: float) -> None:
        """The answer ended; `ended`: `perf_counter()` when its last bytes arrived (or the
        connection that delimited it closed), before the sidecar's own work on them."""

    def response_failed(self, reason: str, answered: bool, *, stale: bool = False) -> None:
        """The connection ended before the answer did. `answered`: bytes reached the app.
        `stale`: a kept-alive connection ended before any byte of this answer, so the request
        may be sent again on a fresh one."""

    def app_left(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


class Pool(Protocol):
    """What a connection reports to: its pool (`mirror.sidecar.pool.UpstreamPool`)."""

    read_timeout_s: float | None

    def release(self, connection: UpstreamConnection, keep_alive: bool) -> None: ...

    def lost(self, connection: UpstreamConnection) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One connection to an upstream origin, answering one request at a time."""

    def __init__(self, pool: Pool, origin: Origin) -> None:
        self._pool = pool
        self.origin = origin
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._app: AppConnection | None = None
        self._listener: Listener | None = None
        self._head_only = False
        self._app_v11 = True
        self._head: bytearray | None = None  # the answer's head while it is read; then None
        self._headers: list[tuple[bytes, bytes]] = []
        self._parsed_status = 0
        self._status = 0
        self._left = -1  # body bytes still to come by Content-Length; -1: another framing
        self._chunked: ChunkedEnd | None = None
        self._answered = False
        self._complete = False
        self._keep_alive = False
        self._requests = 0  # requests sent on this connection
        self._arrived = 0.0
        self._paused = False
        self._last_read = 0.0
        self._read_timer: asyncio.TimerHandle | None = None

    # --- use -------------------------------------------------------------------------------

    def send(
        self,
        app: AppConnection,
        listener: Listener,
        head: bytes,
        body: bytes,
        *,
        head_only: bool,
        app_version: str = "1.1",
    ) -> None:
        """Send one request (`head`, then `body` as its own write: no joined copy); the answer
        streams to `app` and is reported to `listener`."""
        assert self.transport is not None
        self._app = app
        self._listener = listener
        self._head_only = head_only
        self._app_v11 = app_version == "1.1"
        self._head = bytearray()
        self._requests += 1
        self._headers = []
        self._status = 0
        self._left = -1
        self._chunked = None
        self._answered = False
        self._complete = False
        app.upstream = self
        if app.writing_paused:
            self.pause()
        self.transport.write(head)
        if body:
            self.transport.write(body)
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
        if self._app is None or self._parser is None:
            # An idle connection should be silent; whatever this is, it cannot be reused.
            self.close()
            return
        self._arrived = time.perf_counter()
        if self._read_timer is not None:
            self._last_read = asyncio.get_running_loop().time()
        try:
            if self._head is not None:
                self._read_head(data)
            else:
                self._read_body(data)
        except Exception:  # noqa: BLE001 - a bug of ours: a 502 or a cut, and a log line
            log.exception("reading an upstream answer failed")
            self._fail("the sidecar failed to read the upstream answer")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.lost(self)
        if self._listener is not None:
            if self._status and self._head is None and self._left < 0 and self._chunked is None:
                # An answer without length ends here.
                self._arrived = time.perf_counter()
                self._finish(keep_alive=False, reuse=False)
            else:
                head = self._head
                # A reused connection with nothing of this answer read: closed while idle.
                stale = (
                    self._requests > 1
                    and head is not None
                    and not head
                    and not self._status
                    and not self._answered  # an interim answer (103) reached the app
                )
                reason = "upstream closed the connection" + (f": {exc}" if exc else "")
                self._fail(reason, stale=stale)
        self._parser = None  # it refers back to this protocol: break the cycle

    # --- reading -----------------------------------------------------------------------------

    def _read_head(self, data: bytes) -> None:
        head = self._head
        assert head is not None and self._parser is not None and self._app is not None
        head += data
        while True:
            end = head.find(b"\r\n\r\n")
            if end < 0 or end + 4 > MAX_HEAD_BYTES:
                if end >= 0 or len(head) > MAX_HEAD_BYTES:
                    self._fail(f"upstream answer's head passes {MAX_HEAD_BYTES} bytes")
                return
            end += 4
            piece = bytes(head[:end])
            self._headers = []
            self._parsed_status = 0
            try:
                self._parser.feed_data(piece)
            except httptools.HttpParserError as exc:
                self._fail(f"upstream answer is not valid HTTP: {exc}")
                return
            status = self._parsed_status
            if not 100 <= status <= 599:
                self._fail(f"upstream answer has an invalid status ({status})")
                return
            if status == 101:
                self._fail("upstream switched protocols (101), which was not asked for")
                return
            if status < 200:  # interim: the final answer follows
                if status != 100 and self._app_v11:
                    self._app.write(piece)
                    self._answered = True
                del head[:end]
                continue
            rest = bytes(head[end:])
            self._head = None
            self._begin_body(status, piece, rest)
            return

    def _begin_body(self, status: int, head: bytes, rest: bytes) -> None:
        app, listener = self._app, self._listener
        assert app is not None and listener is not None
        self._status = status
        listener.response_head(status, self._headers)
        app.write(head)
        self._answered = True
        if self._head_only or status in (204, 304):
            self._left = 0
        else:
            for name, value in self._headers:
                lower = name.lower()
                if lower == b"transfer-encoding":
                    if value.lower().rstrip().endswith(b"chunked"):
                        self._chunked = ChunkedEnd()
                        self._left = -1
                        break
                elif lower == b"content-length":
                    self._left = int(value)
        if self._left == 0:
            # No body: what follows the head is not this answer's.
            self._finish(self._keep_alive, reuse=not rest and self._complete)
        elif rest:
            self._read_body(rest)

    def _read_body(self, data: bytes) -> None:
        app, parser = self._app, self._parser
        assert app is not None and parser is not None
        chunked = self._chunked
        left = self._left
        if chunked is not None:
            try:
                end = chunked.feed(data)
            except ValueError as exc:
                self._fail(f"upstream answer's chunked framing is broken: {exc}")
                return
        elif left < 0:
            end = -1
        elif len(data) >= left:
            end = left
        else:
            end = -1
            self._left = left - len(data)
        extra = end >= 0 and len(data) > end
        if extra:
            data = data[:end]
        app.write(data)  # the pipe: the app gets the bytes before anything else happens
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # The app already has the bytes as they came; this connection is done for.
            self._fail(f"upstream answer is not valid HTTP: {exc}")
            return
        if end >= 0:
            if extra:
                log.warning("upstream %s sent bytes past its answer's end", self.origin.host)
            self._finish(self._keep_alive, reuse=self._complete and not extra)

    # --- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        self._parsed_status = parser.get_status_code()
        self._keep_alive = parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self._listener is not None:
            self._listener.response_body(body, self._arrived)

    def on_message_complete(self) -> None:
        self._complete = True

    # --- ends --------------------------------------------------------------------------------

    def _release_request(self) -> Listener | None:
        app, listener = self._app, self._listener
        self._app = None
        self._listener = None
        self._head = None
        if app is not None and app.upstream is self:
            app.upstream = None
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        return listener

    def _finish(self, keep_alive: bool, *, reuse: bool) -> None:
        """The answer ended; `keep_alive` is what it said (the app's connection follows it),
        `reuse` whether this connection is in a state to carry another request."""
        listener = self._release_request()
        self.resume()
        # After a HEAD answer the parser still waits for the body its length announced, so
        # that connection is not reused (the app's connection goes on).
        self._pool.release(self, keep_alive and reuse and not self._head_only)
        if listener is not None:
            listener.response_done(keep_alive, self._arrived)

    def _fail(self, reason: str, *, stale: bool = False) -> None:
        listener = self._release_request()
        self._pool.release(self, keep_alive=False)
        if listener is not None:
            listener.response_failed(reason, self._answered, stale=stale)

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
