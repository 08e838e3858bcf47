"""KPL aggregation codec: exact sizes, byte-for-byte agreement with protobuf and with
aws-kinesis-agg in both directions, and safe fallback for anything that is not an aggregate."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import aws_kinesis_agg.aggregator as peer_aggregator
import aws_kinesis_agg.deaggregator as peer_deaggregator
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardline._kpl_pb import AggregatedRecord
from shardline.aggregation import (
    EMPTY_AGGREGATE_SIZE,
    MAGIC,
    AggregateBuilder,
    UserRecord,
    aggregate_payloads,
    deaggregate,
    deaggregate_consumed,
    is_aggregated,
)
from shardline.errors import ConfigurationError, ValidationError
from shardline.limits import DEFAULT_MAX_RECORD_BYTES, HASH_KEY_MAX, KPL_DEFAULT_AGGREGATE_BYTES
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition

Entry = tuple[str, bytes, int | None]

keys = st.text(min_size=1, max_size=256)
hash_keys = st.none() | st.integers(min_value=0, max_value=HASH_KEY_MAX)
entries = st.lists(st.tuples(keys, st.binary(max_size=300), hash_keys), min_size=1, max_size=40)
# Few distinct keys so the dedupe tables are exercised.
repeated_entries = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "ü-key", "🙂"]), st.binary(max_size=50), st.sampled_from([None, 0, 7])
    ),
    min_size=1,
    max_size=60,
)


def build(items: list[Entry], max_bytes: int = DEFAULT_MAX_RECORD_BYTES * 4) -> AggregateBuilder:
    builder = AggregateBuilder(max_bytes)
    for key, data, ehk in items:
        assert builder.try_add(key, data, ehk)
    return builder


def protobuf_reference(items: list[Entry]) -> bytes:
    """The same aggregate serialised by the protobuf library itself."""
    message = AggregatedRecord()
    key_index: dict[str, int] = {}
    hash_index: dict[int, int] = {}
    for key, data, ehk in items:
        if key not in key_index:
            key_index[key] = len(key_index)
            message.partition_key_table.append(key)
        record = message.records.add(partition_key_index=key_index[key], data=data)
        if ehk is not None:
            if ehk not in hash_index:
                hash_index[ehk] = len(hash_index)
                message.explicit_hash_key_table.append(str(ehk))
            record.explicit_hash_key_index = hash_index[ehk]
    body: bytes = message.SerializeToString()
    return MAGIC + body + hashlib.md5(body).digest()


def peer_encode(items: list[Entry], max_size: int = 4 * DEFAULT_MAX_RECORD_BYTES) -> bytes:
    aggregate = peer_aggregator.AggRecord(max_size)
    for key, data, ehk in items:
        assert aggregate.add_user_record(key, data, None if ehk is None else str(ehk))
    contents: bytes = aggregate.get_contents()[2]
    return contents


def peer_decode(blob: bytes) -> list[dict[str, Any]]:
    raw = {
        "SequenceNumber": "1",
        "PartitionKey": "outer",
        "ApproximateArrivalTimestamp": datetime(2024, 1, 1, tzinfo=UTC),
        "Data": blob,
    }
    return [r["kinesis"] for r in peer_deaggregator.iter_deaggregate_records([raw], data_format="Boto3")]


# --- the builder ------------------------------------------------------------------------------


@settings(max_examples=150)
@given(entries)
def test_round_trip_and_exact_sizes(items: list[Entry]) -> None:
    builder = AggregateBuilder(DEFAULT_MAX_RECORD_BYTES * 4)
    for key, data, ehk in items:
        predicted = builder.size_with(key, data, ehk)
        assert builder.try_add(key, data, ehk)
        assert builder.encoded_size == predicted
    blob = builder.encode()
    assert len(blob) == builder.encoded_size
    assert deaggregate(blob) == [UserRecord(k, d, e, i) for i, (k, d, e) in enumerate(items)]


@settings(max_examples=100)
@given(entries)
def test_aggregate_payloads_are_the_data_deaggregate_gives(items: list[Entry]) -> None:
    builder = AggregateBuilder(DEFAULT_MAX_RECORD_BYTES * 4)
    for key, data, ehk in items:
        assert builder.try_add(key, data, ehk)
    blob = builder.encode()
    assert aggregate_payloads(blob) == [data for _, data, _ in items]
    corrupt = bytearray(blob)
    corrupt[-1] ^= 1  # the MD5 no longer matches: not an aggregate, for both
    assert aggregate_payloads(bytes(corrupt)) is None and deaggregate(bytes(corrupt)) is None


@settings(max_examples=150)
@given(repeated_entries)
def test_encoding_is_byte_identical_to_protobuf(items: list[Entry]) -> None:
    assert build(items).encode() == protobuf_reference(items)


@given(entries)
def test_encoding_is_byte_identical_to_protobuf_for_any_keys(items: list[Entry]) -> None:
    assert build(items).encode() == protobuf_reference(items)


@given(
    st.lists(st.tuples(keys, st.binary(max_size=400), hash_keys), min_size=1, max_size=60),
    st.integers(min_value=EMPTY_AGGREGATE_SIZE + 1, max_value=2000),
)
def test_try_add_never_exceeds_max_bytes_unless_alone(items: list[Entry], max_bytes: int) -> None:
    builder = AggregateBuilder(max_bytes)
    blobs: list[bytes] = []
    counts: list[int] = []
    for key, data, ehk in items:
        if not builder.try_add(key, data, ehk):
            blobs.append(builder.encode())
            counts.append(len(builder))
            builder.reset()
            assert builder.try_add(key, data, ehk)  # an empty builder always takes a record
    blobs.append(builder.encode())
    counts.append(len(builder))
    assert sum(counts) == len(items)
    for blob, count in zip(blobs, counts, strict=True):
        assert len(blob) <= max_bytes or count == 1
    decoded = [u for blob in blobs for u in deaggregate(blob) or []]
    assert [(u.partition_key, u.data, u.explicit_hash_key) for u in decoded] == items


def test_varint_boundaries_in_sizes() -> None:
    # data lengths and index counts around the 1-, 2- and 3-byte varint boundaries
    for length in (0, 127, 128, 4095, 4096, 16383, 16384, 200_000):
        items: list[Entry] = [("k", b"x" * length, None), ("k2", b"", 5)]
        builder = build(items)
        assert len(builder.encode()) == builder.encoded_size
        assert builder.encode() == protobuf_reference(items)
    many: list[Entry] = [(f"key-{i}", b"d", i) for i in range(5000)]
    builder = build(many)
    assert builder.encode() == protobuf_reference(many)
    assert len(builder.encode()) == builder.encoded_size


def test_entry_keys_route_to_the_first_records_shard() -> None:
    """The entry's partition key is the first record's: Kinesis hashes it to the first
    record's shard, so an explicit hash key is sent only when the first record has one."""
    builder = AggregateBuilder()
    assert builder.entry_partition_key is None and builder.entry_explicit_hash_key is None
    builder.try_add("first", b"1")
    builder.try_add("second", b"2", 99)
    assert builder.entry_partition_key == "first"
    assert builder.entry_explicit_hash_key is None  # Kinesis routes it by MD5("first")
    builder.reset()
    builder.try_add("p", b"1", 12345)
    assert builder.entry_partition_key == "p" and builder.entry_explicit_hash_key == 12345


def test_reset_empties_the_builder() -> None:
    builder = build([("a", b"1", None), ("b", b"2", 3)])
    assert len(builder) == 2
    builder.reset()
    assert len(builder) == 0 and builder.encoded_size == EMPTY_AGGREGATE_SIZE
    assert builder.entry_partition_key is None
    builder.try_add("c", b"3")
    assert deaggregate(builder.encode()) == [UserRecord("c", b"3")]


def test_builder_defaults_and_bad_configuration() -> None:
    assert AggregateBuilder().max_bytes == KPL_DEFAULT_AGGREGATE_BYTES
    with pytest.raises(ConfigurationError):
        AggregateBuilder(EMPTY_AGGREGATE_SIZE)
    with pytest.raises(ValidationError):
        AggregateBuilder().encode()


def test_reprs_hide_payloads() -> None:
    secret = b"TOP-SECRET-PAYLOAD"
    builder = build([("k", secret, None)])
    assert "TOP-SECRET" not in repr(builder)
    record = UserRecord("k", secret)
    assert "TOP-SECRET" not in repr(record) and "18 bytes" in repr(record)


# --- interop with aws-kinesis-agg -------------------------------------------------------------

INTEROP_CASES: dict[str, list[Entry]] = {
    "empty data": [("k", b"", None), ("k", b"", None)],
    "unicode keys": [("ключ-🙂", b"one", None), ("鍵", b"two", None), ("ключ-🙂", b"three", None)],
    "explicit hash keys": [("a", b"1", 0), ("b", b"2", HASH_KEY_MAX), ("c", b"3", 0)],
    "duplicate keys": [(f"device-{i % 3}", bytes([i]), None) for i in range(30)],
    "many records": [(f"device-{i % 97}", b"x" * (i % 200), None) for i in range(5000)],
    "max length key": [("k" * 256, b"data", None)],
}


@pytest.mark.parametrize("items", INTEROP_CASES.values(), ids=INTEROP_CASES.keys())
def test_aws_kinesis_agg_reads_ours(items: list[Entry]) -> None:
    ours = build(items).encode()
    assert ours == peer_encode(items)  # byte for byte
    decoded = peer_decode(ours)
    assert [(r["partitionKey"], base64.b64decode(r["data"])) for r in decoded] == [
        (k, d) for k, d, _ in items
    ]
    assert [r["subSequenceNumber"] for r in decoded] == list(range(len(items)))
    if all(e is not None for _, _, e in items):
        assert [int(r["explicitHashKey"]) for r in decoded] == [e for _, _, e in items]


@pytest.mark.parametrize("items", INTEROP_CASES.values(), ids=INTEROP_CASES.keys())
def test_we_read_aws_kinesis_agg(items: list[Entry]) -> None:
    assert deaggregate(peer_encode(items)) == [UserRecord(k, d, e, i) for i, (k, d, e) in enumerate(items)]


def test_mixed_explicit_hash_keys_interop() -> None:
    items: list[Entry] = [("a", b"1", None), ("b", b"2", 42), ("c", b"3", None)]
    assert deaggregate(peer_encode(items)) == [UserRecord(k, d, e, i) for i, (k, d, e) in enumerate(items)]
    assert build(items).encode() == peer_encode(items)


def test_near_one_mib_aggregates_both_ways() -> None:
    limit = DEFAULT_MAX_RECORD_BYTES
    items: list[Entry] = [(f"device-{i % 50}", bytes([i % 256]) * 1000, None) for i in range(2000)]
    # ours: fill to the limit, then hand the first (full) aggregate to the peer
    builder = AggregateBuilder(limit)
    added = 0
    while builder.try_add(*items[added]):
        added += 1
    blob = builder.encode()
    assert limit - 1100 < len(blob) <= limit
    decoded = peer_decode(blob)
    assert len(decoded) == added
    assert base64.b64decode(decoded[-1]["data"]) == items[added - 1][1]
    # theirs: the peer's RecordAggregator filling up to 1 MiB
    full: list[bytes] = []
    aggregator = peer_aggregator.RecordAggregator(limit)
    aggregator.on_record_complete(lambda agg: full.append(agg.get_contents()[2]), execute_on_new_thread=False)
    for key, data, _ in items:
        aggregator.add_user_record(key, data)
    # the peer over-counts repeated keys, so its aggregates stop a little short of the limit
    assert full and limit - 16 * 1024 < len(full[0]) <= limit
    records = deaggregate(full[0])
    assert records is not None
    assert [(r.partition_key, r.data) for r in records] == [(k, d) for k, d, _ in items[: len(records)]]


# --- not an aggregate -------------------------------------------------------------------------


def valid_blob() -> bytes:
    return build([("k", b"payload", None)]).encode()


def with_md5(body: bytes) -> bytes:
    return MAGIC + body + hashlib.md5(body).digest()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"plain json {}", id="plain"),
        pytest.param(MAGIC, id="magic only"),
        pytest.param(with_md5(b""), id="empty body"),
        pytest.param(b"\x00" + valid_blob()[1:], id="wrong magic"),
        pytest.param(valid_blob()[:-1] + b"\x00", id="bad md5"),
        pytest.param(with_md5(b"\xff\xff\xff"), id="unparsable body"),
        pytest.param(with_md5(b"\x1a\x03\x1a\x01x"), id="missing required index"),
        pytest.param(with_md5(b"\x0a\x01k\x1a\x05\x08\x05\x1a\x01x"), id="key index out of range"),
        pytest.param(with_md5(b"\x0a\x01k\x12\x02zz\x1a\x07\x08\x00\x10\x00\x1a\x01x"), id="non-decimal ehk"),
        pytest.param(with_md5(b"\x0a\x02\xff\xfe\x1a\x05\x08\x00\x1a\x01x"), id="key not utf-8"),
    ],
)
def test_not_an_aggregate(data: bytes) -> None:
    assert deaggregate(data) is None


def test_is_aggregated_checks_the_magic() -> None:
    assert is_aggregated(valid_blob())
    assert not is_aggregated(b"plain")
    assert not is_aggregated(MAGIC + b"\x00" * 16)


def test_tags_written_by_other_producers_are_ignored() -> None:
    message = AggregatedRecord()
    message.partition_key_table.append("k")
    record = message.records.add(partition_key_index=0, data=b"x")
    record.tags.add(key="t", value="v")
    assert deaggregate(with_md5(message.SerializeToString())) == [UserRecord("k", b"x")]


# --- consumed records -------------------------------------------------------------------------


def test_deaggregate_consumed_assigns_sub_sequence_numbers() -> None:
    arrival = datetime(2024, 5, 1, tzinfo=UTC)
    position = KinesisPosition(
        "stream", "shardId-000000000001", "49590338271490256608559692538361571095921575989136588898"
    )
    outer = ConsumedRecord(
        build([("a", b"1", None), ("b", b"2", 5)]).encode(), "a", position, arrival_time=arrival
    )
    inner = deaggregate_consumed(outer)
    assert [(r.partition_key, r.data, r.explicit_hash_key) for r in inner] == [
        ("a", b"1", None),
        ("b", b"2", 5),
    ]
    assert [r.position for r in inner] == [
        KinesisPosition(position.stream, position.shard_id, position.sequence_number, 0),
        KinesisPosition(position.stream, position.shard_id, position.sequence_number, 1),
    ]
    first, second = inner[0].position, inner[1].position
    assert isinstance(first, KinesisPosition) and isinstance(second, KinesisPosition)
    assert first < second
    assert all(r.arrival_time == arrival for r in inner)
    assert inner[1].identity.endswith("/1")


def test_plain_and_kafka_records_pass_through() -> None:
    plain = ConsumedRecord(b"plain", "k", KinesisPosition("s", "shard", "1"))
    assert deaggregate_consumed(plain) == [plain]
    kafka = ConsumedRecord(valid_blob(), "k", KafkaPosition("topic", 0, 5))
    assert deaggregate_consumed(kafka)[0] is kafka


@settings(max_examples=100)
@given(repeated_entries, repeated_entries)
def test_reused_builder_stays_exact(first: list[Entry], second: list[Entry]) -> None:
    builder = AggregateBuilder(DEFAULT_MAX_RECORD_BYTES)
    for items in (first, second):  # the second round reuses cached key entries
        for key, data, ehk in items:
            predicted = builder.size_with(key, data, ehk)
            assert builder.try_add(key, data, ehk)
            assert builder.encoded_size == predicted
        assert builder.encode() == protobuf_reference(items)
        builder.reset()


# --- how repeated fields are read ---------------------------------------------------------


class _SlicedOnly:
    """A repeated field that fails a test when iterated or indexed one element at a time.

    upb's containers have no iterator: ``for`` and ``list()`` index them until an IndexError,
    raised and caught, ends the walk, which cost more than the rest of reading a small aggregate.
    """

    def __init__(self, items: Any) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return len(self._items) > 0

    def __iter__(self) -> Any:
        raise AssertionError("a repeated field was iterated instead of sliced")

    def __getitem__(self, index: Any) -> Any:
        if not isinstance(index, slice):
            raise AssertionError("a repeated field was indexed one element at a time")
        items = self._items[index]
        return [_RecordView(item) if hasattr(item, "partition_key_index") else item for item in items]


class _RecordView:
    def __init__(self, record: Any) -> None:
        self._record = record
        self.tags = _SlicedOnly(record.tags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._record, name)


class _MessageView:
    def __init__(self) -> None:
        self._message = AggregatedRecord()

    @classmethod
    def FromString(cls, body: bytes) -> _MessageView:
        view = cls()
        view._message.ParseFromString(body)
        return view

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._message, name)
        return _SlicedOnly(value) if name.endswith(("_table", "records")) else value


def test_repeated_fields_are_sliced_not_iterated(monkeypatch: pytest.MonkeyPatch) -> None:
    import shardline.aggregation as aggregation
    from shardline.aggregation import expand_aggregate

    monkeypatch.setattr(aggregation, "AggregatedRecord", _MessageView)
    plain = build([("a", b"1", None), ("b", b"2", None), ("a", b"3", None)]).encode()
    with_hash_keys = build([("a", b"1", None), ("b", b"2", 5)]).encode()
    message = AggregatedRecord()
    message.partition_key_table.append("k")
    message.records.add(partition_key_index=0, data=b"x").tags.add(key="event_id", value="e-1")
    tagged = with_md5(message.SerializeToString())

    assert aggregate_payloads(plain) == [b"1", b"2", b"3"]
    read = deaggregate(with_hash_keys)
    assert read is not None
    assert [(r.partition_key, r.data, r.explicit_hash_key) for r in read] == [
        ("a", b"1", None),
        ("b", b"2", 5),
    ]
    read = deaggregate(tagged)
    assert read is not None
    assert [(r.partition_key, r.data, r.event_id) for r in read] == [("k", b"x", "e-1")]
    for first_sub in (0, 1):
        expansion = expand_aggregate(
            plain, stream="s", shard_id="shardId-000000000000", sequence_number="1", first_sub=first_sub
        )
        assert expansion is not None
        assert [record.data for record in expansion.records] == [b"1", b"2", b"3"][first_sub:]


@pytest.mark.parametrize("payload_bytes", [100, 8_000, 8_200, 40_000])
def test_small_and_large_aggregates_read_alike(payload_bytes: int) -> None:
    """Bodies up to _COPY_MAX_BYTES are parsed from a copy, larger ones from a view: both
    give the same records and both refuse a body whose MD5 does not match."""
    from shardline.aggregation import _COPY_MAX_BYTES

    items: list[Entry] = [("a", b"x" * payload_bytes, None), ("b", b"y", None)]
    encoded = build(items).encode()
    assert (len(encoded) <= _COPY_MAX_BYTES) == (payload_bytes < _COPY_MAX_BYTES - 100)
    assert aggregate_payloads(encoded) == [b"x" * payload_bytes, b"y"]
    read = deaggregate(encoded)
    assert read is not None
    assert [(r.partition_key, r.data) for r in read] == [("a", b"x" * payload_bytes), ("b", b"y")]
    corrupt = encoded[:-1] + bytes([encoded[-1] ^ 1])
    assert aggregate_payloads(corrupt) is None
    assert deaggregate(corrupt) is None


def test_a_key_new_to_an_aggregate_is_added_without_a_plan_at_a_known_position(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key seen in an earlier aggregate (entry cached) that is new to this one takes the
    cached path even when no earlier record at its position had its data length: the header
    is made and kept, instead of planning the record (a key met once an aggregate, as with
    devices reporting in turn, was planned in every aggregate)."""
    keys = [f"device-{i}" for i in range(10)]
    builder = AggregateBuilder(KPL_DEFAULT_AGGREGATE_BYTES)
    for key in keys:
        assert builder.try_add(key, b"x" * 100)
    builder.encode()
    builder.reset()
    planned: list[str] = []
    plan = AggregateBuilder._plan

    def counted(self: AggregateBuilder, *args: Any) -> Any:
        planned.append(args[0])
        return plan(self, *args)

    monkeypatch.setattr(AggregateBuilder, "_plan", counted)
    for key in reversed(keys):
        assert builder.try_add(key, b"y" * 100)
    assert planned == [keys[-1]]  # the aggregate's first record only
    monkeypatch.undo()
    fresh = AggregateBuilder(KPL_DEFAULT_AGGREGATE_BYTES)
    for key in reversed(keys):
        assert fresh.try_add(key, b"y" * 100)
    assert builder.encode() == fresh.encode()
    assert len(builder) == len(fresh)
