"""Stream set-up and read-back for the Kinesis producer's wire tests, through the peer libraries.

Reading back uses plain boto3 GetRecords and aws-kinesis-agg's de-aggregation, never
Shardline's own codec, so a codec bug cannot hide itself.  aws-kinesis-agg is given the
records in its ``Boto3`` format: fed as Lambda events without ``kinesisSchemaVersion`` it
prints an error to stderr and silently drops every aggregate, which is how a read-back can
"find nothing" although every record was written.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aws_kinesis_agg.deaggregator import iter_deaggregate_records

from shardline.records import Record
from shardline.shardmath import ShardMap, partition_key_hash
from tests.kinesis_sync import list_shards_sync

ACTIVE_DEADLINE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One user record as found in the stream: where it landed and what it carried."""

    shard_id: str
    sequence_number: str
    sub_sequence_number: int | None
    partition_key: str
    explicit_hash_key: int | None
    data: bytes = field(repr=False)

    @property
    def hash_key(self) -> int:
        if self.explicit_hash_key is not None:
            return self.explicit_hash_key
        return partition_key_hash(self.partition_key)


def wait_active(client: Any, stream: str) -> None:
    """Poll DescribeStreamSummary until ACTIVE: the emulator gives no other signal (bounded)."""
    deadline = time.monotonic() + ACTIVE_DEADLINE_SECONDS
    while (
        client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
        != "ACTIVE"
    ):
        assert time.monotonic() < deadline, f"stream {stream} never became ACTIVE"
        time.sleep(0.05)  # bounded poll of an external server that offers no notification


def wait_closed(client: Any, stream: str, shard_ids: set[str]) -> None:
    """After a split or merge: wait until these shards are closed and the stream is ACTIVE.

    kinesis-mock answers SplitShard before the stream turns UPDATING, so polling the status
    alone can see the old ACTIVE state and return before anything changed.
    """
    deadline = time.monotonic() + ACTIVE_DEADLINE_SECONDS
    while True:
        open_ids = {
            s.shard_id for s in ShardMap.from_shards(list_shards_sync(client, stream_name=stream)).open_shards
        }
        if not open_ids & shard_ids:
            break
        assert time.monotonic() < deadline, f"shards {sorted(shard_ids)} never closed"
        time.sleep(0.05)  # bounded poll of an external server that offers no notification
    wait_active(client, stream)


def create_stream(client: Any, shards: int, prefix: str = "producer") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    client.create_stream(StreamName=name, ShardCount=shards)
    wait_active(client, name)
    return name


def _user_records(shard_id: str, raw: dict[str, Any]) -> Iterable[StoredRecord]:
    for user in iter_deaggregate_records([raw], data_format="Boto3"):
        kinesis = user["kinesis"]
        aggregated = bool(kinesis.get("aggregated"))
        data = base64.b64decode(kinesis["data"]) if aggregated else kinesis["data"]
        ehk = kinesis.get("explicitHashKey")
        yield StoredRecord(
            shard_id=shard_id,
            sequence_number=kinesis["sequenceNumber"],
            sub_sequence_number=kinesis.get("subSequenceNumber") if aggregated else None,
            partition_key=kinesis["partitionKey"],
            explicit_hash_key=int(ehk) if ehk is not None else None,
            data=data,
        )


def read_back(client: Any, stream: str) -> list[StoredRecord]:
    """Every user record of every shard (closed parents included), oldest first per shard."""
    out: list[StoredRecord] = []
    for shard in list_shards_sync(client, stream_name=stream):
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard.shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=10_000)
            records = response["Records"]
            for raw in records:
                out.extend(_user_records(shard.shard_id, raw))
            iterator = response.get("NextShardIterator")
            if not records and response.get("MillisBehindLatest", 0) == 0:
                break  # caught up with an open shard (a closed one ends with no iterator)
    return out


def assert_each_once_on_its_shard(client: Any, stream: str, expected: Iterable[Record]) -> list[StoredRecord]:
    """Every expected record exactly once (payloads are unique), each inside its shard's hash range.

    The hash key comes from the record as sent (GetRecords does not return the explicit
    hash key of a plain record).  The check is per user record, so it also proves that no
    aggregate mixes records of different shards.
    """
    sent = list(expected)
    hash_keys = {r.data: _sent_hash_key(r) for r in sent}
    found = read_back(client, stream)
    shard_map = ShardMap.from_shards(list_shards_sync(client, stream_name=stream))
    counts = Counter(record.data for record in found)
    wanted = Counter(r.data for r in sent)
    missing = wanted - counts
    extra = counts - wanted
    assert not missing, f"{sum(missing.values())} records missing"
    assert not extra, f"{sum(extra.values())} unexpected or duplicate records"
    misplaced = [r for r in found if not _contains(shard_map, r.shard_id, hash_keys[r.data])]
    assert not misplaced, f"{len(misplaced)} records outside their shard's hash range"
    return found


def _sent_hash_key(record: Record) -> int:
    if record.explicit_hash_key is not None:
        return record.explicit_hash_key
    assert record.partition_key is not None, "the wire tests always give partition keys"
    return partition_key_hash(record.partition_key)


def _contains(shard_map: ShardMap, shard_id: str, hash_key: int) -> bool:
    shard = shard_map.get(shard_id)
    return shard is not None and shard.contains(hash_key)
