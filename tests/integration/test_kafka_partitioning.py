"""Over the wire: a key lands in the partition the Java client would put it in.

Topics are shared between producers: Java services, Kafka Streams and Connect, aiokafka. When
Shardline's producer and a Java producer disagree on a key's partition, that key's records
split over two partitions: per-key order across producers is lost, co-partitioned joins miss
and a compacted topic keeps two latest values.  The expected partitions come from the Java
client's rule (``tests/kafka_partitioning.py``, checked against Kafka's own test vectors).
"""

from __future__ import annotations

import zlib

import pytest

from producers.kafka import KafkaProducer, KafkaProducerConfig
from shardline.kafka_config import KafkaClientConfig
from tests.kafka_partitioning import JAVA_VECTORS, java_partition
from tests.kafka_topics import new_topic

pytestmark = pytest.mark.integration

PARTITIONS = 7  # prime, so a mapping that differs anywhere shows up in the partitions


KEYS = [key for key, _ in JAVA_VECTORS] + [f"device-{n:06d}".encode() for n in range(300)] + ["température-7"]


@pytest.mark.timeout(120)
async def test_send_and_send_many_put_every_key_where_the_java_client_would(kafka_bootstrap: str) -> None:
    topic = new_topic(kafka_bootstrap, PARTITIONS, prefix="p")
    async with KafkaProducer(topic, KafkaClientConfig(kafka_bootstrap)) as producer:
        batch = await producer.send_many([b"v"] * len(KEYS), KEYS)
        singles = [await producer.send(b"v", key) for key in KEYS[:40]]
        acks = await batch
        single_acks = [await future for future in singles]
        unkeyed = await producer.send_and_wait(b"no key")  # any partition: random, as in Java
    expected = [java_partition(key if isinstance(key, bytes) else key.encode(), PARTITIONS) for key in KEYS]
    assert [ack.partition for ack in acks] == expected
    assert [ack.partition for ack in single_acks] == expected[:40]
    assert len(set(expected)) == PARTITIONS  # the keys reach every partition: a real check
    assert 0 <= unkeyed.partition < PARTITIONS


@pytest.mark.timeout(120)
async def test_librdkafkas_own_default_is_still_available_and_differs(kafka_bootstrap: str) -> None:
    """``consistent_random`` (CRC32 of the key) keeps the mapping of topics written before."""
    topic = new_topic(kafka_bootstrap, PARTITIONS, prefix="p")
    config = KafkaProducerConfig(partitioner="consistent_random")
    async with KafkaProducer(topic, KafkaClientConfig(kafka_bootstrap), config=config) as producer:
        acks = await (await producer.send_many([b"v"] * len(KEYS), KEYS))
    keys = [key if isinstance(key, bytes) else key.encode() for key in KEYS]
    assert [ack.partition for ack in acks] == [zlib.crc32(key) % PARTITIONS for key in keys]
    java = [java_partition(key, PARTITIONS) for key in keys]
    differing = sum(ack.partition != want for ack, want in zip(acks, java, strict=True))
    assert differing == 270  # of 307: the Java rule and CRC32 agree on a seventh, by chance
