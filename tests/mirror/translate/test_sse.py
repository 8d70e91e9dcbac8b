"""The incremental SSE decoder agrees with the whole-buffer reader of `mirror.answers.sse` on
any chunking: line endings split between chunks, comments, a BOM, fields without data, and an
unterminated last event (never dispatched).
"""

from __future__ import annotations

import random

import pytest

from mirror.answers.sse import iter_timed_events
from mirror.errors import Untranslatable
from mirror.translate.sse import Event, EventDecoder

STREAM = (
    "\ufeff: a comment\r\n"
    "event: message_start\r\n"
    'data: {"a": "héllo — 日本語 🎉"}\r\n\r\n'
    "data:no space\rdata:  two spaces\r\rid: 7\n\n"
    "retry: 10\n\n"
    "event: named\ndata\n\n\n\n"
    "field-without-colon\nevent: e\ndata: x\r\n\r\n"
    "data: unterminated"
).encode()


def decode(chunks: list[bytes]) -> list[Event]:
    decoder = EventDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def reference() -> list[Event]:
    return [Event(e.event, e.data) for e in iter_timed_events([STREAM], [0.0])]


def test_the_reference_reads_what_the_decoder_reads() -> None:
    events = decode([STREAM])
    assert events == reference()
    assert events[0] == Event("message_start", '{"a": "héllo — 日本語 🎉"}')
    assert events[1] == Event("message", "no space\n two spaces")
    assert all(e.data != "unterminated" for e in events)


@pytest.mark.parametrize("seed", range(8))
def test_any_chunking_decodes_the_same(seed: int) -> None:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(1, 40)))
    chunks = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
    assert decode(chunks) == reference()


def test_byte_by_byte_decodes_the_same() -> None:
    assert decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == reference()


def test_a_bom_split_across_chunks_is_dropped() -> None:
    assert decode([b"\xef", b"\xbb", b"\xbfdata: 1\n\n"]) == [Event("message", "1")]


def test_an_event_larger_than_the_bound_is_refused() -> None:
    decoder = EventDecoder(max_event_size=64)
    decoder.feed(b"data: " + b"x" * 40 + b"\n")
    with pytest.raises(Untranslatable, match="larger than 64 bytes"):
        decoder.feed(b"data: " + b"y" * 40)
