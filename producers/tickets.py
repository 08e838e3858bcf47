"""Who owns a buffered record and waits for its acknowledgement: a send() or a send_many() batch.

Every buffered record is a ``(owner, slot)`` pair: the owner holds the record's fields and
resolves its outcome.  ``send()`` returns a :class:`SingleTicket`, an asyncio future, and
its record joins the producer's open :class:`SendRun`, which owns the records of the
``send()`` calls in a row as columns and resolves each one's ticket.  ``send_many()``
makes one :class:`BatchTicket` for the whole batch; it keeps the batch's validated columns
(partition keys, data, and the few explicit hash keys and event ids by index), and a
Kinesis entry acknowledges its records as one *run* ``(slots, first sub-sequence number,
shard, sequence number, acknowledged at)``: one list append per entry, not per record.
The per-record :class:`~shardline.Ack` objects are built only when read
(:class:`BatchAcks`), so a 100k-record batch allocates nothing per record on the way
through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

from producers._acks import LazyAcks
from shardline.errors import ShardlineError
from shardline.records import Ack

__all__ = [
    "BatchAcks",
    "BatchTicket",
    "EntryAcks",
    "Extras",
    "RecordFields",
    "RecordOwner",
    "SendRun",
    "SingleTicket",
]

RecordFields = tuple[str, "int | None", "bytes | None", "str | None"]
"""(partition key, explicit hash key, data, event id) of one validated record.

The data is ``None`` once the record's aggregate is encoded and its owner let go of its own
copy (:meth:`RecordOwner.release`); it is then read back from the entry
(:meth:`producers.accumulator.Entry.member_datas`)."""

Extras = dict[int, tuple["int | None", "str | None"]]
"""(explicit hash key, event id) by batch position, for the records that have either."""


_Run = tuple[Sequence[int], "int | None", str, str, float]


class EntryAcks(NamedTuple):
    """The records of a batch that one Kinesis entry carried, and when it was acknowledged."""

    shard_id: str
    positions: Sequence[int]
    """Their positions in the batch, in sub-sequence order."""
    acked_at: float
    """When the PutRecords response arrived, on the producer's clock (``time.monotonic``): one
    reading per response, so the entries of one response share it exactly."""


_tuple_new = tuple.__new__


class _AckDraft:
    """An :class:`~shardline.Ack` under construction: same slots, plain attribute stores.

    Assigning ``__class__ = Ack`` once the fields are set turns it into a regular frozen Ack;
    measured here 130-160 ns against 270-300 ns through Ack's ``__init__`` (slot setter
    calls), paid on every read of a ``send()`` future.
    """

    __slots__ = Ack.__slots__
    shard_id: str
    sequence_number: str
    sub_sequence_number: int | None


_future_result = asyncio.Future.result


def _ack(shard_id: str, sequence_number: str, sub_sequence_number: int | None) -> Ack:
    draft = _AckDraft()
    draft.shard_id = shard_id
    draft.sequence_number = sequence_number
    draft.sub_sequence_number = sub_sequence_number
    draft.__class__ = Ack  # type: ignore[assignment]
    return draft  # type: ignore[return-value]


class RecordOwner(Protocol):
    """What the accumulator and the sender need from whoever owns buffered records."""

    epoch: int
    """The producer's flush generation: a ``flush()`` waits for the records of its own and
    earlier generations only."""

    def fields(self, slot: int) -> RecordFields: ...
    def ack_run(
        self,
        slots: Sequence[int],
        first_sub: int | None,
        shard_id: str,
        sequence_number: str,
        acked_at: float,
    ) -> None:
        """Acknowledge ``slots``, written in one Kinesis entry whose response arrived at
        ``acked_at`` (the producer's clock, read once per response).

        Inside an aggregate the records have sub-sequence numbers ``first_sub``,
        ``first_sub + 1``...; a plain entry has none (``first_sub`` is ``None``).
        """
        ...

    def fail(self, slot: int, error: ShardlineError) -> None: ...

    def release(self, slots: Sequence[int]) -> None:
        """Drop the owner's copy of these records' data: their encoded aggregate now holds it.

        A buffered record's data would otherwise live twice until its owner has an outcome
        (here and in the aggregate), which doubled the memory a full buffer takes.  The data
        is read back from the entry when needed (:meth:`producers.accumulator.Entry.member_datas`).
        """
        ...

    def restore(self, slot: int, data: bytes) -> None:
        """Take back a copy of a released record's data: it is being buffered again.

        A record re-routed after a reshard leaves its encoded entry for a new one; until that
        is encoded the owner is again the one place its data lives (a record that ends up
        alone is sent as a plain entry, built from the owner's copy).
        """
        ...

    def abort(self, error: ShardlineError) -> None:
        """Fail every record of this owner that has no outcome yet (the producer is giving up)."""
        ...


class SingleTicket(asyncio.Future[Ack]):
    """The future ``send()`` returns: its :class:`~shardline.Ack` is built only when read.

    On acknowledgement the ticket stores the entry's shard and sequence number (shared by the
    entry's records) and its sub-sequence number, and the Ack is made by ``await`` or
    :meth:`result`.  At high rates the cost of a per-record send is mostly allocation and
    the garbage collector's walks over every object the caller keeps alive; an ack object
    per record, made long before anyone reads it, doubled those.  The record itself is kept
    by its :class:`SendRun`, not here: the ticket is what the caller holds, so it is as
    small as a future allows.
    """

    __slots__ = ("_seq", "_shard", "_sub")

    def acknowledge(self, shard_id: str, sequence_number: str, sub: int | None) -> None:
        """Resolve with the record's position (its Ack is built when read)."""
        if not self.done():
            self._shard = shard_id
            self._seq = sequence_number
            self._sub = sub
            self.set_result(None)  # type: ignore[arg-type]

    def result(self) -> Ack:
        """The record's :class:`~shardline.Ack`, or raise its delivery error."""
        _future_result(self)  # raises the error, CancelledError or InvalidStateError
        return _ack(self._shard, self._seq, self._sub)

    def __await__(self) -> Generator[Any, None, Ack]:
        if not self.done():
            self._asyncio_future_blocking = True
            yield self
            if not self.done():
                raise RuntimeError("await wasn't used with future")
        # result() inlined: awaiting is the usual read, once per record.
        _future_result(self)
        draft = _AckDraft()
        draft.shard_id = self._shard
        draft.sequence_number = self._seq
        draft.sub_sequence_number = self._sub
        draft.__class__ = Ack  # type: ignore[assignment]
        return draft  # type: ignore[return-value]

    __iter__ = __await__

    def __repr__(self) -> str:
        return f"SingleTicket(<{self._state.lower()}>)"


class SendRun:
    """The ``send()`` records not yet handed to the accumulator, and each one's future.

    ``send()`` appends its record to the open run as columns, as a ``send_many()`` batch
    keeps them (``keys[i]``, ``datas[i]``, the explicit hash key and event id of the few
    records with one in ``extras``), with its :class:`SingleTicket` in ``tickets[i]`` and
    its position in its shard's list in ``groups``.  The producer hands the whole run to the
    accumulator's batch path (:meth:`producers.accumulator.Accumulator.add_records`) when the
    sender next looks at the buffer, when the run is long, or before anything else is
    buffered: one call per run instead of one per record, which measured ~1.25 of the ~2.3
    CPU-us a ``send()`` call cost.  The run then owns its records in their aggregates and
    resolves each ticket; like a batch ticket it keeps no object per record besides the
    caller's future.
    """

    __slots__ = ("datas", "epoch", "extras", "groups", "keys", "nbytes", "started", "tickets")

    def __init__(self, started: float, epoch: int = 0) -> None:
        self.started = started
        """When its first record was sent (the producer's clock): its linger and TTL start then."""
        self.epoch = epoch
        """The producer's flush generation its records belong to (see ``KinesisProducer.flush``)."""
        self.keys: list[str] = []
        self.datas: list[bytes | None] = []
        self.tickets: list[SingleTicket] = []
        self.extras: Extras = {}
        self.groups: dict[str, list[int]] = {}
        """The positions bound for each shard, in order."""
        self.nbytes = 0
        """Data bytes + key characters of its records: what the buffer caps count."""

    def __len__(self) -> int:
        return len(self.keys)

    def fields(self, slot: int) -> RecordFields:
        special = self.extras.get(slot) if self.extras else None
        if special is not None:
            return self.keys[slot], special[0], self.datas[slot], special[1]
        return self.keys[slot], None, self.datas[slot], None

    def ack_run(
        self,
        slots: Sequence[int],
        first_sub: int | None,
        shard_id: str,
        sequence_number: str,
        acked_at: float,
    ) -> None:
        tickets = self.tickets
        sub = first_sub
        for slot in slots:
            ticket = tickets[slot]
            if not ticket.done():  # SingleTicket.acknowledge inline: one call fewer a record
                ticket._shard = shard_id
                ticket._seq = sequence_number
                ticket._sub = sub
                ticket.set_result(None)  # type: ignore[arg-type]
            if sub is not None:
                sub += 1

    def fail(self, slot: int, error: ShardlineError) -> None:
        ticket = self.tickets[slot]
        if not ticket.done():
            ticket.set_exception(error)

    def release(self, slots: Sequence[int]) -> None:
        """Drop the run's copy of these records' data (see :meth:`RecordOwner.release`)."""
        datas = self.datas
        for slot in slots:
            datas[slot] = None

    def restore(self, slot: int, data: bytes) -> None:
        self.datas[slot] = data

    def abort(self, error: ShardlineError) -> None:
        """The producer failed or closed: every record without an outcome fails with ``error``."""
        for ticket in self.tickets:
            if not ticket.done():
                ticket.set_exception(error)

    def __repr__(self) -> str:
        return f"SendRun(<{len(self.keys)} records, {len(self.groups)} shards>)"


class BatchAcks(LazyAcks[Ack]):
    """The acknowledgements of a ``send_many()`` batch, in the order the records were given.

    Reading a position whose record failed raises that record's error; :attr:`failed` maps
    each failed position to its error, so nothing fails silently.  The per-position table
    is built from the acknowledged runs on first read.
    """

    __slots__ = ("_runs", "_seqs", "_shards", "_size", "_subs")

    def __init__(self, size: int, runs: list[_Run], failed: dict[int, ShardlineError]) -> None:
        super().__init__(failed)
        self._size = size
        self._runs = runs
        self._shards: list[str | None] | None = None
        self._seqs: list[str | None] = []
        self._subs: list[int | None] = []

    def __len__(self) -> int:
        return self._size

    def _table(self) -> list[str | None]:
        shards = self._shards
        if shards is None:
            shards = [None] * self._size
            seqs: list[str | None] = [None] * self._size
            subs: list[int | None] = [None] * self._size
            for slots, first_sub, shard_id, sequence_number, _ in self._runs:
                for offset, slot in enumerate(slots):
                    shards[slot] = shard_id
                    seqs[slot] = sequence_number
                    subs[slot] = None if first_sub is None else first_sub + offset
            self._shards, self._seqs, self._subs = shards, seqs, subs
        return shards

    def by_entry(self) -> Iterator[EntryAcks]:
        """The acknowledged records grouped by the Kinesis entry that carried them.

        One item per entry (per aggregate) rather than per record, with the time its
        response arrived: what a caller needs to time each record's acknowledgement (or
        count what each shard took) without building an ack per record.  Failed positions
        are in :attr:`failed`, not here.
        """
        make = _tuple_new  # EntryAcks' own __new__ is a Python frame per entry
        for slots, _, shard_id, _, acked_at in self._runs:
            yield make(EntryAcks, (shard_id, slots, acked_at))

    def _build(self, index: int) -> Ack:
        shard = self._table()[index]
        seq = self._seqs[index]
        assert shard is not None and seq is not None
        return _ack(shard, seq, self._subs[index])

    def __repr__(self) -> str:
        return f"BatchAcks(<{len(self)} records, {len(self.failed)} failed>)"


class BatchTicket:
    """The records of one ``send_many()`` call; resolves one future when all have an outcome.

    The records are kept as the validated columns ``keys`` and ``datas`` (slot ``i`` is
    ``(keys[i], datas[i])``) plus ``extras``: no object per record.  A slot's data becomes
    ``None`` once its aggregate is encoded (:meth:`release`).
    """

    __slots__ = ("_failed", "_pending", "_runs", "datas", "epoch", "extras", "future", "keys")

    def __init__(
        self,
        future: asyncio.Future[BatchAcks],
        keys: list[str],
        datas: list[bytes | None],
        extras: Extras | None = None,
        epoch: int = 0,
    ) -> None:
        self.future = future
        self.epoch = epoch
        """The producer's flush generation its records belong to (see ``KinesisProducer.flush``)."""
        self.keys = keys
        self.datas = datas
        self.extras = extras
        self._pending = len(datas)
        self._runs: list[_Run] = []
        self._failed: dict[int, ShardlineError] = {}
        if not datas:
            self._resolve()

    def __len__(self) -> int:
        return len(self.datas)

    def fields(self, slot: int) -> RecordFields:
        extras = self.extras
        if extras:
            special = extras.get(slot)
            if special is not None:
                return self.keys[slot], special[0], self.datas[slot], special[1]
        return self.keys[slot], None, self.datas[slot], None

    def ack_run(
        self,
        slots: Sequence[int],
        first_sub: int | None,
        shard_id: str,
        sequence_number: str,
        acked_at: float,
    ) -> None:
        # The response's one clock read: BatchAcks.by_entry times each entry's records by it,
        # and the runs of one response share it exactly (a caller may group them by time).
        self._runs.append((slots, first_sub, shard_id, sequence_number, acked_at))
        self._pending -= len(slots)
        if self._pending == 0:
            self._resolve()

    def fail(self, slot: int, error: ShardlineError) -> None:
        self._failed[slot] = error
        self._pending -= 1
        if self._pending == 0:
            self._resolve()

    def release(self, slots: Sequence[int]) -> None:
        datas = self.datas
        for slot in slots:
            datas[slot] = None

    def restore(self, slot: int, data: bytes) -> None:
        self.datas[slot] = data

    def not_buffered(self, start: int, error: ShardlineError) -> None:
        """Records ``start..`` were never buffered (``send_many`` stopped taking the batch in
        parts): each fails with ``error``."""
        for slot in range(start, len(self.datas)):
            self.fail(slot, error)

    def abort(self, error: ShardlineError) -> None:
        """The producer failed or closed: every record without an outcome yet fails with ``error``.

        Only on that path, so the scan over the acknowledged runs costs nothing normally.
        """
        if self.future.done():
            return
        resolved = set(self._failed)
        for slots, _, _, _, _ in self._runs:
            resolved.update(slots)
        for slot in range(len(self.datas)):
            if slot not in resolved:
                self._failed[slot] = error
        self._pending = 0
        self._resolve()

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(BatchAcks(len(self.datas), self._runs, self._failed))

    def __repr__(self) -> str:
        return f"BatchTicket(<{len(self.datas)} records, {self._pending} pending>)"
