"""The channel between `run` and its sidecar process: frames, records, the bus on it."""

from __future__ import annotations

import asyncio
import socket

import pytest

from mirror.errors import BusError, SerializationError
from mirror.sidecar.channel import (
    CAPTURE,
    WEIGHT,
    ChannelBus,
    decode_record,
    encode_record,
    frame,
    read_frame,
)


def test_a_record_round_trips_with_and_without_a_key() -> None:
    assert decode_record(encode_record("shadow.calls", b"k1", b'{"a":1}')) == (
        "shadow.calls",
        b"k1",
        b'{"a":1}',
    )
    assert decode_record(encode_record("t", None, b"")) == ("t", None, b"")
    assert decode_record(encode_record("t", b"", b"v")) == ("t", b"", b"v")


async def test_frames_cross_a_socket_in_order_and_end_cleanly() -> None:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    peer_reader, peer_writer = await asyncio.open_unix_connection(sock=theirs)
    bus = ChannelBus(writer, max_buffer_bytes=1 << 20)
    for i in range(3):
        delivered = await bus.send("calls", b"v%d" % i, key=b"k%d" % i)
        assert delivered.done()
    writer.write(frame(WEIGHT, b"w"))
    writer.close()
    got = []
    while (item := await read_frame(peer_reader)) is not None:
        got.append(item)
    assert [kind for kind, _ in got] == [CAPTURE] * 3 + [WEIGHT]
    assert [decode_record(payload) for _, payload in got[:3]] == [
        ("calls", b"k%d" % i, b"v%d" % i) for i in range(3)
    ]
    peer_writer.close()


async def test_a_frame_cut_short_is_an_error_not_an_end() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(frame(CAPTURE, b"0123456789")[:-3])
    reader.feed_eof()
    with pytest.raises(SerializationError):
        await read_frame(reader)


async def test_the_bus_refuses_rather_than_waits_when_the_parent_is_behind() -> None:
    ours, theirs = socket.socketpair()
    _, writer = await asyncio.open_unix_connection(sock=ours)
    bus = ChannelBus(writer, max_buffer_bytes=64 * 1024)
    with pytest.raises(BusError):  # nobody reads the other end: the buffer fills
        for _ in range(10_000):
            await bus.send("calls", b"x" * 4096)
    writer.close()
    theirs.close()
