"""Service limits in one place.

The numbers are AWS's documented quotas.  Code that batches, validates or rate-limits reads
them from here so a change in a quota is one edit.
"""

from __future__ import annotations

from typing import Final

KiB: Final = 1024
MiB: Final = 1024 * KiB

# A signed 64-bit integer: Kafka offsets and timestamps, InfluxDB integer fields, sink versions
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

# Kinesis Data Streams
PARTITION_KEY_MIN_CHARS: Final = 1
PARTITION_KEY_MAX_CHARS: Final = 256
HASH_KEY_MAX: Final = 2**128 - 1
DEFAULT_MAX_RECORD_BYTES: Final = 1 * MiB  # data + partition key; streams may be configured up to 10 MiB
PUT_RECORDS_MAX_ENTRIES: Final = 500
PUT_RECORDS_MAX_BYTES: Final = 5 * MiB
SHARD_WRITE_BYTES_PER_SEC: Final = 1 * MiB
SHARD_WRITE_RECORDS_PER_SEC: Final = 1000
SHARD_READ_BYTES_PER_SEC: Final = 2 * MiB
SHARD_GET_RECORDS_CALLS_PER_SEC: Final = 5
GET_RECORDS_MAX_LIMIT: Final = 10_000
EFO_SUBSCRIPTION_SECONDS: Final = 300
ITERATOR_LIFETIME_SECONDS: Final = 300
KPL_DEFAULT_AGGREGATE_BYTES: Final = 50 * KiB

# Kafka
KAFKA_TOPIC_MAX_CHARS: Final = 249

# Firehose
FIREHOSE_BATCH_MAX_RECORDS: Final = 500
FIREHOSE_BATCH_MAX_BYTES: Final = 4 * MiB
FIREHOSE_RECORD_MAX_BYTES: Final = 1000 * KiB

# DynamoDB
DYNAMODB_BATCH_WRITE_MAX_ITEMS: Final = 25
DYNAMODB_BATCH_WRITE_MAX_BYTES: Final = 16 * MiB
DYNAMODB_ITEM_MAX_BYTES: Final = 400 * KiB
DYNAMODB_KEY_VALUE_MAX_BYTES: Final = 2048
"""A partition key value's limit (a sort key's is 1024; the sink cannot tell which is which)."""
DYNAMODB_TRANSACT_MAX_ITEMS: Final = 100

# Timestream
TIMESTREAM_WRITE_MAX_RECORDS: Final = 100
TIMESTREAM_MEASURE_VALUE_MAX_BYTES: Final = 2048
"""A measure value's text (VARCHAR, or any type's spelling); at least one character."""
TIMESTREAM_MEASURE_NAME_MAX_BYTES: Final = 256
TIMESTREAM_DIMENSION_NAME_MAX_BYTES: Final = 60
TIMESTREAM_DIMENSIONS_MAX: Final = 128
TIMESTREAM_DIMENSIONS_MAX_BYTES: Final = 2 * KiB
"""The dimension names and values of one series together."""
