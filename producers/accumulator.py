"""Batching without I/O: records in, PutRecords-sized lists of Kinesis entries out.

The accumulator keeps, per destination shard, one open KPL aggregate and a queue of closed
entries ready to send.  Records bound for different shards never share an aggregate.  The
sender loop (the only I/O) asks :meth:`Accumulator.take` for the next request: at most
``max_entries`` entries and ``max_bytes`` bytes, skipping shards that are paced, busy
(ordered mode) or backing off.  Everything here is per batch or per entry, not per record,
apart from appending the record itself; time is passed in so tests need no clock.

When the shard map changes, :meth:`Accumulator.replan` re-routes everything not yet sent:
an entry whose records now map to more than one shard is split back into its records and
re-aggregated, so no aggregate carries a key outside its shard's hash range.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from shardline.shardmath import ShardMap, partition_key_hash

__all__ = ["Accumulator", "AggregateBuilderLike", "Entry", "Item", "item_hash_key"]

Item = tuple[str, "int | None", bytes, Any, int]
"""One user record: (partition key, explicit hash key, data, owner, index in owner).

The owner is an asyncio future (index -1) or a :class:`producers.tickets.BatchTicket`.
"""


def item_hash_key(item: Item) -> int:
    """The 128-bit hash key that routes a record: its explicit hash key or the MD5 of its key."""
    ehk = item[1]
    return ehk if ehk is not None else partition_key_hash(item[0])


class AggregateBuilderLike(Protocol):
    """What the accumulator needs from :class:`shardline.aggregation.AggregateBuilder`."""

    def try_add(self, partition_key: str, data: bytes, explicit_hash_key: int | None = None) -> bool: ...
    def __len__(self) -> int: ...
    @property
    def entry_partition_key(self) -> str | None: ...
    @property
    def entry_explicit_hash_key(self) -> int | None: ...
    def encode(self) -> bytes: ...
    def reset(self) -> None: ...


class Entry:
    """One PutRecords entry: a single record or a KPL aggregate, plus its retry state."""

    __slots__ = (
        "aggregated",
        "attempts",
        "created",
        "data",
        "deadline",
        "explicit_hash_key",
        "items",
        "last_error",
        "not_before",
        "partition_key",
        "shard_id",
        "size",
        "user_bytes",
    )

    def __init__(
        self,
        shard_id: str,
        partition_key: str,
        explicit_hash_key: int | None,
        data: bytes,
        items: list[Item],
        aggregated: bool,
        user_bytes: int,
        created: float,
        deadline: float,
    ) -> None:
        self.shard_id = shard_id
        self.partition_key = partition_key
        self.explicit_hash_key = explicit_hash_key
        self.data = data
        self.items = items
        self.aggregated = aggregated
        # What the 5 MiB request limit counts: data plus the partition key's bytes.
        self.size = len(data) + len(partition_key.encode("utf-8"))
        self.user_bytes = user_bytes
        self.created = created
        self.deadline = deadline
        self.attempts = 0
        self.not_before = 0.0
        self.last_error: BaseException | None = None

    def request_entry(self) -> dict[str, Any]:
        """The entry as PutRecords wants it."""
        if self.explicit_hash_key is None:
            return {"Data": self.data, "PartitionKey": self.partition_key}
        return {
            "Data": self.data,
            "PartitionKey": self.partition_key,
            "ExplicitHashKey": str(self.explicit_hash_key),
        }

    def __repr__(self) -> str:
        return f"Entry(<{len(self.items)} records, {self.size} bytes>, shard={self.shard_id!r})"


class _Open:
    """An aggregate (or, without aggregation, a plain batch) still accepting records for one shard."""

    __slots__ = ("builder", "created", "deadline", "items", "user_bytes")

    def __init__(self, builder: AggregateBuilderLike | None, created: float) -> None:
        self.builder = builder
        self.items: list[Item] = []
        self.user_bytes = 0
        self.created = created
        self.deadline = float("inf")


class Accumulator:
    """Per-shard aggregates and ready queues; hands out requests within the PutRecords limits."""

    def __init__(
        self,
        *,
        aggregate: bool,
        builder_factory: Callable[[], AggregateBuilderLike],
        max_entries: int,
        max_bytes: int,
    ) -> None:
        self._aggregate = aggregate
        self._builder_factory = builder_factory
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._open: dict[str, _Open] = {}
        self._ready: dict[str, deque[Entry]] = {}
        self.ready_entries = 0
        self.ready_bytes = 0
        self.open_records = 0
        self.open_bytes = 0
        self._rotation = 0

    # --- adding -----------------------------------------------------------------------------

    def add(self, shard_id: str, item: Item, size: int, now: float, deadline: float) -> None:
        """Buffer one record of ``size`` bytes (data + key) bound for ``shard_id``."""
        agg = self._open.get(shard_id)
        if agg is None:
            agg = self._open[shard_id] = _Open(self._builder_factory() if self._aggregate else None, now)
        builder = agg.builder
        if builder is None:
            if len(agg.items) >= self._max_entries:
                self._close(shard_id, agg)
                agg = self._open[shard_id] = _Open(None, now)
        elif not builder.try_add(item[0], item[2], item[1]):
            if agg.items:
                self._close(shard_id, agg)
                agg = self._open[shard_id] = _Open(self._builder_factory(), now)
                builder = agg.builder
                assert builder is not None
            if not builder.try_add(item[0], item[2], item[1]):
                # Too big to aggregate at all: it travels as a plain entry.
                del self._open[shard_id]
                self._push(Entry(shard_id, item[0], item[1], item[2], [item], False, size, now, deadline))
                return
        agg.items.append(item)
        agg.user_bytes += size
        if deadline < agg.deadline:
            agg.deadline = deadline
        self.open_records += 1
        self.open_bytes += size

    def _push(self, entry: Entry) -> None:
        queue = self._ready.get(entry.shard_id)
        if queue is None:
            queue = self._ready[entry.shard_id] = deque()
        queue.append(entry)
        self.ready_entries += 1
        self.ready_bytes += entry.size

    def _close(self, shard_id: str, agg: _Open) -> None:
        items = agg.items
        self.open_records -= len(items)
        self.open_bytes -= agg.user_bytes
        builder = agg.builder
        if builder is None or len(items) == 1:
            # Plain records; a lone record gains nothing from the KPL envelope either.
            for item in items:
                pk, ehk, data, _, _ = item
                size = len(data) + len(pk.encode("utf-8"))
                self._push(Entry(shard_id, pk, ehk, data, [item], False, size, agg.created, agg.deadline))
            return
        entry_key = builder.entry_partition_key
        assert entry_key is not None
        self._push(
            Entry(
                shard_id,
                entry_key,
                builder.entry_explicit_hash_key,
                builder.encode(),
                items,
                True,
                agg.user_bytes,
                agg.created,
                agg.deadline,
            )
        )

    def close_open(self, created_before: float | None = None) -> None:
        """Close open aggregates (all, or those created at or before ``created_before``)."""
        if created_before is None:
            for shard_id, agg in self._open.items():
                if agg.items:
                    self._close(shard_id, agg)
            self._open.clear()
            return
        for shard_id in [s for s, agg in self._open.items() if agg.created <= created_before]:
            agg = self._open.pop(shard_id)
            if agg.items:
                self._close(shard_id, agg)

    # --- state ------------------------------------------------------------------------------

    @property
    def oldest_open(self) -> float | None:
        """When the oldest open aggregate (or plain batch) started: the linger timer's base."""
        if not self._open:
            return None
        return min(agg.created for agg in self._open.values())

    @property
    def has_full_request(self) -> bool:
        """Enough is buffered for a request at the entry or byte cap (send without lingering)."""
        pending = self.ready_entries + (len(self._open) if self._aggregate else self.open_records)
        return pending >= self._max_entries or self.ready_bytes + self.open_bytes >= self._max_bytes

    @property
    def empty(self) -> bool:
        return self.ready_entries == 0 and self.open_records == 0

    def ready_shards(self) -> list[str]:
        return [shard for shard, queue in self._ready.items() if queue]

    # --- taking -----------------------------------------------------------------------------

    def take(
        self,
        now: float,
        *,
        admit: Callable[[Entry], float],
        ordered: bool,
        busy: Iterable[str] = (),
    ) -> tuple[list[Entry], list[Entry], float | None]:
        """The next request: (entries to send, entries past their deadline, earliest retry time).

        ``admit(entry)`` returns 0 to let an entry in (taking its rate tokens) or the seconds
        until its shard may send.  Shards in ``busy`` are skipped (ordered mode keeps one
        request per shard in flight).  In ordered mode a request carries at most one entry per
        partition key and one aggregate per shard, so a partial failure can never let a later
        record of a key overtake an earlier one.
        """
        batch: list[Entry] = []
        expired: list[Entry] = []
        wake: float | None = None
        nbytes = 0
        max_entries = self._max_entries
        max_bytes = self._max_bytes
        busy_set = set(busy)
        shards = [s for s, q in self._ready.items() if q and s not in busy_set]
        if not shards:
            return batch, expired, wake
        # Rotate the starting shard so one busy shard cannot starve the others of request space.
        self._rotation = (self._rotation + 1) % len(shards)
        shards = shards[self._rotation :] + shards[: self._rotation]
        for shard_id in shards:
            queue = self._ready[shard_id]
            keys: set[str] = set()
            while queue and len(batch) < max_entries:
                entry = queue[0]
                if entry.deadline <= now:
                    queue.popleft()
                    self.ready_entries -= 1
                    self.ready_bytes -= entry.size
                    expired.append(entry)
                    continue
                if entry.not_before > now:
                    wake = entry.not_before if wake is None else min(wake, entry.not_before)
                    break
                if nbytes + entry.size > max_bytes:
                    break
                if ordered:
                    if entry.aggregated:
                        if keys:
                            break
                        keys.add("\x00aggregate")
                    elif entry.partition_key in keys or "\x00aggregate" in keys:
                        break
                    else:
                        keys.add(entry.partition_key)
                delay = admit(entry)
                if delay > 0:
                    wake = now + delay if wake is None else min(wake, now + delay)
                    break
                queue.popleft()
                self.ready_entries -= 1
                self.ready_bytes -= entry.size
                nbytes += entry.size
                batch.append(entry)
            if len(batch) >= max_entries or nbytes >= max_bytes:
                break
        return batch, expired, wake

    def requeue(self, entries: list[Entry]) -> None:
        """Put entries that must be retried back at the head of their shards' queues, in order."""
        for entry in reversed(entries):
            queue = self._ready.get(entry.shard_id)
            if queue is None:
                queue = self._ready[entry.shard_id] = deque()
            queue.appendleft(entry)
            self.ready_entries += 1
            self.ready_bytes += entry.size

    def drain_all(self) -> list[Entry]:
        """Remove and return every buffered entry (closing open aggregates first)."""
        self.close_open()
        entries = [entry for queue in self._ready.values() for entry in queue]
        self._ready.clear()
        self.ready_entries = 0
        self.ready_bytes = 0
        return entries

    # --- re-planning after a split or merge -------------------------------------------------

    def replan(self, shard_map: ShardMap, now: float) -> int:
        """Re-route everything not yet sent to ``shard_map``'s open shards; returns entries split.

        Queued entries are visited oldest first and re-queued in that order.  An entry whose
        records still share one shard moves whole; otherwise its records are regrouped per
        new shard into fresh entries right away, so per-key order is kept.  Open aggregates
        (the newest records) are re-added record by record.
        """
        queued = [entry for queue in self._ready.values() for entry in queue]
        opened = [(agg.items, agg.deadline) for agg in self._open.values() if agg.items]
        self._ready.clear()
        self._open.clear()
        self.ready_entries = 0
        self.ready_bytes = 0
        self.open_records = 0
        self.open_bytes = 0
        split = 0
        for entry in queued:
            groups = regroup(entry.items, shard_map)
            if len(groups) == 1:
                entry.shard_id = next(iter(groups))
                self._push(entry)
                continue
            split += 1
            for shard_id, items in groups.items():
                for piece in self.build_entries(shard_id, items, entry.created, entry.deadline):
                    piece.attempts = entry.attempts
                    piece.not_before = entry.not_before
                    self._push(piece)
        for items, deadline in opened:
            for item in items:
                shard_id = shard_map.shard_for_key(item[0], item[1]).shard_id
                self.add(shard_id, item, len(item[2]) + len(item[0].encode("utf-8")), now, deadline)
        return split

    def build_entries(self, shard_id: str, items: list[Item], created: float, deadline: float) -> list[Entry]:
        """Entries for ``items`` (all bound for ``shard_id``), aggregated when enabled, in order."""
        scratch = Accumulator(
            aggregate=self._aggregate,
            builder_factory=self._builder_factory,
            max_entries=self._max_entries,
            max_bytes=self._max_bytes,
        )
        for item in items:
            scratch.add(shard_id, item, len(item[2]) + len(item[0].encode("utf-8")), created, deadline)
        return scratch.drain_all()


def regroup(items: list[Item], shard_map: ShardMap) -> dict[str, list[Item]]:
    """Records grouped by the open shard each now routes to, in their original order."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        shard_id = shard_map.shard_for_key(item[0], item[1]).shard_id
        group = groups.get(shard_id)
        if group is None:
            groups[shard_id] = [item]
        else:
            group.append(item)
    return groups
