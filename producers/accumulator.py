"""Batching without I/O: records in, PutRecords-sized lists of Kinesis entries out.

The accumulator keeps, per destination shard, one open KPL aggregate and a queue of closed
entries ready to send.  Records bound for different shards never share an aggregate.  The
sender loop (the only I/O) asks :meth:`Accumulator.take` for the next request: at most
``max_entries`` entries and ``max_bytes`` bytes, skipping shards that are paced, busy
(ordered mode) or backing off.  Everything here is per batch or per entry, not per record,
apart from appending the record itself; time is passed in so tests need no clock.

A buffered record is an ``(owner, slot)`` pair (:mod:`producers.tickets`); entries keep
their records as *runs* ``(owner, slots)`` in sub-sequence order, so a ``send_many()`` batch
adds one run per aggregate and the records themselves stay in the batch's columns.
:meth:`Accumulator.add_records` is the batch path, on columns (keys and data): per record,
one cached-header append into the shard's aggregate
(:meth:`shardline.aggregation.AggregateBuilder.add_records`).
Builders are recycled, so their key-table and header caches live as long as the producer.

When the shard map changes, :meth:`Accumulator.replan` re-routes everything not yet sent:
an entry whose records now map to more than one shard is split back into its records and
re-aggregated, so no aggregate carries a key outside its shard's hash range.

A record with an event id travels in its aggregate's KPL tags; one that ends up alone (no
aggregation, or too big to share) is sent as a one-record aggregate so the id still arrives.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from producers.tickets import RecordOwner
from shardline.aggregation import deaggregate
from shardline.shardmath import ShardMap, partition_key_hash

__all__ = ["Accumulator", "AggregateBuilderLike", "Entry", "Member", "Run", "member_hash_key"]

Run = tuple[RecordOwner, Sequence[int]]
"""Records of one owner, by slot, in the order they sit in an entry."""

Member = tuple[RecordOwner, int]
"""One buffered record: its owner and its slot there."""

_FIRST_SLOT: Sequence[int] = (0,)
"""The slots of a record sent on its own (shared: nothing allocated per record)."""


def member_hash_key(member: Member) -> int:
    """The 128-bit hash key that routes a record: its explicit hash key or the MD5 of its key."""
    key, ehk, _, _ = member[0].fields(member[1])
    return ehk if ehk is not None else partition_key_hash(key)


def user_size(key: str, data: bytes) -> int:
    """What the producer's buffer caps count for one record: data bytes + key characters."""
    return len(data) + len(key)


class AggregateBuilderLike(Protocol):
    """What the accumulator needs from :class:`shardline.aggregation.AggregateBuilder`."""

    def try_add(
        self,
        partition_key: str,
        data: bytes,
        explicit_hash_key: int | None = None,
        event_id: str | None = None,
    ) -> bool: ...
    def add_records(
        self,
        keys: Sequence[str],
        datas: Sequence[bytes],
        order: Sequence[int],
        start: int = 0,
        extras: Mapping[int, tuple[int | None, str | None]] | None = None,
    ) -> tuple[int, int]: ...
    def __len__(self) -> int: ...
    @property
    def tagged(self) -> bool: ...
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
        "count",
        "created",
        "data",
        "deadline",
        "explicit_hash_key",
        "last_error",
        "not_before",
        "owners",
        "partition_key",
        "shard_id",
        "size",
        "slots",
        "user_bytes",
    )

    def __init__(
        self,
        shard_id: str,
        partition_key: str,
        explicit_hash_key: int | None,
        data: bytes,
        owners: list[RecordOwner],
        slots: list[Sequence[int]],
        count: int,
        aggregated: bool,
        user_bytes: int,
        created: float,
        deadline: float,
    ) -> None:
        self.shard_id = shard_id
        self.partition_key = partition_key
        self.explicit_hash_key = explicit_hash_key
        self.data = data
        # Runs in sub-sequence order: owners[i] owns slots[i] (parallel lists, so a record
        # sent alone costs two appends and no tuple).
        self.owners = owners
        self.slots = slots
        self.count = count
        self.aggregated = aggregated
        # What the 5 MiB request limit counts: data plus the partition key's bytes.
        self.size = len(data) + len(partition_key.encode("utf-8"))
        self.user_bytes = user_bytes
        self.created = created
        self.deadline = deadline
        self.attempts = 0
        self.not_before = 0.0
        self.last_error: BaseException | None = None

    @property
    def runs(self) -> list[Run]:
        """(owner, slots) runs in sub-sequence order."""
        return list(zip(self.owners, self.slots, strict=True))

    def members(self) -> Iterator[Member]:
        """The entry's records in sub-sequence order."""
        return _members(self.owners, self.slots)

    def member_datas(self) -> list[bytes]:
        """The data of the entry's records in sub-sequence order, read from the entry itself.

        What re-routing an already encoded entry uses (a reshard, an aggregate written to an
        unexpected shard): the records' owners may have let go of their own copies.
        """
        if not self.aggregated:
            return [self.data]
        users = deaggregate(self.data)
        if users is None or len(users) != self.count:
            raise RuntimeError(f"{self!r} does not decode to its {self.count} records")
        return [user.data for user in users]

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
        return f"Entry(<{self.count} records, {self.size} bytes>, shard={self.shard_id!r})"


_NEVER = float("inf")


class _Open:
    """An aggregate (or, without aggregation, a plain batch) still accepting records for one shard."""

    __slots__ = ("builder", "count", "created", "deadline", "owners", "slots", "user_bytes")

    def __init__(self, builder: AggregateBuilderLike | None, created: float) -> None:
        self.builder = builder
        self.owners: list[RecordOwner] = []
        self.slots: list[Sequence[int]] = []
        self.count = 0
        self.user_bytes = 0
        self.created = created
        self.deadline = _NEVER


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
        self._spare: list[AggregateBuilderLike] = []
        self.ready_entries = 0
        self.ready_bytes = 0
        self._shard_bytes: dict[str, int] = {}  # ready bytes per shard
        # Shards that may not send yet (rate tokens, retry backoff), and until when.
        self._waiting: dict[str, float] = {}
        # Shards held back since their queue was last empty, and the ready entries and bytes
        # they hold: a backlog that drains at its shard's pace cannot fill a request, so it
        # does not make one "full" (which closes every open aggregate early).
        self._paced: set[str] = set()
        self.paced_entries = 0
        self.paced_bytes = 0
        self.open_records = 0
        self.open_bytes = 0
        self._rotation = 0

    # --- builders ---------------------------------------------------------------------------

    def _builder(self) -> AggregateBuilderLike:
        """A recycled builder (its encoding caches warm) or a new one."""
        return self._spare.pop() if self._spare else self._builder_factory()

    def _recycle(self, builder: AggregateBuilderLike) -> None:
        builder.reset()
        self._spare.append(builder)

    def _new_open(self, shard_id: str, now: float) -> _Open:
        agg = self._open[shard_id] = _Open(self._builder() if self._aggregate else None, now)
        return agg

    # --- adding -----------------------------------------------------------------------------

    def add(
        self,
        shard_id: str,
        owner: RecordOwner,
        slot: int,
        now: float,
        deadline: float,
        data: bytes | None = None,
    ) -> int:
        """Buffer one record bound for ``shard_id``; returns its size as the buffer caps count it.

        ``data`` is given when the owner may have released its copy (re-routing an encoded
        entry, see :meth:`Entry.member_datas`): the owner takes it back, so the record is
        buffered as any other (alone, it becomes a plain entry built from the owner's copy;
        re-planned again before its aggregate is encoded, it is found there).
        """
        if data is not None:
            owner.restore(slot, data)
        key, ehk, payload, event_id = owner.fields(slot)
        if payload is None:
            raise RuntimeError("a released record was re-added without its data")
        size = user_size(key, payload)
        self.add_one(shard_id, owner, slot, key, ehk, payload, event_id, now, deadline, size)
        return size

    def add_one(
        self,
        shard_id: str,
        owner: RecordOwner,
        slot: int,
        key: str,
        ehk: int | None,
        data: bytes,
        event_id: str | None,
        now: float,
        deadline: float,
        size: int,
    ) -> None:
        """:meth:`add` with the record's fields and size (data bytes + key characters) given.

        One record at a time: re-routing after a reshard and un-aggregated producers.
        ``send()`` records come in runs, through :meth:`add_records`.
        """
        agg = self._open.get(shard_id)
        if agg is None:
            agg = self._new_open(shard_id, now)
        builder = agg.builder
        if builder is None:
            if agg.count >= self._max_entries:
                self._close(shard_id, agg)
                agg = self._new_open(shard_id, now)
        elif not builder.try_add(key, data, ehk, event_id):
            # The aggregate is full; a first record always fits a fresh one.
            self._close(shard_id, agg)
            agg = self._new_open(shard_id, now)
            builder = agg.builder
            assert builder is not None
            builder.try_add(key, data, ehk, event_id)
        owners = agg.owners
        if owners and owners[-1] is owner:
            last = agg.slots[-1]
            if type(last) is list:
                last.append(slot)
            else:
                agg.slots[-1] = [*last, slot]
        else:
            owners.append(owner)
            agg.slots.append(_FIRST_SLOT if slot == 0 else [slot])
        agg.count += 1
        agg.user_bytes += size
        if deadline < agg.deadline:
            agg.deadline = deadline
        self.open_records += 1
        self.open_bytes += size

    def add_records(
        self,
        owner: RecordOwner,
        keys: Sequence[str],
        datas: Sequence[bytes],
        groups: Mapping[str, list[int]],
        now: float,
        deadline: float,
        extras: Mapping[int, tuple[int | None, str | None]] | None = None,
    ) -> int:
        """Buffer the records ``(keys[i], datas[i])`` of a batch: for each shard in ``groups``,
        the positions ``i`` bound for it, in order; ``extras`` holds the explicit hash key and
        event id of the records that have one, by index.

        ``owner`` owns them with slot ``i``.  The batch path: aggregate appends with no
        per-record objects, and one call for the whole batch (at 64 shards a small batch
        spans nearly as many shards as it has records: a call per shard cost ~0.3 us each).
        Returns the bytes the buffer caps count for them.
        """
        if not self._aggregate:
            return sum(
                self.add(shard_id, owner, slot, now, deadline)
                for shard_id, order in groups.items()
                for slot in order
            )
        opened = self._open
        total = 0
        # added to open aggregates but not yet to open_records / open_bytes (settled before
        # an aggregate closes, which takes its own records back out of them)
        unsettled_records = unsettled_bytes = 0
        for shard_id, order in groups.items():
            start = 0
            stop = len(order)
            agg = opened.get(shard_id)
            while start < stop:
                if agg is None:
                    agg = self._new_open(shard_id, now)
                builder = agg.builder
                assert builder is not None
                end, nbytes = builder.add_records(keys, datas, order, start, extras)
                if end > start:
                    agg.owners.append(owner)
                    agg.slots.append(order if start == 0 and end == stop else order[start:end])
                    agg.count += end - start
                    agg.user_bytes += nbytes
                    if deadline < agg.deadline:
                        agg.deadline = deadline
                    unsettled_records += end - start
                    unsettled_bytes += nbytes
                    total += nbytes
                    start = end
                if start < stop:  # the aggregate is full: close it, go on in a fresh one
                    self.open_records += unsettled_records
                    self.open_bytes += unsettled_bytes
                    unsettled_records = unsettled_bytes = 0
                    self._close(shard_id, agg)
                    agg = None
        self.open_records += unsettled_records
        self.open_bytes += unsettled_bytes
        return total

    def _push(self, entry: Entry) -> None:
        queue = self._ready.get(entry.shard_id)
        if queue is None:
            queue = self._ready[entry.shard_id] = deque()
        queue.append(entry)
        self._queued(entry)

    def _queued(self, entry: Entry) -> None:
        """Count an entry just put in its shard's ready queue."""
        shard_id, size = entry.shard_id, entry.size
        self.ready_entries += 1
        self.ready_bytes += size
        self._shard_bytes[shard_id] = self._shard_bytes.get(shard_id, 0) + size
        if shard_id in self._paced:
            self.paced_entries += 1
            self.paced_bytes += size

    def _unqueued(self, entry: Entry) -> None:
        """Uncount an entry just taken from its shard's ready queue."""
        shard_id, size = entry.shard_id, entry.size
        self.ready_entries -= 1
        self.ready_bytes -= size
        self._shard_bytes[shard_id] -= size
        if shard_id in self._paced:
            self.paced_entries -= 1
            self.paced_bytes -= size

    def _lone_entry(self, shard_id: str, member: Member, created: float, deadline: float) -> Entry:
        """An entry for one record: plain, or a one-record aggregate when it carries an event id."""
        owner, slot = member
        key, ehk, data, event_id = owner.fields(slot)
        if data is None:
            raise RuntimeError("a lone entry was built from a released record")
        owners: list[RecordOwner] = [owner]
        slots: list[Sequence[int]] = [_FIRST_SLOT if slot == 0 else (slot,)]
        size = user_size(key, data)
        if event_id is None:
            return Entry(shard_id, key, ehk, data, owners, slots, 1, False, size, created, deadline)
        builder = self._builder()
        builder.try_add(key, data, ehk, event_id)  # a first record always fits
        entry_key = builder.entry_partition_key
        assert entry_key is not None
        entry = Entry(
            shard_id,
            entry_key,
            builder.entry_explicit_hash_key,
            builder.encode(),
            owners,
            slots,
            1,
            True,
            size,
            created,
            deadline,
        )
        self._recycle(builder)
        return entry

    def _close(self, shard_id: str, agg: _Open) -> None:
        self.open_records -= agg.count
        self.open_bytes -= agg.user_bytes
        builder = agg.builder
        if builder is None or (agg.count == 1 and not builder.tagged):
            # Plain records; a lone record gains nothing from the KPL envelope either.
            for owner, slot in _members(agg.owners, agg.slots):
                self._push(self._lone_entry(shard_id, (owner, slot), agg.created, agg.deadline))
            if builder is not None:
                self._recycle(builder)
            return
        entry_key = builder.entry_partition_key
        assert entry_key is not None
        self._push(
            Entry(
                shard_id,
                entry_key,
                builder.entry_explicit_hash_key,
                builder.encode(),
                agg.owners,
                agg.slots,
                agg.count,
                True,
                agg.user_bytes,
                agg.created,
                agg.deadline,
            )
        )
        self._recycle(builder)
        for owner, slots in zip(agg.owners, agg.slots, strict=True):  # the aggregate holds it now
            owner.release(slots)

    def close_open(self) -> None:
        """Close every open aggregate: a request is going, and they all go with it."""
        opened = list(self._open.items())
        self._open.clear()
        for shard_id, agg in opened:
            if agg.count:
                self._close(shard_id, agg)
            elif agg.builder is not None:
                self._recycle(agg.builder)

    # --- state ------------------------------------------------------------------------------

    @property
    def oldest_open(self) -> float | None:
        """When the oldest open aggregate (or plain batch) started: the linger timer's base."""
        if not self._open:
            return None
        return min(agg.created for agg in self._open.values())

    @property
    def has_full_request(self) -> bool:
        """Enough could go now for a request at the entry or byte cap (send without lingering).

        Entries of paced shards do not count: a backlog held back by its shard's rate
        budget cannot fill a request, and counting it would close every other shard's
        aggregate early, over and over (half-empty aggregates in one-entry requests).
        """
        pending = self.ready_entries - self.paced_entries
        pending += len(self._open) if self._aggregate else self.open_records
        if pending >= self._max_entries:
            return True
        return self.ready_bytes - self.paced_bytes + self.open_bytes >= self._max_bytes

    def oldest_sendable(self, busy: Collection[str] = ()) -> float | None:
        """When the oldest ready entry of a shard that may send now started (its linger base)."""
        waiting = self._waiting
        oldest: float | None = None
        for shard_id, queue in self._ready.items():
            if queue and shard_id not in waiting and shard_id not in busy:
                created = queue[0].created
                if oldest is None or created < oldest:
                    oldest = created
        return oldest

    def wait(self, shard_id: str, until: float) -> None:
        """Hold ``shard_id``'s ready entries back until ``until``; the shard is paced from now
        until its queue is next empty (see :attr:`has_full_request`)."""
        self._waiting[shard_id] = max(self._waiting.get(shard_id, until), until)
        if shard_id in self._paced:
            return
        self._paced.add(shard_id)
        queue = self._ready.get(shard_id)
        if queue:
            self.paced_entries += len(queue)
            self.paced_bytes += self._shard_bytes.get(shard_id, 0)

    def release_waits(self, now: float) -> float | None:
        """Let shards whose wait is over send again; returns the earliest wait still running."""
        earliest: float | None = None
        if not self._waiting:
            return earliest
        for shard_id, until in list(self._waiting.items()):
            if until > now:
                earliest = until if earliest is None else min(earliest, until)
                continue
            del self._waiting[shard_id]
        return earliest

    def _clear_ready(self) -> None:
        """Empty every ready queue and what is counted about them."""
        self._ready.clear()
        self._shard_bytes.clear()
        self._waiting.clear()
        self._paced.clear()
        self.ready_entries = self.ready_bytes = 0
        self.paced_entries = self.paced_bytes = 0

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
        max_bytes: int | None = None,
    ) -> tuple[list[Entry], list[Entry], float | None]:
        """The next request: (entries to send, entries past their deadline, earliest retry time).

        ``admit(entry)`` returns 0 to let an entry in (taking its rate tokens) or the seconds
        until its shard may send.  Shards in ``busy`` are skipped (ordered mode keeps one
        request per shard in flight).  In ordered mode a request carries at most one entry per
        partition key and one aggregate per shard, so a partial failure can never let a later
        record of a key overtake an earlier one.  (The keys are tracked per shard: all of a
        key's entries wait in its shard's queue, re-planned ones included, see
        :meth:`requeue`.)  ``max_bytes`` lowers the request's byte cap (the room left under the
        producer's bound on bytes in flight).
        """
        batch: list[Entry] = []
        expired: list[Entry] = []
        nbytes = 0
        max_entries = self._max_entries
        max_bytes = self._max_bytes if max_bytes is None else min(max_bytes, self._max_bytes)
        busy_set = set(busy)
        waiting = self._waiting
        if waiting:
            self.release_waits(now)
        shards = [s for s, q in self._ready.items() if q and s not in busy_set and s not in waiting]
        if not shards:
            return batch, expired, min(waiting.values(), default=None)
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
                    self._unqueued(entry)
                    expired.append(entry)
                    continue
                if entry.not_before > now:
                    self.wait(shard_id, entry.not_before)
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
                    self.wait(shard_id, now + delay)
                    break
                queue.popleft()
                self._unqueued(entry)
                nbytes += entry.size
                batch.append(entry)
            if not queue:
                self._paced.discard(shard_id)
            if len(batch) >= max_entries or nbytes >= max_bytes:
                break
        return batch, expired, min(waiting.values(), default=None)

    def requeue(self, entries: list[Entry], shard_map: ShardMap | None = None) -> None:
        """Put entries back at the head of their shards' queues, in order: retries, and records
        re-sent after landing on a shard other than planned.  They were sent before anything
        still buffered, so at the head each key keeps its order.

        With ``shard_map``, an entry whose shard is no longer open (split or merged while the
        entry was in a request) is re-planned onto the shards that now own its records first
        (:meth:`_replanned`), still at the head.
        """
        if shard_map is not None:
            entries = [
                piece
                for entry in entries
                for piece in (
                    (entry,) if _still_open(shard_map, entry.shard_id) else self._replanned(entry, shard_map)
                )
            ]
        for entry in reversed(entries):
            queue = self._ready.get(entry.shard_id)
            if queue is None:
                queue = self._ready[entry.shard_id] = deque()
            queue.appendleft(entry)
            self._queued(entry)

    def drain_all(self) -> list[Entry]:
        """Remove and return every buffered entry (closing open aggregates first)."""
        self.close_open()
        entries = [entry for queue in self._ready.values() for entry in queue]
        self._clear_ready()
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
        opened = [
            (list(_members(agg.owners, agg.slots)), agg.deadline) for agg in self._open.values() if agg.count
        ]
        for agg in self._open.values():
            if agg.builder is not None:
                self._recycle(agg.builder)
        self._clear_ready()
        self._open.clear()
        self.open_records = 0
        self.open_bytes = 0
        split = 0
        for entry in queued:
            pieces = self._replanned(entry, shard_map)
            if pieces[0] is not entry:
                split += 1
            for piece in pieces:
                self._push(piece)
        for members, deadline in opened:
            for owner, slot in members:
                key, ehk, _, _ = owner.fields(slot)
                self.add(shard_map.shard_for_key(key, ehk).shard_id, owner, slot, now, deadline)
        return split

    def _replanned(self, entry: Entry, shard_map: ShardMap) -> list[Entry]:
        """``entry`` routed by ``shard_map``: itself, moved whole, when its records still share
        one shard; otherwise its records regrouped per new shard into fresh entries (keeping
        its attempts and back-off), in order."""
        groups = regroup(entry.members(), shard_map)
        if len(groups) == 1:
            entry.shard_id = next(iter(groups))
            return [entry]
        data_of = dict(zip(entry.members(), entry.member_datas(), strict=True))
        pieces: list[Entry] = []
        for shard_id, members in groups.items():
            datas = [data_of[member] for member in members]
            for piece in self.build_entries(shard_id, members, entry.created, entry.deadline, datas):
                piece.attempts = entry.attempts
                piece.not_before = entry.not_before
                piece.last_error = entry.last_error
                pieces.append(piece)
        return pieces

    def build_entries(
        self,
        shard_id: str,
        members: list[Member],
        created: float,
        deadline: float,
        datas: Sequence[bytes] | None = None,
    ) -> list[Entry]:
        """Entries for ``members`` (all bound for ``shard_id``), aggregated when enabled, in order.

        ``datas`` holds the members' data when their owners may have released it.
        """
        scratch = Accumulator(
            aggregate=self._aggregate,
            builder_factory=self._builder,
            max_entries=self._max_entries,
            max_bytes=self._max_bytes,
        )
        for index, (owner, slot) in enumerate(members):
            scratch.add(shard_id, owner, slot, created, deadline, None if datas is None else datas[index])
        entries = scratch.drain_all()
        self._spare.extend(scratch._spare)
        return entries


def _members(owners: list[RecordOwner], runs: list[Sequence[int]]) -> Iterator[Member]:
    for owner, slots in zip(owners, runs, strict=True):
        for slot in slots:
            yield owner, slot


def _still_open(shard_map: ShardMap, shard_id: str) -> bool:
    shard = shard_map.get(shard_id)
    return shard is not None and shard.is_open


def regroup(members: Iterable[Member], shard_map: ShardMap) -> dict[str, list[Member]]:
    """Records grouped by the open shard each now routes to, in their original order."""
    groups: dict[str, list[Member]] = {}
    for owner, slot in members:
        key, ehk, _, _ = owner.fields(slot)
        shard_id = shard_map.shard_for_key(key, ehk).shard_id
        group = groups.get(shard_id)
        if group is None:
            groups[shard_id] = [(owner, slot)]
        else:
            group.append((owner, slot))
    return groups
