"""The consumer's check of positions against the log's end survives a rebalance mid-check."""

from __future__ import annotations

from aiokafka import TopicPartition as KafkaTopicPartition

from mirror.bus.kafka import KafkaConsumer
from mirror.config import KafkaConsumerSettings


class Rebalancing:
    """An aiokafka consumer whose second partition is taken away while the first one's
    position is asked: aiokafka asserts that a partition asked about is assigned."""

    def __init__(self) -> None:
        self.assigned = {KafkaTopicPartition("t", 0), KafkaTopicPartition("t", 1)}
        self.revoke_on_position = KafkaTopicPartition("t", 1)
        self.asked: list[KafkaTopicPartition] = []

    def assignment(self) -> set[KafkaTopicPartition]:
        return set(self.assigned)

    def highwater(self, tp: KafkaTopicPartition) -> int:
        assert tp in self.assigned, "Partition is not assigned"
        self.asked.append(tp)
        return 10

    async def position(self, tp: KafkaTopicPartition) -> int:
        assert tp in self.assigned, "Partition is not assigned"
        self.assigned.discard(self.revoke_on_position)  # the rebalance ran during the await
        return 5


def consumer_of(fake: Rebalancing) -> KafkaConsumer:
    """A `KafkaConsumer` around the fake (no aiokafka consumer made, so none left unclosed)."""
    consumer = KafkaConsumer.__new__(KafkaConsumer)
    consumer._consumer = fake  # type: ignore[assignment]
    consumer._expected = {}
    consumer._settings = KafkaConsumerSettings()
    consumer._on_skip = None
    return consumer


async def test_a_partition_revoked_during_the_check_is_skipped() -> None:
    fake = Rebalancing()
    consumer = consumer_of(fake)
    await consumer._check_positions()  # raised AssertionError: Partition is not assigned
    assert fake.asked == [KafkaTopicPartition("t", 0)]


async def test_a_partition_revoked_inside_aiokafka_is_skipped() -> None:
    fake = Rebalancing()
    consumer = consumer_of(fake)

    def gone(tp: KafkaTopicPartition) -> int:
        fake.assigned.discard(tp)
        raise AssertionError("Partition is not assigned")

    fake.highwater = gone  # type: ignore[method-assign]
    await consumer._check_positions()  # both gone, one by one: nothing raised
    assert fake.assigned == set()
