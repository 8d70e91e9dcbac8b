"""The dead-letter shape: written and read back in one place."""

from __future__ import annotations

from mirror.bus.base import Message, Record
from mirror.bus.dlq import HEADROOM_BYTES, DeadLetterKind, dead_letter, parse_dead_letter


def as_record(message: Message) -> Record:
    """The dead letter as a consumer of the DLQ reads it."""
    return Record(message.topic, 0, 7, message.key, message.value, tuple(message.headers))


def test_a_dead_letter_carries_reason_kind_and_source() -> None:
    source = Record("shadow.pairs", 3, 41, b"call-1", b"not json")
    message = dead_letter("shadow.dlq", source, "not a ShadowPair: <root>", DeadLetterKind.POISON)
    assert (message.topic, message.key, message.value) == ("shadow.dlq", b"call-1", b"not json")
    letter = parse_dead_letter(as_record(message))
    assert letter.reason == "not a ShadowPair: <root>"
    assert letter.kind == "poison"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "shadow.pairs",
        3,
        41,
    )
    assert letter.at is not None and letter.at.tzinfo is not None
    assert letter.original_bytes == 8 and not letter.truncated


def test_a_payload_past_the_limit_is_cut_and_flagged() -> None:
    limit = 1 << 20
    source = Record("shadow.pairs", 0, 1, b"k", b"z" * (5 << 20))
    message = dead_letter(
        "shadow.dlq", source, "too big", DeadLetterKind.POISON, max_message_bytes=limit
    )
    assert len(message.value) <= limit - HEADROOM_BYTES
    letter = parse_dead_letter(as_record(message))
    assert letter.truncated and letter.original_bytes == 5 << 20


def test_an_older_letter_reads_with_what_it_has() -> None:
    record = Record("shadow.dlq", 0, 0, None, b"x", (("error", b"boom"), ("source", b"a.b:1:2")))
    letter = parse_dead_letter(record)
    assert letter.reason == "boom" and letter.kind == "unknown" and letter.at is None
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("a.b", 1, 2)


def test_topic_names_with_colons_are_split_from_the_right() -> None:
    record = Record("d", 0, 0, None, b"", (("source", b"team:calls:2:9"),))
    letter = parse_dead_letter(record)
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "team:calls",
        2,
        9,
    )
