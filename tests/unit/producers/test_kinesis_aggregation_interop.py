"""What the producer writes, read by the other engines' de-aggregators, and theirs read by ours.

The peer is aws-kinesis-agg (tested against 1.2.3), whose aggregator and de-aggregator follow
the KPL aggregation format the KCL reads (magic ``F3 89 9A C2``, protobuf ``AggregatedRecord``,
MD5 trailer).  Records go through the real producer into :class:`FakeKinesis`, which routes
each entry by its partition key / explicit hash key as Kinesis does, so these tests also
check that every user record of an aggregate lands on the shard that owns its own hash key.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

import aws_kinesis_agg.aggregator as peer_aggregator
import aws_kinesis_agg.deaggregator as peer_deaggregator

from consumers.adapters.lambda_handler import parse_kinesis_event
from producers import KinesisProducer
from shardline.aggregation import DEFAULT_MAX_USER_RECORDS, MAGIC, AggregateBuilder, deaggregate
from shardline.limits import DEFAULT_MAX_RECORD_BYTES, HASH_KEY_MAX, PARTITION_KEY_MAX_CHARS
from shardline.records import Ack
from shardline.shardmath import ShardMap
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}
ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/s"

# (partition key, data, explicit hash key)
User = tuple[str, bytes, int | None]


def peer_decode(entry: dict[str, Any], sequence_number: str) -> list[tuple[str, bytes]]:
    """(partition key, data) of each user record the peer finds in a written entry (it passes
    a plain record on as it came, and base64-encodes the data of a de-aggregated one).

    Explicit hash keys are not compared here: the peer reports table entry 0 for a record of a
    mixed aggregate that has none (it reads the proto2 default index without ``HasField``);
    the format, the KCL and :func:`shardline.aggregation.deaggregate` give it none.
    """
    raw = {
        "SequenceNumber": sequence_number,
        "PartitionKey": entry["PartitionKey"],
        "ApproximateArrivalTimestamp": datetime(2024, 1, 1, tzinfo=UTC),
        "Data": entry["Data"],
    }
    return [
        (r["partitionKey"], base64.b64decode(r["data"]) if r.get("aggregated") else r["data"])
        for r in (
            u["kinesis"] for u in peer_deaggregator.iter_deaggregate_records([raw], data_format="Boto3")
        )
    ]


async def produce(users: list[User], shards: int = 4, **options: Any) -> FakeKinesis:
    fake = FakeKinesis(shards)
    async with KinesisProducer("s", client=fake, **{**FAST, **options}) as producer:
        futures = [
            await producer.send(data, partition_key=key, explicit_hash_key=ehk) for key, data, ehk in users
        ]
        await asyncio.wait_for(producer.flush(), 10)
        acks = await asyncio.wait_for(asyncio.gather(*futures), 10)
    assert len(acks) == len(users)
    check_acks_point_at_their_records(fake, users, acks)
    return fake


def check_acks_point_at_their_records(fake: FakeKinesis, users: list[User], acks: list[Ack]) -> None:
    """Each record's ack (shard, sequence number, sub-sequence number) is where a consumer
    reading the stream finds it: the position checkpoints and lineage are keyed on."""
    found: dict[tuple[str, str, int], tuple[str, bytes]] = {}
    for sequence, (shard_id, entry) in enumerate(fake.written):
        # FakeKinesis numbers the entries it writes 1, 2, ... across shards
        for sub, user in enumerate(peer_decode(entry, str(sequence + 1))):
            found[(shard_id, str(sequence + 1), sub)] = user
    for (key, data, _), ack in zip(users, acks, strict=True):
        position = (ack.shard_id, ack.sequence_number, ack.sub_sequence_number or 0)
        assert found[position] == (key, data)


def check_peer_reads(fake: FakeKinesis, users: list[User]) -> None:
    """The peer de-aggregates every written entry into exactly the user records, each on the
    shard that owns its own hash key, in per-shard order."""
    shard_map = ShardMap.from_api(fake.shards)
    by_shard: dict[str, list[User]] = {}
    for key, data, ehk in users:
        by_shard.setdefault(shard_map.shard_for_key(key, ehk).shard_id, []).append((key, data, ehk))
    read: dict[str, list[tuple[str, bytes]]] = {}
    for sequence, (shard_id, entry) in enumerate(fake.written):
        for user in peer_decode(entry, str(sequence + 1)):
            read.setdefault(shard_id, []).append(user)
    # each user record on the shard owning its own hash key, in the order sent
    assert read == {s: [(k, d) for k, d, _ in u] for s, u in by_shard.items()}


def lambda_event(fake: FakeKinesis) -> dict[str, Any]:
    """The written entries as AWS Lambda delivers them: one record per Kinesis record, not
    de-aggregated, data base64-encoded."""
    return {
        "Records": [
            {
                "eventSource": "aws:kinesis",
                "eventSourceARN": ARN,
                "eventID": f"{shard_id}:{sequence + 1}",
                "kinesis": {
                    "sequenceNumber": str(sequence + 1),
                    "partitionKey": entry["PartitionKey"],
                    "data": base64.b64encode(entry["Data"]).decode("ascii"),
                },
            }
            for sequence, (shard_id, entry) in enumerate(fake.written)
        ]
    }


def lambda_reads(fake: FakeKinesis) -> list[User]:
    return [
        (r.partition_key, r.data, r.explicit_hash_key)
        for _, records in parse_kinesis_event(lambda_event(fake))
        for r in records
    ]


EDGE_USERS: list[User] = [
    ("a", b"", None),  # empty data
    ("ключ-🙂", "данные".encode(), None),  # unicode key
    ("鍵", b"\x00\xff" * 10, None),
    ("low", b"to the first shard", 0),
    ("high", b"to the last shard", HASH_KEY_MAX),
    ("also-low", b"", 0),
    ("k" * PARTITION_KEY_MAX_CHARS, b"longest key", None),
    ("🙂" * PARTITION_KEY_MAX_CHARS, b"longest key in bytes", None),
    *((f"device-{i}", b"%d" % i, None) for i in range(5_000)),  # many distinct keys
    *((f"device-{i % 7}", b"again %d" % i, (i * 2**121) % (HASH_KEY_MAX + 1)) for i in range(300)),
]


async def test_the_peer_and_the_lambda_handler_read_what_the_producer_writes() -> None:
    fake = await produce(EDGE_USERS, shards=5)
    assert any(deaggregate(entry["Data"]) is not None for _, entry in fake.written)  # aggregated
    check_peer_reads(fake, EDGE_USERS)
    # Lambda hands the handler whole Kinesis records; it expands them, explicit hash keys kept
    assert sorted(lambda_reads(fake), key=repr) == sorted(EDGE_USERS, key=repr)


async def test_aggregates_at_the_record_limit_count_the_entry_partition_key() -> None:
    # the longest partition key in UTF-8 bytes (256 four-byte characters), so the entry's key
    # costs 1 KiB on top of the aggregate
    key = "🙂" * PARTITION_KEY_MAX_CHARS
    users: list[User] = [
        (key if i % 2 else f"{key[:-1]}{i % 3}", bytes([i % 256]) * 997, None) for i in range(3_000)
    ]
    fake = await produce(users, shards=1, aggregate_max_bytes=DEFAULT_MAX_RECORD_BYTES)
    sizes = [len(e["Data"]) + len(e["PartitionKey"].encode("utf-8")) for _, e in fake.written]
    assert max(sizes) <= DEFAULT_MAX_RECORD_BYTES
    assert max(sizes) > DEFAULT_MAX_RECORD_BYTES - 2_100  # filled to within a record of the limit
    check_peer_reads(fake, users)
    assert lambda_reads(fake) == users


async def test_a_lone_record_goes_plain_and_every_reader_agrees() -> None:
    users: list[User] = [("only", b"one record", None)]
    fake = await produce(users)
    [(_, entry)] = fake.written
    assert entry["Data"] == b"one record" and entry["PartitionKey"] == "only"
    assert peer_decode(entry, "1") == [("only", b"one record")]
    assert lambda_reads(fake) == users
    fake = await produce([("only", b"one record", 2**100)])
    [(_, entry)] = fake.written
    assert entry["ExplicitHashKey"] == str(2**100)


def peer_aggregates(users: list[User], max_size: int) -> list[tuple[str, bytes]]:
    """(entry partition key, data) of the peer's aggregates of ``users``."""
    full: list[tuple[str, str | None, bytes]] = []
    aggregator = peer_aggregator.RecordAggregator(max_size)
    aggregator.on_record_complete(lambda agg: full.append(agg.get_contents()), execute_on_new_thread=False)
    for key, data, ehk in users:
        aggregator.add_user_record(key, data, None if ehk is None else str(ehk))
    tail = aggregator.clear_and_get()
    if tail is not None:
        full.append(tail.get_contents())
    return [(key, blob) for key, _, blob in full]


def test_the_lambda_handler_reads_the_peers_aggregates() -> None:
    users: list[User] = [*EDGE_USERS[:8], *((f"d{i % 40}", b"x" * (i % 9), None) for i in range(400))]
    aggregates = peer_aggregates(users, 4 * 1024)
    assert len(aggregates) > 1 and all(blob.startswith(MAGIC) for _, blob in aggregates)
    fake = FakeKinesis(1)
    fake.written = [("shardId-000000000000", {"PartitionKey": k, "Data": blob}) for k, blob in aggregates]
    assert lambda_reads(fake) == users


def test_the_peers_one_record_aggregate_is_read_as_its_record() -> None:
    # the peer aggregates even a lone record (Shardline sends one plain): both must read alike
    [(key, blob)] = peer_aggregates([("ключ", b"", HASH_KEY_MAX)], 4 * 1024)
    assert blob.startswith(MAGIC)
    fake = FakeKinesis(1)
    fake.written = [("shardId-000000000000", {"PartitionKey": key, "Data": blob})]
    assert lambda_reads(fake) == [("ключ", b"", HASH_KEY_MAX)]


async def test_an_aggregate_goes_where_its_explicit_hash_keys_say_not_where_its_key_hashes() -> None:
    # One partition key, explicit hash keys spread over every shard (0 and 2**128-1 included):
    # each shard's aggregate starts with a record whose key hashes to some other shard, so the
    # entry must carry the explicit hash key, and records of different shards must not share it.
    ehks = [0, HASH_KEY_MAX, *((i * 2**125 + 12345) % (HASH_KEY_MAX + 1) for i in range(64))]
    users: list[User] = [("one-key", b"r%d" % i, ehk) for i, ehk in enumerate(ehks)]
    fake = await produce(users, shards=8)
    assert len(fake.written) < len(users)  # aggregated
    check_peer_reads(fake, users)
    assert sorted(lambda_reads(fake), key=repr) == sorted(users, key=repr)


async def test_an_aggregate_holds_no_more_records_than_a_consumer_takes_by_default() -> None:
    # 25,000 empty records fit one 1 MiB aggregate (~6 bytes each); the consumers' default
    # DeaggregationPolicy refuses more than DEFAULT_MAX_USER_RECORDS, so such an aggregate was
    # dead-lettered whole by Shardline's own readers
    users: list[User] = [("k", b"", None)] * 25_000
    fake = await produce(users, shards=1, aggregate_max_bytes=DEFAULT_MAX_RECORD_BYTES)
    counts = [len(deaggregate(entry["Data"]) or [None]) for _, entry in fake.written]
    assert max(counts) <= DEFAULT_MAX_USER_RECORDS
    assert sum(counts) == len(users)
    assert lambda_reads(fake) == users  # none refused


def test_the_builder_closes_an_aggregate_at_the_record_cap_on_both_paths() -> None:
    builder = AggregateBuilder(max_bytes=DEFAULT_MAX_RECORD_BYTES)
    while builder.try_add("k", b""):
        pass
    assert len(builder) == DEFAULT_MAX_USER_RECORDS
    builder.reset()
    keys, datas = ["k"] * 25_000, [b""] * 25_000
    added, _ = builder.add_records(keys, datas, range(25_000))
    assert added == len(builder) == DEFAULT_MAX_USER_RECORDS
    assert builder.add_records(keys, datas, range(25_000), added) == (added, 0)  # full: none more
