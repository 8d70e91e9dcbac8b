"""Where a chunked answer ends: `ChunkedEnd` follows the framing of a chunked body (RFC 9112
7.1) for `mirror.sidecar.upstream`, so that bytes an upstream sends past its answer's end are
never forwarded to the app.
"""

from __future__ import annotations

#: The longest chunk-size line or trailer line (llhttp has no such limit of its own).
_MAX_LINE = 8 * 1024


class ChunkedEnd:
    """Follows a chunked body's framing (RFC 9112 7.1) only to find where it ends.

    llhttp validates the same bytes; this says where the last chunk and the trailer section
    end, which llhttp does not tell, so that bytes past them are not forwarded.
    """

    __slots__ = ("_left", "_line", "_state")

    _SIZE, _DATA, _DATA_END, _TRAILER = 0, 1, 2, 3

    def __init__(self) -> None:
        self._state = self._SIZE
        self._left = 0
        self._line = b""

    def feed(self, data: bytes) -> int:
        """The offset in `data` just past the body's end, or -1 when it goes on.
        ValueError when the framing is not chunked framing."""
        i, n = 0, len(data)
        while i < n:
            state = self._state
            if state == self._DATA or state == self._DATA_END:
                take = min(self._left, n - i)
                i += take
                self._left -= take
                if not self._left:
                    if state == self._DATA:
                        self._state, self._left = self._DATA_END, 2
                    else:
                        self._state = self._SIZE
                continue
            j = data.find(b"\n", i)
            if j < 0:
                self._line += data[i:]
                if len(self._line) > _MAX_LINE:
                    raise ValueError("a chunk-size or trailer line is too long")
                return -1
            line = (self._line + data[i:j]).rstrip(b"\r")
            self._line = b""
            i = j + 1
            if state == self._SIZE:
                size = int(line.partition(b";")[0].strip(), 16)
                if size < 0:
                    raise ValueError("a negative chunk size")
                if size:
                    self._state, self._left = self._DATA, size
                else:
                    self._state = self._TRAILER
            elif not line:
                return i
        return -1
