"""The SSE reader agrees with httpx2's EventSource (the reference) on any chunking."""

from __future__ import annotations

import random

import httpx2

from mirror.answers.sse import iter_timed_events

WORDS = ["héllo", "日本語", "🎉", "plain", '{"a": 1}', "x:y", " lead", ""]


def random_stream(rng: random.Random) -> bytes:
    newline = rng.choice(["\n", "\r\n", "\r"])
    out = ""
    for _ in range(rng.randint(1, 12)):
        lines = []
        if rng.random() < 0.3:
            lines.append(": keep-alive comment")
        if rng.random() < 0.5:
            lines.append(f"event: {rng.choice(['message_start', 'ping', 'delta'])}")
        for _ in range(rng.randint(0, 3)):
            sep = rng.choice([": ", ":"])
            lines.append(f"data{sep}{rng.choice(WORDS)}{rng.choice(WORDS)}")
        if rng.random() < 0.1:
            lines.append("id: 7")
        out += newline.join(lines) + newline + newline
        if rng.random() < 0.1:
            out += newline  # an extra blank line between events
    return out.encode()


def reference(raw: bytes) -> list[tuple[str, str]]:
    response = httpx2.Response(
        200,
        headers={"content-type": "text/event-stream"},
        content=raw,
        request=httpx2.Request("GET", "http://x/"),
    )
    return [(e.event, e.data) for e in httpx2.EventSource(response, max_event_size=None)]


def chunked(raw: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(raw)), min(len(raw) - 1, rng.randint(0, 8))))
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]


def test_matches_reference_on_random_streams_and_chunkings() -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        raw = random_stream(rng)
        chunks = chunked(raw, rng)
        times = [float(i) for i in range(len(chunks))]
        ours = [(e.event, e.data) for e in iter_timed_events(chunks, times)]
        assert ours == reference(raw), raw


def test_arrival_time_is_the_chunk_that_completed_the_event() -> None:
    raw = b"data: one\n\ndata: two\n\n"
    split = raw.index(b"two")
    events = list(iter_timed_events([raw[:split], raw[split:]], [1.0, 2.0]))
    assert [(e.data, e.arrived) for e in events] == [("one", 1.0), ("two", 2.0)]
    # The blank line that closes "one" arrives in the second chunk here.
    events = list(iter_timed_events([b"data: one\n", b"\ndata: two\n\n"], [1.0, 2.0]))
    assert [e.arrived for e in events] == [2.0, 2.0]


def test_unterminated_last_event_is_discarded() -> None:
    events = list(iter_timed_events([b"data: a\n\ndata: cut off"], [0.0]))
    assert [e.data for e in events] == ["a"]
    assert list(iter_timed_events([], [])) == []


def test_leading_bom_is_skipped_as_the_spec_says() -> None:
    # httpx2 keeps the BOM (and so loses the first event); WHATWG says to drop it.
    events = list(iter_timed_events([b"\xef\xbb\xbfdata: a\n\n"], [0.0]))
    assert [e.data for e in events] == ["a"]
