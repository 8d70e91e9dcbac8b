"""Server-sent events read back from captured bytes, each with the time its last byte arrived.

The live path only keeps the raw chunks and a `perf_counter()` per chunk; this module turns them
into events afterwards, off the request path. Parsing is httpx2's `EventSource` (the SSE decoder
the SDKs themselves build on) fed by a byte stream that notes which chunk it is reading, so an
event's arrival time is the time of the chunk that completed it. Text decoding is incremental,
so a UTF-8 character split across chunks is reassembled, as the SDKs do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
import orjson


@dataclass(frozen=True, slots=True)
class TimedEvent:
    event: str
    data: str
    arrived: float

    def json(self) -> Any:
        """The event's data as JSON; raises `orjson.JSONDecodeError` (a ValueError)."""
        return orjson.loads(self.data)


#: EventSource wants the response's request for its error context; there is none here.
_REQUEST = httpx2.Request("GET", "http://captured.invalid/")


class _TimedChunks(httpx2.SyncByteStream):
    def __init__(self, chunks: Sequence[bytes], times: Sequence[float]) -> None:
        self._chunks = chunks
        self._times = times
        self.now = times[0] if times else 0.0

    def __iter__(self) -> Iterator[bytes]:
        for chunk, at in zip(self._chunks, self._times, strict=False):
            self.now = at
            yield chunk


def iter_timed_events(chunks: Sequence[bytes], times: Sequence[float]) -> Iterator[TimedEvent]:
    """Yield the SSE events in `chunks` (one arrival time per chunk) with their arrival times.

    An event cut off by truncation (no blank line after it) is not yielded.
    """
    stream = _TimedChunks(chunks, times)
    response = httpx2.Response(
        200,
        headers={"content-type": "text/event-stream; charset=utf-8"},
        stream=stream,
        request=_REQUEST,
    )
    for sse in httpx2.EventSource(response, max_event_size=None):
        yield TimedEvent(sse.event, sse.data, stream.now)
