"""The accumulator: request limits, linger, shard separation, aggregate cap, re-planning."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from producers.accumulator import Accumulator, Entry, member_hash_key
from producers.tickets import BatchTicket, RecordFields
from shardline.aggregation import AggregateBuilder, deaggregate
from shardline.errors import ShardlineError
from shardline.limits import HASH_KEY_MAX, KiB, MiB
from shardline.records import Record
from shardline.shardmath import ShardInfo, ShardMap


class Owner:
    """A record owner for these tests: one record, its input position as ``index``."""

    def __init__(self, key: str, data: bytes, index: int, event_id: str | None = None) -> None:
        self.key, self.data, self.index, self.event_id = key, data, index, event_id
        self.acks: list[tuple[int | None, str, str]] = []

    def fields(self, slot: int) -> RecordFields:
        return self.key, None, self.data, self.event_id

    def ack_run(
        self,
        slots: Sequence[int],
        first_sub: int | None,
        shard_id: str,
        sequence_number: str,
        acked_at: float,
    ) -> None:
        self.acks.append((first_sub, shard_id, sequence_number))

    def fail(self, slot: int, error: ShardlineError) -> None:
        raise AssertionError("not expected here")

    def release(self, slots: Sequence[int]) -> None:
        """Kept: these tests read the records back from their owners."""

    def restore(self, slot: int, data: bytes) -> None:
        self.data = data


def add(
    acc: Accumulator, shard: str, key: str, index: int, now: float = 0.0, deadline: float = 100.0
) -> None:
    acc.add(shard, Owner(key, b"x", index), 0, now, deadline)


def first_index(entry: Entry) -> int:
    owner = entry.runs[0][0]
    assert isinstance(owner, Owner)
    return owner.index


def four_shards() -> ShardMap:
    width = (HASH_KEY_MAX + 1) // 4
    return ShardMap.from_shards(
        ShardInfo(f"shard-{i}", i * width, (i + 1) * width - 1 if i < 3 else HASH_KEY_MAX) for i in range(4)
    )


def make(
    aggregate: bool = True, agg_bytes: int = 50 * KiB, entries: int = 500, nbytes: int = 5 * MiB
) -> Accumulator:
    return Accumulator(
        aggregate=aggregate,
        builder_factory=lambda: AggregateBuilder(agg_bytes),
        max_entries=entries,
        max_bytes=nbytes,
    )


def admit_all(entry: Entry) -> float:
    return 0.0


def fill(acc: Accumulator, shard_map: ShardMap, count: int, size: int = 100, now: float = 0.0) -> list[Owner]:
    items = []
    for i in range(count):
        key = f"key-{i % 97}"
        owner = Owner(key, bytes([i % 256]) * size, i)
        assert acc.add(shard_map.shard_for_key(key).shard_id, owner, 0, now, now + 30) == size + len(key)
        items.append(owner)
    return items


def take_all(acc: Accumulator, now: float = 0.0) -> list[list[Entry]]:
    acc.close_open()
    requests = []
    while acc.ready_entries:
        batch, expired, _ = acc.take(now, admit=admit_all, ordered=False)
        assert not expired
        requests.append(batch)
    return requests


def test_plain_requests_respect_500_entries() -> None:
    acc = make(aggregate=False)
    fill(acc, four_shards(), 1201)
    requests = take_all(acc)
    assert [len(r) for r in requests] == [500, 500, 201]
    assert all(not e.aggregated for r in requests for e in r)


def test_requests_respect_5_mib() -> None:
    acc = make(aggregate=False)
    fill(acc, four_shards(), 30, size=400 * KiB)
    requests = take_all(acc)
    assert all(sum(e.size for e in r) <= 5 * MiB for r in requests)
    assert sum(len(r) for r in requests) == 30
    assert len(requests) >= 3


def test_aggregates_never_mix_shards_and_respect_the_size_cap() -> None:
    shard_map = four_shards()
    acc = make(agg_bytes=10 * KiB)
    items = fill(acc, shard_map, 2000)
    requests = take_all(acc)
    seen: list[object] = []
    for request in requests:
        for entry in request:
            assert len(entry.data) <= 10 * KiB
            users = deaggregate(entry.data) if entry.aggregated else None
            records = (
                [(u.partition_key, u.data) for u in users] if users else [(entry.partition_key, entry.data)]
            )
            for key, _ in records:
                assert shard_map.shard_for_key(key).shard_id == entry.shard_id
            members = [owner.fields(slot) for owner, slot in entry.members()]
            assert records == [(key, data) for key, _, data, _ in members]
            assert entry.count == len(members)
            # The entry's explicit hash key pins the aggregate inside its shard.
            ehk = entry.explicit_hash_key
            assert ehk is None or shard_map.shard_for_hash(ehk).shard_id == entry.shard_id
            seen.extend(owner for owner, _ in entry.members())
    assert sorted(o.index for o in seen if isinstance(o, Owner)) == [o.index for o in items]


def test_full_request_is_signalled_and_linger_base_is_the_oldest_open_aggregate() -> None:
    acc = make(aggregate=False, entries=10)
    shard_map = four_shards()
    assert acc.oldest_open is None
    fill(acc, shard_map, 3, now=5.0)
    fill(acc, shard_map, 3, now=7.0)
    assert acc.oldest_open == 5.0
    assert not acc.has_full_request
    fill(acc, shard_map, 4, now=8.0)
    assert acc.has_full_request


def test_close_open_closes_every_open_aggregate_whatever_its_age() -> None:
    acc = make()
    add(acc, "a", "k", 0, now=1.0)
    add(acc, "b", "k", 1, now=2.0)
    acc.close_open()
    assert sorted(acc.ready_shards()) == ["a", "b"]
    assert acc.oldest_open is None


def test_expired_entries_are_returned_not_sent() -> None:
    acc = make(aggregate=False)
    add(acc, "a", "k", 0, deadline=1.0)
    acc.close_open()
    batch, expired, _ = acc.take(2.0, admit=admit_all, ordered=False)
    assert batch == [] and len(expired) == 1


def test_paced_shard_waits_while_others_go() -> None:
    acc = make(aggregate=False)
    add(acc, "hot", "h", 0)
    add(acc, "cold", "c", 1)
    acc.close_open()
    batch, _, wake = acc.take(0.0, admit=lambda e: 0.5 if e.shard_id == "hot" else 0.0, ordered=False)
    assert [e.shard_id for e in batch] == ["cold"]
    assert wake == 0.5
    assert acc.ready_shards() == ["hot"]


def test_a_paced_backlog_does_not_make_a_full_request_until_its_queue_empties() -> None:
    # a backlog that leaves at its shard's pace cannot fill a request: counting it would close
    # every other shard's aggregate early, over and over
    acc = make(aggregate=False, entries=3)
    for i in range(5):
        add(acc, "hot", f"h{i}", i)
    acc.close_open()
    assert acc.has_full_request
    batch, _, wake = acc.take(0.0, admit=lambda e: 0.5 if e.shard_id == "hot" else 0.0, ordered=False)
    assert batch == [] and wake == 0.5
    assert not acc.has_full_request
    assert acc.oldest_sendable() is None  # held back until 0.5: nothing of it is due
    add(acc, "hot", "h5", 5)  # more backlog for the paced shard still does not count
    acc.close_open()
    assert not acc.has_full_request
    for i in range(3):
        add(acc, "cold", f"c{i}", 10 + i)
    assert acc.has_full_request  # the other shards' records do
    assert acc.release_waits(0.5) is None
    assert acc.oldest_sendable() == 0.0  # its wait is over: it may go, and is overdue
    taken, _, _ = acc.take(0.5, admit=admit_all, ordered=False)
    assert len(taken) == 3
    while acc.ready_entries:
        acc.take(0.5, admit=admit_all, ordered=False)
    add(acc, "hot", "again", 20)  # its queue emptied: the shard is no longer paced
    add(acc, "hot", "again2", 21)
    add(acc, "hot", "again3", 22)
    acc.close_open()
    assert acc.has_full_request


def test_a_waiting_shard_is_skipped_and_its_wait_is_the_wake_time() -> None:
    acc = make(aggregate=False)
    add(acc, "s", "k", 0)
    acc.close_open()
    acc.wait("s", 2.0)
    batch, _, wake = acc.take(1.0, admit=admit_all, ordered=False)
    assert batch == [] and wake == 2.0
    batch, _, wake = acc.take(2.0, admit=admit_all, ordered=False)
    assert [first_index(e) for e in batch] == [0] and wake is None


def test_ordered_takes_each_key_once_per_request_and_skips_busy_shards() -> None:
    acc = make(aggregate=False)
    for i, key in enumerate(["a", "b", "a", "c"]):
        add(acc, "s1", key, i)
    add(acc, "s2", "z", 9)
    acc.close_open()
    batch, _, _ = acc.take(0.0, admit=admit_all, ordered=True, busy={"s2"})
    assert [first_index(e) for e in batch] == [0, 1]
    batch, _, _ = acc.take(0.0, admit=admit_all, ordered=True, busy={"s2"})
    assert [first_index(e) for e in batch] == [2, 3]


def test_requeue_puts_failed_entries_first_and_backoff_blocks_the_shard() -> None:
    acc = make(aggregate=False)
    for i in range(3):
        add(acc, "s", f"k{i}", i)
    acc.close_open()
    batch, _, _ = acc.take(0.0, admit=admit_all, ordered=False)
    add(acc, "s", "k9", 9)
    acc.close_open()
    batch[1].not_before = 5.0
    acc.requeue([batch[1]])
    blocked, _, wake = acc.take(1.0, admit=admit_all, ordered=False)
    assert blocked == [] and wake == 5.0
    later, _, _ = acc.take(5.0, admit=admit_all, ordered=False)
    assert [first_index(e) for e in later] == [1, 9]


def test_replan_splits_aggregates_that_now_span_two_shards() -> None:
    one = ShardMap.from_shards([ShardInfo("parent", 0, HASH_KEY_MAX)])
    acc = make()
    items = fill(acc, one, 300)
    acc.close_open()
    fill(acc, one, 10)  # still open
    half = (HASH_KEY_MAX + 1) // 2
    two = ShardMap.from_shards(
        [
            ShardInfo("parent", 0, HASH_KEY_MAX, ending_sequence_number="9"),
            ShardInfo("left", 0, half - 1, parent_shard_id="parent"),
            ShardInfo("right", half, HASH_KEY_MAX, parent_shard_id="parent"),
        ]
    )
    split = acc.replan(two, 1.0)
    assert split >= 1
    requests = take_all(acc)
    entries = [e for r in requests for e in r]
    assert {e.shard_id for e in entries} == {"left", "right"}
    for entry in entries:
        for member in entry.members():
            assert two.shard_for_hash(member_hash_key(member)).shard_id == entry.shard_id
    assert sum(e.count for e in entries) == len(items) + 10


class Batch(Owner):
    """A send_many-style owner: many records, acknowledged as runs."""

    def __init__(self, records: list[Record]) -> None:
        super().__init__("unused", b"", -1)
        self.records = records
        self.runs: list[tuple[list[int], int | None, str]] = []

    def fields(self, slot: int) -> RecordFields:
        record = self.records[slot]
        assert record.partition_key is not None
        return record.partition_key, record.explicit_hash_key, record.data, record.event_id

    def ack_run(
        self,
        slots: Sequence[int],
        first_sub: int | None,
        shard_id: str,
        sequence_number: str,
        acked_at: float,
    ) -> None:
        self.runs.append((list(slots), first_sub, shard_id))


def test_add_records_builds_the_same_aggregates_as_per_record_adds() -> None:
    records = [Record(bytes([i % 256]) * (i % 300), f"key-{i % 13}") for i in range(3_000)]
    order = list(range(0, 3_000, 2))
    batch_acc, single_acc = make(agg_bytes=8 * KiB), make(agg_bytes=8 * KiB)
    owner = Batch(records)
    keys = [r.partition_key or "" for r in records]
    datas = [r.data for r in records]
    total = batch_acc.add_records(owner, keys, datas, {"s": order}, 0.0, 30.0)
    assert total == sum(single_acc.add("s", owner, slot, 0.0, 30.0) for slot in order)
    assert batch_acc.open_bytes == single_acc.open_bytes
    batched, singles = take_all(batch_acc), take_all(single_acc)
    assert [e.data for r in batched for e in r] == [e.data for r in singles for e in r]
    entries = [e for r in batched for e in r]
    assert all(len(e.runs) == 1 for e in entries)  # one run per aggregate, not a record each
    assert [slot for e in entries for _, slot in e.members()] == order
    assert sum(e.user_bytes for e in entries) == total


def test_add_records_of_a_batch_spanning_shards_matches_per_record_adds() -> None:
    """One call buffers a whole batch, shard by shard: the same aggregates per shard and the
    same open-buffer counts as adding record by record, also when aggregates fill mid-batch."""
    records = [Record(bytes([i % 256]) * (i % 300), f"key-{i % 13}") for i in range(3_000)]
    groups = {"s": list(range(0, 3_000, 3)), "t": list(range(1, 3_000, 3)), "u": [2, 5]}
    batch_acc, single_acc = make(agg_bytes=8 * KiB), make(agg_bytes=8 * KiB)
    owner = Batch(records)
    keys = [r.partition_key or "" for r in records]
    total = batch_acc.add_records(owner, keys, [r.data for r in records], groups, 0.0, 30.0)
    one_by_one = [single_acc.add(s, owner, slot, 0.0, 30.0) for s, order in groups.items() for slot in order]
    assert total == sum(one_by_one)
    assert (batch_acc.open_records, batch_acc.open_bytes) == (single_acc.open_records, single_acc.open_bytes)
    batched, singles = take_all(batch_acc), take_all(single_acc)
    assert sorted((e.shard_id, e.data) for r in batched for e in r) == sorted(
        (e.shard_id, e.data) for r in singles for e in r
    )
    assert batch_acc.open_records == batch_acc.open_bytes == 0


def test_add_records_without_aggregation_gives_one_entry_per_record() -> None:
    records = [Record(b"data", f"k{i}") for i in range(5)]
    acc = make(aggregate=False)
    keys = [r.partition_key or "" for r in records]
    acc.add_records(Batch(records), keys, [r.data for r in records], {"s": [0, 2], "t": [4]}, 0.0, 30.0)
    entries = take_all(acc)[0]
    assert sorted((e.aggregated, e.data, [slot for _, slot in e.members()]) for e in entries) == [
        (False, b"data", [0]),
        (False, b"data", [2]),
        (False, b"data", [4]),
    ]


def test_a_lone_record_with_an_event_id_travels_as_an_aggregate() -> None:
    for aggregate in (True, False):
        acc = make(aggregate=aggregate)
        acc.add("s", Owner("k", b"payload", 0, event_id="evt-1"), 0, 0.0, 30.0)
        acc.add("t", Owner("k", b"plain", 1), 0, 0.0, 30.0)
        entries = {e.shard_id: e for r in take_all(acc) for e in r}
        assert entries["s"].aggregated
        users = deaggregate(entries["s"].data)
        assert users is not None and [(u.data, u.event_id) for u in users] == [(b"payload", "evt-1")]
        assert not entries["t"].aggregated and entries["t"].data == b"plain"


def test_records_too_big_to_share_an_aggregate_keep_their_event_id() -> None:
    acc = make(agg_bytes=2 * KiB)
    acc.add("s", Owner("k", b"small", 0), 0, 0.0, 30.0)
    acc.add("s", Owner("k", b"x" * 5_000, 1, event_id="big"), 0, 0.0, 30.0)
    acc.add("s", Owner("k", b"y" * 5_000, 2), 0, 0.0, 30.0)
    entries = [e for r in take_all(acc) for e in r]
    assert [(e.aggregated, e.count) for e in entries] == [(False, 1), (True, 1), (False, 1)]
    users = deaggregate(entries[1].data)
    assert users is not None and users[0].event_id == "big"


def test_an_encoded_aggregate_releases_its_batch_records_and_gives_them_back() -> None:
    """A send_many() batch's data lives once: in its aggregates, not also in the batch's column
    until the last of its records is acknowledged (the batch may span many shards)."""
    loop = asyncio.new_event_loop()
    try:
        values = [bytes([i % 256]) * (50 + i % 30) for i in range(40)]
        keys = [f"key-{i % 7}" for i in range(40)]
        ticket = BatchTicket(loop.create_future(), keys, list(values))
        acc = make()
        acc.add_records(ticket, keys, values, {"shard-0": list(range(0, 40, 2))}, 0.0, 30.0)
        assert all(data is not None for data in ticket.datas)  # open aggregates hold no copy yet
        (batch,) = take_all(acc)
        assert ticket.datas[::2] == [None] * 20 and ticket.datas[1::2] == values[1::2]
        (entry,) = batch
        assert entry.member_datas() == values[::2]  # what re-routing reads instead
    finally:
        loop.close()
