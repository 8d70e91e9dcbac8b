"""Plain-ASGI plumbing shared by the fakes: recording, JSON and SSE answers, pacing.

No framework sits on the hot path. Non-streaming JSON is gzip-compressed (deterministically:
no timestamp in the gzip header) when the request's ``accept-encoding`` names gzip, as the
real providers do; streams never are. A deliberate connection drop raises ``StreamCut``,
which the server closes without the terminating chunk; the log filter installed by
``quiet_stream_cuts`` keeps uvicorn from printing a traceback for it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from time import time
from typing import Any

import orjson

from .control import Control

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_LEAD_BYTE = re.compile(rb"[\xc0-\xff]")
_date_cache: tuple[int, bytes] = (0, b"")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it: header names lower-case (as ASGI gives them)."""

    method: str
    path: str
    query_string: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        key = name.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in self.headers if k.lower() == key]
        return ", ".join(values) if values else None

    def json(self) -> Any:
        return orjson.loads(self.body)


class StreamCut(Exception):
    """Raised on purpose to drop the connection in the middle of a stream."""


class _DropStreamCuts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        return not (info and isinstance(info[1], StreamCut))


_FILTER = _DropStreamCuts()


def quiet_stream_cuts() -> None:
    """Silence uvicorn's traceback for deliberate ``StreamCut`` drops (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


def http_date() -> bytes:
    global _date_cache
    now = int(time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def gzip_bytes(data: bytes) -> bytes:
    """Gzip with a zeroed timestamp, so equal inputs compress to equal bytes."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def dumps(value: Any, *, indent: bool = False) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0)


def split_point(chunk: bytes) -> int:
    """An index inside the first multi-byte UTF-8 character of ``chunk``, or 0."""
    match = _LEAD_BYTE.search(chunk)
    return match.start() + 1 if match else 0


class Exchange:
    """One HTTP exchange: the recorded request, its controls and the means to answer."""

    def __init__(
        self, request: RecordedRequest, control: Control, receive: Receive, send: Send
    ) -> None:
        self.request = request
        self.control = control
        self._receive = receive
        self._send = send
        self._loop = asyncio.get_running_loop()
        self.started = self._loop.time()
        self._disconnect: asyncio.Future[Message] | None = None

    @property
    def accepts_gzip(self) -> bool:
        value = self.request.header("accept-encoding")
        return value is not None and "gzip" in value.lower()

    async def _start(self, status: int, headers: Headers) -> None:
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"date", http_date())],
            }
        )

    async def _body(self, chunk: bytes, more: bool) -> None:
        if self.control.split_utf8 and (cut := split_point(chunk)):
            await self._send({"type": "http.response.body", "body": chunk[:cut], "more_body": True})
            # A short pause so the two halves leave in separate TCP segments.
            await asyncio.sleep(0.002)
            chunk = chunk[cut:]
        await self._send({"type": "http.response.body", "body": chunk, "more_body": more})

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early when the client goes away; True if it went away."""
        if self._disconnect is None:
            self._disconnect = asyncio.ensure_future(self._receive())
        if seconds > 0.05:  # long waits end early on disconnect; short ones are cheaper plain
            done, _ = await asyncio.wait({self._disconnect}, timeout=seconds)
            return bool(done)
        await asyncio.sleep(seconds)
        return self._disconnect.done()

    async def wait_until(self, offset: float) -> bool:
        """Sleep until ``offset`` seconds after the request arrived; True if the client left."""
        delay = self.started + offset - self._loop.time()
        # uvloop rounds timers down to whole milliseconds: add one so we are never early.
        return delay > 0 and await self._sleep(delay + 0.001)

    def close(self) -> None:
        if self._disconnect is not None:
            self._disconnect.cancel()

    async def send_json(
        self,
        status: int,
        payload: bytes,
        headers: Sequence[tuple[bytes, bytes]] = (),
        *,
        paced: bool = True,
    ) -> None:
        """Send a JSON body (gzipped if accepted); with ``paced``, honour the latency first."""
        timing = self.control.timing
        if paced and await self.wait_until(max(timing.latency_ms, timing.ttft_ms) / 1000):
            return
        out: Headers = [(b"content-type", JSON), *headers]
        if self.accepts_gzip:
            payload = gzip_bytes(payload)
            out.append((b"content-encoding", b"gzip"))
        out.append((b"content-length", str(len(payload)).encode()))
        await self._start(status, out)
        await self._body(payload, more=False)

    async def send_stream(
        self,
        frames: Sequence[bytes],
        headers: Headers,
        *,
        first_content: int,
        cut_after: int | None = None,
    ) -> None:
        """Send SSE frames: those before ``first_content`` at once, the rest paced.

        The first content frame goes out ``ttft`` after the request arrived, the last one
        at ``latency`` (or ``chunk_delay`` apart, whichever is slower). With ``cut_after``
        the connection is dropped after that many frames.
        """
        timing = self.control.timing
        await self._start(200, [*SSE_HEADERS, *headers])
        ttft = timing.ttft_ms / 1000
        paced = len(frames) - first_content
        spread = max(timing.latency_ms / 1000 - ttft, 0.0) / max(paced - 1, 1)
        gap = max(timing.chunk_delay_ms / 1000, spread)
        for index, frame in enumerate(frames):
            if index == cut_after:
                raise StreamCut(f"x-fake-stream-error: dropped after {index} events")
            if index >= first_content and not timing.idle:
                if await self.wait_until(ttft + (index - first_content) * gap):
                    return
            elif index % 64 == 63:
                await asyncio.sleep(0)  # let other connections progress on long streams
            await self._body(frame, more=True)
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def record(scope: Scope, body: bytes, requests: deque[RecordedRequest]) -> RecordedRequest:
    request = RecordedRequest(
        method=scope["method"],
        path=scope["path"],
        query_string=scope.get("query_string", b""),
        headers=tuple((bytes(k), bytes(v)) for k, v in scope["headers"]),
        body=body,
    )
    requests.append(request)
    return request
