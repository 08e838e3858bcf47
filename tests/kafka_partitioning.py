"""The Java Kafka client's key-to-partition rule, for checking that Shardline's producer agrees.

Written from the MurmurHash2 algorithm (seed ``0x9747b28c``) as Kafka's ``Utils.murmur2``
applies it, and checked against the vectors of Kafka's own test
(``tests/fixtures/kafka/java_murmur2_vectors.json``), so a test compares the producer with the
Java client, not with itself.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["JAVA_VECTORS", "java_murmur2", "java_partition"]

_MASK = 0xFFFFFFFF
_M = 0x5BD1E995
_SEED = 0x9747B28C

JAVA_VECTORS: list[tuple[bytes, int]] = [
    (item["key"].encode("ascii"), int(item["murmur2"]))
    for item in json.loads(
        (Path(__file__).parent / "fixtures" / "kafka" / "java_murmur2_vectors.json").read_text()
    )["vectors"]
]
"""(key, the Java client's ``Utils.murmur2(key)``), from Kafka's ``UtilsTest.testMurmur2``."""


def java_murmur2(data: bytes) -> int:
    """MurmurHash2 of ``data`` as a signed 32-bit int, as Java's ``Utils.murmur2`` returns it."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for start in range(0, whole, 4):
        k = int.from_bytes(data[start : start + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length - whole
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, partitions: int) -> int:
    """The partition the Java producer's default partitioner gives a keyed record."""
    return (java_murmur2(key) & 0x7FFFFFFF) % partitions
