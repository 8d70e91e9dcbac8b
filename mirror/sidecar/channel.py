"""The channel between `run` and its sidecar process: length-prefixed frames on a Unix socket.

A frame is one kind byte, a 4-byte big-endian length, and that many bytes. The sidecar sends
`CAPTURE` frames (a record for the parent's bus: topic, key, value); the parent sends `WEIGHT`
frames (`WeightChange.encode()`) and `RELAY` frames (the other roles' metrics in the text
format and their health, so the sidecar's /metrics and /healthz still show every role).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from typing import Any

from mirror.bus.base import BusConsumer, Headers, RebalanceListener, SkipObserver
from mirror.errors import BusClosedError, BusError, SerializationError

CAPTURE = b"C"
WEIGHT = b"W"
RELAY = b"R"

_HEAD = struct.Struct(">cI")
_RECORD = struct.Struct(">HI")  # topic length, key length (0xFFFFFFFF: no key)
_NO_KEY = 0xFFFFFFFF
#: The largest frame either side accepts (a capture is cut to 1 MiB bodies; room to spare).
MAX_FRAME_BYTES = 64 * 1024 * 1024


def frame(kind: bytes, payload: bytes) -> bytes:
    return _HEAD.pack(kind, len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """The next (kind, payload), or None at the end of the stream."""
    try:
        head = await reader.readexactly(_HEAD.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise SerializationError("the channel ended inside a frame header") from exc
        return None
    kind, size = _HEAD.unpack(head)
    if size > MAX_FRAME_BYTES:
        raise SerializationError(f"a {size}-byte frame passes the channel's limit")
    try:
        return kind, await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise SerializationError("the channel ended inside a frame") from exc


def encode_record(topic: str, key: bytes | None, value: bytes) -> bytes:
    name = topic.encode()
    head = _RECORD.pack(len(name), _NO_KEY if key is None else len(key))
    return head + name + (key or b"") + value


def decode_record(payload: bytes) -> tuple[str, bytes | None, bytes]:
    """(topic, key, value) of a `CAPTURE` frame's payload."""
    if len(payload) < _RECORD.size:
        raise SerializationError("a capture frame shorter than its header")
    topic_len, key_len = _RECORD.unpack_from(payload)
    at = _RECORD.size
    topic = payload[at : at + topic_len].decode()
    at += topic_len
    key: bytes | None = None
    if key_len != _NO_KEY:
        key = payload[at : at + key_len]
        at += key_len
    return topic, key, payload[at:]


class ChannelBus:
    """The bus a sidecar process publishes to: each record goes to the parent as a `CAPTURE`
    frame. `send` never waits: a record is acknowledged once written to the socket's buffer,
    and past `max_buffer_bytes` not yet taken by the parent it raises `BusError` (the
    publisher drops the capture and counts it)."""

    def __init__(self, writer: asyncio.StreamWriter, *, max_buffer_bytes: int) -> None:
        self._writer = writer
        self._max_buffer_bytes = max_buffer_bytes
        self._closed = False

    @property
    def max_message_bytes(self) -> int | None:
        return None  # the parent's bus is the in-process one: nothing is refused for size

    async def start(self) -> None:
        self._closed = False

    async def stop(self) -> None:
        self._closed = True

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()
    ) -> asyncio.Future[Any]:
        if self._closed or self._writer.is_closing():
            raise BusClosedError("the channel to the parent process is closed")
        buffered = self._writer.transport.get_write_buffer_size()
        if buffered > self._max_buffer_bytes:
            raise BusError(f"{buffered} bytes wait for the parent process to read them")
        self._writer.write(frame(CAPTURE, encode_record(topic, key, value)))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group: str,
        listener: RebalanceListener | None = None,
        max_poll_interval_ms: int = 300_000,
        on_skip: SkipObserver | None = None,
        from_start: bool = False,
    ) -> BusConsumer:
        raise NotImplementedError("a sidecar process only publishes")
