"""The Kafka producer's settings: one frozen, validated value mapped onto librdkafka properties."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

from shardline.errors import ConfigurationError
from shardline.eventid import EventIdKey
from shardline.kafka_config import refuse_security_keys

__all__ = ["PARTITIONERS", "KafkaProducerConfig", "Partitioner"]

Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
Partitioner = Literal[
    "murmur2_random", "murmur2", "consistent_random", "consistent", "fnv1a_random", "fnv1a", "random"
]
PARTITIONERS: tuple[str, ...] = get_args(Partitioner)
"""librdkafka's partitioners (its ``partitioner`` property)."""


@dataclass(frozen=True, slots=True)
class KafkaProducerConfig:
    """How a :class:`producers.kafka.KafkaProducer` batches, compresses and delivers.

    Attributes:
        idempotent: librdkafka's idempotent producer (``enable.idempotence``): no duplicates
            and no reordering on retries within a session.  Forces ``acks=all``.
        acks: ``"all"``, ``"1"`` or ``"0"``; only ``"all"`` is allowed with ``idempotent``.
        compression: codec per message batch.  ``lz4`` is the default: on 100-byte telemetry
            it costs little client CPU and roughly halves the bytes on the wire (see
            docs/performance.md for the measured comparison with ``zstd`` and ``none``).
        partitioner: how a key picks its partition (librdkafka's ``partitioner``).  The
            default, ``murmur2_random``, is the Java client's: ``murmur2(key) & 0x7fffffff``
            modulo the partition count, so a key lands in the partition the Java producer,
            Kafka Streams, Kafka Connect, aiokafka and kafka-python put it in (co-partitioned
            joins, per-key order across producers, compaction per key all rely on that).
            librdkafka's own default, ``consistent_random`` (CRC32), sends most keys
            elsewhere.  Messages without a key go to a random partition.  A topic written
            with another mapping keeps it only if its producers agree: changing this on a
            live topic moves keys to other partitions (docs/kafka.md).
        linger_ms: how long librdkafka waits to fill a batch (``linger.ms``).
        batch_bytes: cap of one message batch (``batch.size``).
        max_message_bytes: largest message (value, key and headers) accepted by ``send()``; larger ones
            get :class:`~shardline.errors.MessageTooLargeError` before anything is queued.
            Must not exceed the topic's ``max.message.bytes`` (MSK default 1 MiB).
        delivery_timeout_ms: a message not acknowledged within this time fails with
            :class:`~shardline.errors.DeliveryError` (``message.timeout.ms``).
        queue_max_messages / queue_max_kbytes: librdkafka's local queue; when it is full
            ``send()`` waits for deliveries (back-pressure) instead of raising.
        poll_timeout_s: how long the delivery thread blocks in ``poll()``; it wakes as soon as
            a report arrives, so this only bounds how quickly ``close()`` notices.
        librdkafka: further producer properties passed through unchanged; TLS and SASL
            properties are refused (set them through ``KafkaClientConfig.security``), and so
            are ``partitioner`` and ``partitioner_cb``, also inside ``default.topic.config``
            (set the partitioner through the field above).
        event_id_key: signs every event id (an HMAC in the ``shardline-event-id-mac``
            header) so consumers holding the same key trust it as the record's identity
            (docs/security.md).  Never shown in ``repr``.
    """

    idempotent: bool = True
    acks: Literal["all", "1", "0"] = "all"
    compression: Compression = "lz4"
    partitioner: Partitioner = "murmur2_random"
    linger_ms: float = 5.0
    batch_bytes: int = 1_000_000
    max_message_bytes: int = 1_000_000
    delivery_timeout_ms: int = 120_000
    queue_max_messages: int = 100_000
    queue_max_kbytes: int = 1_048_576
    poll_timeout_s: float = 0.1
    librdkafka: dict[str, Any] = dataclasses.field(
        default_factory=dict, hash=False, compare=False, repr=False
    )
    event_id_key: EventIdKey | None = dataclasses.field(default=None, repr=False, hash=False, compare=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.event_id_key is not None and not isinstance(self.event_id_key, EventIdKey):
            problems.append("event_id_key must be a shardline.eventid.EventIdKey")
        if self.idempotent and self.acks != "all":
            problems.append("an idempotent producer needs acks='all'")
        if self.acks not in ("all", "1", "0"):
            problems.append("acks must be 'all', '1' or '0'")
        if self.compression not in ("none", "gzip", "snappy", "lz4", "zstd"):
            problems.append(f"unknown compression {self.compression!r}")
        if self.partitioner not in PARTITIONERS:
            problems.append(f"unknown partitioner {self.partitioner!r} (one of {', '.join(PARTITIONERS)})")
        if not 0 <= self.linger_ms <= 900_000:
            problems.append("linger_ms must be in 0..900000")
        if self.batch_bytes < 1:
            problems.append("batch_bytes must be positive")
        if not 1 <= self.max_message_bytes <= 1_000_000_000:
            problems.append("max_message_bytes must be in 1..1000000000")
        if self.delivery_timeout_ms < 1:
            problems.append("delivery_timeout_ms must be positive")
        if self.queue_max_messages < 1 or self.queue_max_kbytes < 1:
            problems.append("queue caps must be positive")
        if self.poll_timeout_s <= 0:
            problems.append("poll_timeout_s must be > 0")
        try:
            refuse_security_keys(self.librdkafka, "KafkaProducerConfig.librdkafka")
        except ConfigurationError as exc:
            problems.append(str(exc))
        if problems:
            raise ConfigurationError("; ".join(problems))

    def to_confluent(self) -> dict[str, Any]:
        refuse_security_keys(self.librdkafka, "KafkaProducerConfig.librdkafka")  # the dict is mutable
        return {
            "enable.idempotence": self.idempotent,
            "acks": self.acks,
            "compression.type": self.compression,
            "linger.ms": self.linger_ms,
            "batch.size": self.batch_bytes,
            # librdkafka checks the whole message set against this; leave room for framing.
            "message.max.bytes": max(self.max_message_bytes + 64 * 1024, 1_000_000),
            "message.timeout.ms": self.delivery_timeout_ms,
            "queue.buffering.max.messages": self.queue_max_messages,
            "queue.buffering.max.kbytes": self.queue_max_kbytes,
            **self.librdkafka,
            "partitioner": self.partitioner,  # the pass-through cannot hold one (refused above)
        }

    def with_options(self, **options: Any) -> KafkaProducerConfig:
        """A copy with some fields changed; unknown names are a ConfigurationError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(f"unknown producer option(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **options)
