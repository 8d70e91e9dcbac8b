"""Commit points: only past what is done, and back to the start of a log replaced under us."""

from __future__ import annotations

from mirror.bus.base import TopicPartition
from mirror.bus.offsets import OffsetTracker

TP = TopicPartition("shadow.calls", 0)


def test_the_commit_point_waits_for_the_oldest_record_in_work() -> None:
    tracker = OffsetTracker()
    for offset in range(3):
        tracker.started(TP, offset)
    tracker.done(TP, 1)
    tracker.done(TP, 2)
    assert tracker.committable() == {TP: 0}
    tracker.done(TP, 0)
    assert tracker.committable() == {TP: 3}
    tracker.committed({TP: 3})
    assert tracker.committable() == {}


def test_a_log_replaced_under_the_consumer_moves_the_commit_point_back() -> None:
    """The broker came back empty: records start again at 0 while 500..501 of the old log are
    still in work. Committing 500 would skip the new log's first 500 records."""
    tracker = OffsetTracker()
    for offset in (498, 499, 500, 501):
        tracker.started(TP, offset)
    tracker.done(TP, 498)
    tracker.done(TP, 499)
    tracker.committed(tracker.committable())  # 500
    tracker.started(TP, 0)
    tracker.started(TP, 1)
    assert tracker.committable() == {TP: 0}
    tracker.done(TP, 500)  # the old log's work finishing late changes nothing
    tracker.done(TP, 0)
    tracker.done(TP, 1)
    assert tracker.committable() == {TP: 2}
