"""Server-sent events read back from captured bytes, each with the time its last byte arrived.

The live path only keeps the raw chunks and a `perf_counter()` per chunk; this module turns them
into events afterwards, off the request path. The parser follows the WHATWG event-stream rules
(any line ending, comments, `event`/`data`/`id`/`retry` fields, a leading BOM, and an event
not closed by a blank line discarded at the end) on the whole buffer at once, which costs a
fifth of feeding httpx2's incremental `EventSource` chunk by chunk (measured: 440 µs against
~90 µs to capture a 28-event chat stream, the sidecar's largest per-call cost). The tests hold
it to httpx2's `EventSource` as the reference on arbitrary chunkings. Data is decoded as UTF-8
per event, so a character split across chunks is whole again.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import orjson

_BOM = b"\xef\xbb\xbf"
_LINE = re.compile(rb"([^\r\n]*)(?:\r\n|\r|\n)")


@dataclass(frozen=True, slots=True)
class TimedEvent:
    event: str
    data: str
    arrived: float

    def json(self) -> Any:
        """The event's data as JSON; raises `orjson.JSONDecodeError` (a ValueError)."""
        return orjson.loads(self.data)


def iter_timed_events(chunks: Sequence[bytes], times: Sequence[float]) -> Iterator[TimedEvent]:
    """Yield the SSE events in `chunks` (one arrival time per chunk) with their arrival times."""
    buffer = b"".join(chunks)
    if not buffer:
        return
    ends = list(accumulate(len(c) for c in chunks))
    start = len(_BOM) if buffer.startswith(_BOM) else 0

    def arrived(offset: int) -> float:
        # The chunk holding the event's last byte (offset is one past it).
        index = min(bisect_left(ends, offset), len(times) - 1)
        return times[index]

    if b"\r" not in buffer:
        yield from _blocks(buffer, start, arrived)
    else:
        yield from _lines(buffer, start, arrived)


def _blocks(buffer: bytes, start: int, arrived: Any) -> Iterator[TimedEvent]:
    """The common case, `\\n` line endings: one split per event instead of one per line."""
    position = start
    blocks = buffer[start:].split(b"\n\n")
    for block in blocks[:-1]:  # the last piece has no blank line after it: incomplete
        # A run of more than two newlines leaves empty blocks, and a block may start with the
        # blank lines; both dispatch nothing.
        position += len(block) + 2
        event = _event(block.split(b"\n"))
        if event is not None:
            yield TimedEvent(event[0], event[1], arrived(position))


def _lines(buffer: bytes, start: int, arrived: Any) -> Iterator[TimedEvent]:
    pending: list[bytes] = []
    for match in _LINE.finditer(buffer, start):
        line = match.group(1)
        if line:
            pending.append(line)
            continue
        event = _event(pending)
        pending = []
        if event is not None:
            yield TimedEvent(event[0], event[1], arrived(match.end()))


def _event(lines: list[bytes]) -> tuple[str, str] | None:
    name = b""
    data: list[bytes] = []
    seen = False
    for line in lines:
        if not line or line[0] == 0x3A:  # blank (between events) or a ":" comment
            continue
        field, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
            seen = True
        elif field == b"event":
            name = value
            seen = True
        elif field in (b"id", b"retry"):
            seen = True
    if not seen:
        return None
    return (name.decode("utf-8", "replace") or "message"), b"\n".join(data).decode(
        "utf-8", "replace"
    )
