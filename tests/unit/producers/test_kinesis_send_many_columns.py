"""``send_many(values, keys)``: columns of bytes and keys, every older call shape, bad input."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from producers import KinesisProducer, keys
from producers.sync import SyncKinesisProducer
from producers.tickets import EntryAcks
from shardline.aggregation import deaggregate
from shardline.errors import (
    InvalidDataError,
    InvalidExplicitHashKeyError,
    InvalidPartitionKeyError,
    RecordTooLargeError,
    SerializationError,
    ValidationError,
)
from shardline.limits import HASH_KEY_MAX, MiB
from shardline.records import Record
from shardline.shardmath import ShardMap
from tests.unit.producers.fake_kinesis import FakeKinesis

FAST = {"linger": 0.01, "initial_backoff": 0.001, "max_backoff": 0.002, "rate_limit_percent": None}


def written(fake: FakeKinesis) -> list[tuple[str, str, bytes, int | None, str | None]]:
    """(shard, partition key, data, explicit hash key, event id) of every user record written."""
    out: list[tuple[str, str, bytes, int | None, str | None]] = []
    for shard_id, entry in fake.written:
        users = deaggregate(entry["Data"])
        if users is None:
            out.append((shard_id, entry["PartitionKey"], entry["Data"], None, None))
        else:
            out.extend((shard_id, u.partition_key, u.data, u.explicit_hash_key, u.event_id) for u in users)
    return out


async def test_columns_are_routed_aggregated_and_acked_in_input_order() -> None:
    fake = FakeKinesis()
    values = [f"v{i}".encode() + bytes([i % 256]) * (i % 40) for i in range(3_000)]
    partition_keys = [f"dev-{i % 70}" for i in range(3_000)]
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        acks = await (await producer.send_many(values, partition_keys))
    assert acks.ok and len(acks) == 3_000
    shard_map = ShardMap.from_api(fake.shards)
    for key, ack in zip(partition_keys, acks, strict=True):
        assert ack.shard_id == shard_map.shard_for_key(key).shard_id
        assert ack.sub_sequence_number is not None
    found = written(fake)
    assert sorted((k, d) for _, k, d, _, _ in found) == sorted(zip(partition_keys, values, strict=True))
    for shard_id, key, _, _, _ in found:
        assert shard_map.shard_for_key(key).shard_id == shard_id
    assert sum(len(call) for call in fake.calls) < 100  # aggregated
    # Per key, the records arrive in the order given.
    for key in {"dev-0", "dev-13"}:
        mine = [d for _, k, d, _, _ in found if k == key]
        assert mine == [v for v, k in zip(values, partition_keys, strict=True) if k == key]


async def test_columns_write_the_same_bytes_as_records() -> None:
    values = [b"%05d" % i + b"x" * (i % 90) for i in range(1_500)]
    partition_keys = [f"k{i % 33}" for i in range(1_500)]
    by_columns, by_records = FakeKinesis(), FakeKinesis()
    async with KinesisProducer("s", client=by_columns, **FAST) as producer:
        assert (await (await producer.send_many(values, partition_keys))).ok
    async with KinesisProducer("s", client=by_records, **FAST) as producer:
        records = [Record(v, k) for v, k in zip(values, partition_keys, strict=True)]
        assert (await (await producer.send_many(records))).ok
    assert sorted(e["Data"] for _, e in by_columns.written) == sorted(
        e["Data"] for _, e in by_records.written
    )


async def test_every_value_shape_in_one_call_keys_override_and_none_falls_back() -> None:
    fake = FakeKinesis()
    ehk = HASH_KEY_MAX  # the last shard
    values: list[Any] = [
        b"plain",  # bytes with its key
        Record(b"own-key", partition_key="record-key"),  # keys[i] None: the record's own key
        Record(b"overridden", partition_key="ignored"),  # keys[i] given: it wins
        Record(b"tagged", partition_key="t", explicit_hash_key=ehk, event_id="evt-9"),
        {"device_id": "dev-5", "n": 1},  # an object for the serializer, key from the strategy
        b"strategy-key",  # bytes without a key: the key strategy (here: random) picks one
    ]
    given: list[str | None] = ["p", None, "winner", None, None, None]
    async with KinesisProducer(
        "s",
        client=fake,
        serializer=lambda v: json.dumps(v).encode(),
        key_strategy=keys.random(),
        **FAST,
    ) as producer:
        acks = await (await producer.send_many(values, given))
    assert acks.ok and len(acks) == 6
    found = {d: (shard, k, h, e) for shard, k, d, h, e in written(fake)}
    assert found[b"plain"][1] == "p"
    assert found[b"own-key"][1] == "record-key"
    assert found[b"overridden"][1] == "winner"
    shard_map = ShardMap.from_api(fake.shards)
    assert found[b"tagged"] == (shard_map.shard_for_hash(ehk).shard_id, "t", ehk, "evt-9")
    assert acks[3].shard_id == shard_map.shard_for_hash(ehk).shard_id
    assert found[json.dumps({"device_id": "dev-5", "n": 1}).encode()][1] != ""
    assert len(found[b"strategy-key"][1]) > 0


async def test_the_old_call_shapes_still_work() -> None:
    fake = FakeKinesis()
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        from_list = await (await producer.send_many([Record(b"a", partition_key="k1")]))
        from_generator = await (await producer.send_many(Record(b"g%d" % i, f"k{i}") for i in range(5)))
        with_block = await (await producer.send_many([Record(b"b", partition_key="k2")], block=False))
        empty = await (await producer.send_many([]))
        empty_columns = await (await producer.send_many([], []))
    assert from_list.ok and from_generator.ok and with_block.ok and empty.ok and empty_columns.ok
    assert (len(from_list), len(from_generator), len(empty), len(empty_columns)) == (1, 5, 0, 0)
    assert sorted(d for _, _, d, _, _ in written(fake)) == sorted(
        [b"a", b"b", *(b"g%d" % i for i in range(5))]
    )


async def test_the_callers_lists_may_be_reused_at_once() -> None:
    fake = FakeKinesis()
    gate = asyncio.Event()
    fake.gate = gate
    values = [b"one", b"two"]
    partition_keys = ["a", "b"]
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        batch = await producer.send_many(values, partition_keys)
        values[:] = [b"changed", b"changed"]
        partition_keys[:] = ["z", "z"]
        gate.set()
        assert (await batch).ok
    assert sorted((k, d) for _, k, d, _, _ in written(fake)) == [("a", b"one"), ("b", b"two")]


@pytest.mark.parametrize(
    ("bad_value", "bad_key", "error"),
    [
        (b"x", "", InvalidPartitionKeyError),
        (b"x", "k" * 257, InvalidPartitionKeyError),
        (b"x", 7, InvalidPartitionKeyError),
        (b"x", None, InvalidPartitionKeyError),  # no key and no key strategy
        ("text", "k", InvalidDataError),
        (None, "k", InvalidDataError),
        (b"x" * MiB, "k", RecordTooLargeError),
        (Record(b"x", "k", explicit_hash_key=-1), None, InvalidExplicitHashKeyError),
        (Record(b"x", "k", event_id=""), None, ValidationError),
    ],
)
async def test_bad_input_names_its_position_and_nothing_of_the_batch_is_accepted(
    bad_value: Any, bad_key: Any, error: type[Exception]
) -> None:
    fake = FakeKinesis()
    gate = asyncio.Event()
    fake.gate = gate
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        accepted = await producer.send(b"good", partition_key="ok")
        values = [b"fine-0", b"fine-1", bad_value, b"fine-3"]
        with pytest.raises(error, match="record 2 of the batch"):
            await producer.send_many(values, ["a", "b", bad_key, "d"])
        assert producer.buffered[0] == 1
        gate.set()
        await accepted
    assert [d for _, _, d, _, _ in written(fake)] == [b"good"]


@pytest.mark.parametrize("shape", ["column", "record"])
async def test_a_key_with_no_utf8_form_names_its_position_too(shape: str) -> None:
    """A lone surrogate is found when the batch is routed (the key's MD5 needs its UTF-8 form),
    after the per-record checks: its error named no position, unlike every other bad key."""
    lone = "k-\ud800"
    if shape == "column":
        call: tuple[list[Any], list[Any] | None] = ([b"a", b"b", b"c"], ["a", "b", lone])
    else:
        call = ([Record(b"a", "a"), Record(b"b", "b"), Record(b"c", lone)], None)
    fake = FakeKinesis()
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        with pytest.raises(InvalidPartitionKeyError) as refused:
            await producer.send_many(*call)
        assert producer.buffered == (0, 0)
    assert str(refused.value).startswith("record 2 of the batch: partition key is not Unicode text")
    assert fake.calls == []


async def test_keys_of_another_length_are_refused_before_anything_is_buffered() -> None:
    fake = FakeKinesis()
    async with KinesisProducer("s", client=fake, **FAST) as producer:
        with pytest.raises(ValidationError, match="3 values but 2 keys"):
            await producer.send_many([b"a", b"b", b"c"], ["k1", "k2"])
        assert producer.buffered == (0, 0)
    assert fake.calls == []


async def test_a_raising_serializer_is_the_records_typed_error() -> None:
    def serializer(value: Any) -> bytes:
        raise RuntimeError("boom")

    async with KinesisProducer("s", client=FakeKinesis(), serializer=serializer, **FAST) as producer:
        with pytest.raises(SerializationError, match="record 0 of the batch"):
            await producer.send_many([{"a": 1}], ["k"])
        assert producer.buffered == (0, 0)


async def test_columns_without_aggregation_and_near_the_size_limit() -> None:
    fake = FakeKinesis()
    fake.max_record_kib = 2
    values = [b"a" * 2000, b"b" * 10, b"c" * 2047]  # 2047 + 1-char key = the 2 KiB limit
    async with KinesisProducer("s", client=fake, aggregate=False, **FAST) as producer:
        acks = await (await producer.send_many(values, ["k", "k", "k"]))
        with pytest.raises(RecordTooLargeError, match="record 0 of the batch"):
            await producer.send_many([b"d" * 2048], ["k"])
    assert acks.ok and all(ack.sub_sequence_number is None for ack in acks)
    assert [d for _, _, d, _, _ in written(fake)] == values


def test_the_sync_facade_takes_columns_too() -> None:
    fake = FakeKinesis()
    with SyncKinesisProducer("s", client=fake, **FAST) as producer:
        batch = producer.send_many([b"x", b"y"], ["k1", "k2"])
        acks = batch.result(timeout=5.0)
    assert acks.ok and len(acks) == 2
    assert sorted((k, d) for _, k, d, _, _ in written(fake)) == [("k1", b"x"), ("k2", b"y")]


@pytest.mark.parametrize(
    ("values", "keys", "message"),
    [
        ([b"x", b"y"], "k1", r"one key per value \(a list\), not a str"),  # not the keys "k" and "1"
        ([b"x"], 5, r"one key per value \(a list\), not a int"),
        (b"xy", ["k1", "k2"], "an iterable of values, not a bytes"),  # not the values 120 and 121
        (None, None, "an iterable of values, not a NoneType"),
        ([b"x", b"y"], ["k1"], "2 values but 1 keys"),
    ],
)
def test_the_sync_facade_refuses_the_shapes_the_async_producer_refuses(
    values: Any, keys: Any, message: str
) -> None:
    """The facade reads the caller's iterables in the caller's thread; it read a str of keys
    as one key per character, and raised a bare TypeError for what is not iterable."""
    fake = FakeKinesis()
    with SyncKinesisProducer("s", client=fake, **FAST) as producer:
        with pytest.raises(ValidationError, match=message):
            producer.send_many(values, keys)
        assert producer.producer.buffered == (0, 0)
    assert fake.calls == []


async def test_the_entries_of_one_response_share_its_arrival_time_exactly() -> None:
    """The clock is read once per PutRecords response, not once per entry or run: a caller
    can group what one response acknowledged by time (stream-bench's recorder does)."""
    fake = FakeKinesis(shards=8)
    ticks = iter(range(1, 1_000_000))
    values = [b"%04d" % i for i in range(64)]
    partition_keys = [f"dev-{i}" for i in range(64)]
    async with KinesisProducer("s", client=fake, clock=lambda: float(next(ticks)), **FAST) as producer:
        acks = await (await producer.send_many(values, partition_keys))
    assert len(fake.calls) == 1  # one request...
    entries = list(acks.by_entry())
    assert len({entry.shard_id for entry in entries}) == 8  # ...with an entry for every shard
    assert len({entry.acked_at for entry in entries}) == 1  # one reading of a clock that counts


async def test_by_entry_groups_acknowledged_records_by_entry_with_their_response_time() -> None:
    """Every acknowledged position appears once, with its entry's shard and response time;
    the records of a failed entry are in ``failed`` only."""
    fake = FakeKinesis(fault=lambda call, entry: "InternalFailure" if call == 0 else None)
    ticks = iter(range(1, 1_000_000))
    values = [b"%04d" % i for i in range(600)]
    partition_keys = [f"dev-{i % 40}" for i in range(600)]
    # one entry per request, so each entry is acknowledged at a moment of its own
    config = {**FAST, "max_attempts": 1, "max_batch_entries": 1}
    async with KinesisProducer("s", client=fake, clock=lambda: float(next(ticks)), **config) as producer:
        acks = await (await producer.send_many(values, partition_keys))
    entries = list(acks.by_entry())
    assert len(entries) == len(fake.written)  # one group per Kinesis entry written
    assert all(type(entry) is EntryAcks for entry in entries)
    positions = [p for entry in entries for p in entry.positions]
    assert acks.failed and not set(acks.failed) & set(positions)  # the first request's entry
    assert sorted([*acks.failed, *positions]) == list(range(600))
    for entry in entries:
        assert {acks[p].shard_id for p in entry.positions} == {entry.shard_id}
        subs = [acks[p].sub_sequence_number for p in entry.positions]
        assert subs == list(range(subs[0], subs[0] + len(subs)))  # in sub-sequence order
    times = [entry.acked_at for entry in entries]
    assert len(set(times)) == len(times)  # each entry's own response...
    assert all(t.is_integer() for t in times)  # ...timed on the producer's (counting) clock


class _Named:
    """Keeps the names of the events it is given; takes only those listed, when listed."""

    def __init__(self, takes: frozenset[str] | None) -> None:
        self.names: list[str] = []
        if takes is not None:
            self.shardline_events = takes

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.names.append(name)


@pytest.mark.parametrize("takes", [None, frozenset({"throttles", "retries", "records_sent"})])
async def test_per_entry_and_per_shard_events_go_only_to_an_observer_that_takes_them(
    takes: frozenset[str] | None,
) -> None:
    """An observer that lists its events is not called with the latency of every entry or the
    count of every shard (the producer skips building them); one that lists none gets all."""
    observer = _Named(takes)
    async with KinesisProducer("s", client=FakeKinesis(shards=8), observer=observer, **FAST) as producer:
        acks = await (await producer.send_many([b"x"] * 64, [f"dev-{i}" for i in range(64)]))
    assert acks.ok
    per_entry = {"send_to_ack_latency", "shard_records"} & set(observer.names)
    assert per_entry == (set() if takes else {"send_to_ack_latency", "shard_records"})
    assert "records_sent" in observer.names
