"""The producer's partitioner: aiokafka's (and Kafka's) partitions, key for key."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner as AiokafkaPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from mirror.bus.partition import DefaultPartitioner, murmur2
from mirror.events import new_call_id


def test_murmur2_equals_aiokafkas_for_every_length_and_byte() -> None:
    rng = random.Random(17)
    keys = [b""] + [rng.randbytes(n) for n in range(1, 70) for _ in range(20)]
    keys += [bytes([b]) * n for b in (0x00, 0x7F, 0x80, 0xFF) for n in range(1, 9)]
    keys += [new_call_id().encode() for _ in range(500)]
    assert [murmur2(k) for k in keys] == [aiokafka_murmur2(k) for k in keys]


def test_murmur2_known_values_of_the_java_client() -> None:
    # From Kafka's own UtilsTest.testMurmur2 (as signed ints there).
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, signed in cases.items():
        assert murmur2(key) == signed & 0xFFFFFFFF, key


def test_partitioner_picks_aiokafkas_partition_for_a_key() -> None:
    ours, theirs = DefaultPartitioner(), AiokafkaPartitioner()
    for count in (1, 3, 6, 12):
        partitions = list(range(count))
        for _ in range(200):
            key = new_call_id().encode()
            assert ours(key, partitions, partitions) == theirs(key, partitions, partitions)


def test_a_message_without_key_goes_to_an_available_partition() -> None:
    partitions = [0, 1, 2, 3]
    assert {DefaultPartitioner()(None, partitions, [2]) for _ in range(20)} == {2}
    assert DefaultPartitioner()(None, partitions, []) in partitions
