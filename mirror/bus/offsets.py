"""Which offsets a consumer may commit: everything below the oldest record still in work.

Records of a partition finish out of order (one candidate answers in 200 ms, another in a
minute); the committed offset may only pass a record once it and everything before it are
done, or a crash would skip work. Per partition this keeps the offsets in work; the commit
point is the smallest of them, or one past the last record seen when none is in work.

A record older than one already seen means the consumer's position moved back: the log was
replaced under it (a broker that came back empty, a re-created topic) and reset to its start.
What was in work or committed then refers to the old log, so the partition starts afresh and
its commit point may move back: committing the old log's offsets would skip the new one's.
"""

from __future__ import annotations

from mirror.bus.base import TopicPartition


class OffsetTracker:
    def __init__(self) -> None:
        self._working: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def started(self, tp: TopicPartition, offset: int) -> None:
        seen = self._next.get(tp)
        if seen is not None and offset < seen and offset not in self._working.get(tp, ()):
            self._working[tp] = set()
            self._committed.pop(tp, None)
            self._next[tp] = offset + 1
        self._working.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def done(self, tp: TopicPartition, offset: int) -> None:
        working = self._working.get(tp)
        if working is not None:
            working.discard(offset)

    def committable(self) -> dict[TopicPartition, int]:
        """Commit points that moved since the last call to `committed()`."""
        points: dict[TopicPartition, int] = {}
        for tp, next_offset in self._next.items():
            working = self._working.get(tp)
            point = min(working) if working else next_offset
            if point > self._committed.get(tp, -1):
                points[tp] = point
        return points

    def committed(self, points: dict[TopicPartition, int]) -> None:
        for tp, point in points.items():
            self._committed[tp] = max(self._committed.get(tp, -1), point)

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Partitions taken away by a rebalance: their records are someone else's now."""
        for tp in partitions:
            self._working.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
