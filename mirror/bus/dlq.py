"""The dead-letter shape: what a message on `shadow.dlq` carries, built and read in one place.

A dead letter is the original message's key and bytes, with headers that say why and whence:

- `error`: the reason, UTF-8, at most 1,000 bytes;
- `kind`: what kind of failure (`DeadLetterKind`): a replay after the cause is fixed can pick one;
- `source`: `topic:partition:offset` of the original record;
- `dead_lettered_at`: ISO 8601 UTC time it was written;
- `original_bytes`: the size of the original value;
- `truncated`: `1` when the value was cut to fit the bus's message limit (a cut message is kept
  for diagnosis; replaying it gives a poison message again).

The runner, the judge and `shadowjudge dlq` share this module, so a reader never parses a
header a writer did not write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from mirror.bus.base import Message, Record
from mirror.events import utc_now

#: Room kept under the message limit for headers, key and the record's framing.
HEADROOM_BYTES = 4096
MAX_REASON_BYTES = 1000


class DeadLetterKind(StrEnum):
    POISON = "poison"  # not an event of the contract: replaying it cannot help
    STORE = "store"  # the store refused the rows as invalid
    RUNNER = "runner"  # the runner failed on the record (a bug)
    DELIVERY = "delivery"  # the bus refused the result permanently


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter read back from the DLQ topic."""

    record: Record
    reason: str
    kind: str
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    at: datetime | None
    original_bytes: int
    truncated: bool

    @property
    def key(self) -> bytes | None:
        return self.record.key

    @property
    def value(self) -> bytes:
        return self.record.value


def dead_letter(
    topic: str,
    record: Record,
    reason: str,
    kind: DeadLetterKind,
    *,
    max_message_bytes: int | None = None,
) -> Message:
    """The DLQ message for `record`: its key and bytes as they came (cut to fit when the bus
    limits message size), the reason and the source in headers."""
    value = record.value
    truncated = False
    if max_message_bytes is not None:
        room = max(max_message_bytes - HEADROOM_BYTES - len(record.key or b""), 0)
        if len(value) > room:
            value, truncated = value[:room], True
    headers = (
        ("error", reason.encode()[:MAX_REASON_BYTES]),
        ("kind", kind.value.encode()),
        ("source", f"{record.topic}:{record.partition}:{record.offset}".encode()),
        ("dead_lettered_at", utc_now().isoformat().encode()),
        ("original_bytes", str(len(record.value)).encode()),
        ("truncated", b"1" if truncated else b"0"),
    )
    return Message(topic, value, record.key, headers)


def parse_dead_letter(record: Record) -> DeadLetter:
    """A DLQ record read back; headers it lacks (an older writer) read as unknown."""
    headers = {name: raw for name, raw in record.headers}

    def text(name: str) -> str | None:
        raw = headers.get(name)
        return raw.decode("utf-8", "replace") if raw is not None else None

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    source = text("source")
    if source:
        parts = source.rsplit(":", 2)
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            topic, partition, offset = parts[0], int(parts[1]), int(parts[2])
    at: datetime | None = None
    stamp = text("dead_lettered_at")
    if stamp:
        try:
            at = datetime.fromisoformat(stamp)
        except ValueError:
            at = None
    size = text("original_bytes")
    return DeadLetter(
        record=record,
        reason=text("error") or "",
        kind=text("kind") or "unknown",
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        at=at,
        original_bytes=int(size) if size and size.isdigit() else len(record.value),
        truncated=text("truncated") == "1",
    )
