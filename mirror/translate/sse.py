"""Server-sent events decoded incrementally, and encoded, for translating a stream as it arrives.

`mirror.answers.sse` reads a whole captured stream at once, off the request path; a translated
stream has to be re-emitted while it arrives, so `EventDecoder` is fed the provider's chunks as
they come, split anywhere: inside a line, between `\\r` and `\\n`, inside a UTF-8 character
(data is decoded per event, once its bytes are whole). It follows the same WHATWG event-stream
rules as `mirror.answers.sse` (any line ending, `:` comments, `event`/`data`/`id`/`retry`
fields, one leading BOM, an event without a blank line after it never dispatched) and is held
to it on arbitrary chunkings by the tests.

Like h11's `max_incomplete_event_size`, `max_event_size` bounds what a peer can make it hold:
one event (its lines so far and the unfinished line) larger than that raises `Untranslatable`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from mirror.errors import Untranslatable

#: The default bound on one event's size. Provider events are a delta each (a few hundred
#: bytes); the largest are whole content blocks, which stay far below this.
MAX_EVENT_SIZE = 4 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_LINE = re.compile(rb"([^\r\n]*)(\r\n|\r|\n)")


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event: its type (`message` when the stream named none) and its data."""

    event: str
    data: str

    def json_object(self) -> dict[str, Any]:
        """The data as a JSON object; anything else is `Untranslatable`."""
        try:
            value = orjson.loads(self.data)
        except orjson.JSONDecodeError as exc:
            raise Untranslatable(f"stream: an event whose data is not JSON ({exc})") from exc
        if not isinstance(value, dict):
            raise Untranslatable("stream: an event whose data is not a JSON object")
        return value


class EventDecoder:
    """Feed it bytes as they arrive; it returns the events those bytes complete."""

    def __init__(self, *, max_event_size: int = MAX_EVENT_SIZE) -> None:
        self._max = max_event_size
        self._tail = b""  # an unfinished line
        self._name = b""
        self._data: list[bytes] = []
        self._seen = False  # a field of the current event was read
        self._held = 0  # bytes of the current event's lines so far
        self._skip_lf = False  # the last chunk ended with "\r": a "\n" next belongs to it
        self._bom_checked = False

    def feed(self, chunk: bytes) -> list[Event]:
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buffer = self._tail + chunk
        if not self._bom_checked:
            if len(buffer) < len(_BOM) and _BOM.startswith(buffer):
                self._tail = buffer  # maybe a BOM: wait for its last byte
                return []
            self._bom_checked = True
            if buffer.startswith(_BOM):
                buffer = buffer[len(_BOM) :]
        if b"\n" not in chunk and b"\r" not in chunk:
            self._tail = buffer  # no line ends here: nothing to scan again
            self._check_size()
            return []
        events: list[Event] = []
        end = 0
        for match in _LINE.finditer(buffer):
            end = match.end()
            self._line(match.group(1), events)
        # A "\r" ending the buffer may be the first half of a "\r\n" split across chunks.
        self._skip_lf = end == len(buffer) and buffer.endswith(b"\r")
        self._tail = buffer[end:]
        self._check_size()
        return events

    def _check_size(self) -> None:
        if self._held + len(self._tail) > self._max:
            raise Untranslatable(f"stream: an event larger than {self._max} bytes")

    def _line(self, line: bytes, events: list[Event]) -> None:
        if not line:
            if self._seen:
                data = b"\n".join(self._data).decode("utf-8", "replace")
                events.append(Event(self._name.decode("utf-8", "replace") or "message", data))
            self._name, self._data, self._seen, self._held = b"", [], False, 0
            return
        self._held += len(line) + 1
        if line[0] == 0x3A:  # a ":" comment
            return
        field, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._data.append(value)
            self._seen = True
        elif field == b"event":
            self._name = value
            self._seen = True
        elif field in (b"id", b"retry"):
            self._seen = True


def encode(data: object, *, event: str | None = None) -> bytes:
    """One event as bytes: `event:` (when named) and one `data:` line of compact JSON."""
    head = b"event: " + event.encode() + b"\n" if event is not None else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"
