"""Who waits for a record's acknowledgement: a per-record future or a batch ticket.

``send()`` gives each record an asyncio future.  ``send_many()`` gives the whole batch one
:class:`BatchTicket`: acknowledgements are written into three flat lists and turned into
:class:`~shardline.Ack` objects only when read (:class:`BatchAcks`), so a 100k-record batch
costs three list stores per record instead of a future, a callback and a frozen dataclass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import overload

from shardline.errors import ShardlineError
from shardline.records import Ack

__all__ = ["BatchAcks", "BatchTicket"]


class BatchAcks(Sequence[Ack]):
    """The acknowledgements of a ``send_many()`` batch, in the order the records were given.

    Reading a position whose record failed raises that record's error; :attr:`failed` maps
    each failed position to its error, so nothing fails silently.
    """

    __slots__ = ("_seqs", "_shards", "_subs", "failed")

    def __init__(
        self,
        shards: list[str | None],
        seqs: list[str | None],
        subs: list[int | None],
        failed: dict[int, ShardlineError],
    ) -> None:
        self._shards = shards
        self._seqs = seqs
        self._subs = subs
        self.failed = failed

    @property
    def ok(self) -> bool:
        """True when every record of the batch was acknowledged."""
        return not self.failed

    def __len__(self) -> int:
        return len(self._shards)

    def _ack(self, index: int) -> Ack:
        error = self.failed.get(index)
        if error is not None:
            raise error
        shard = self._shards[index]
        seq = self._seqs[index]
        assert shard is not None and seq is not None
        return Ack(shard, seq, self._subs[index])

    @overload
    def __getitem__(self, index: int) -> Ack: ...
    @overload
    def __getitem__(self, index: slice) -> list[Ack]: ...
    def __getitem__(self, index: int | slice) -> Ack | list[Ack]:
        if isinstance(index, slice):
            return [self._ack(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._ack(index)

    def __iter__(self) -> Iterator[Ack]:
        for i in range(len(self)):
            yield self._ack(i)

    def __repr__(self) -> str:
        return f"BatchAcks(<{len(self)} records, {len(self.failed)} failed>)"


class BatchTicket:
    """Collects per-record outcomes of one batch and resolves one future when all are in."""

    __slots__ = ("_failed", "_pending", "_seqs", "_shards", "_subs", "future")

    def __init__(self, future: asyncio.Future[BatchAcks], size: int) -> None:
        self.future = future
        self._pending = size
        self._shards: list[str | None] = [None] * size
        self._seqs: list[str | None] = [None] * size
        self._subs: list[int | None] = [None] * size
        self._failed: dict[int, ShardlineError] = {}
        if size == 0:
            self._resolve()

    def ack(self, index: int, shard_id: str, sequence_number: str, sub: int | None) -> None:
        self._shards[index] = shard_id
        self._seqs[index] = sequence_number
        self._subs[index] = sub
        self._pending -= 1
        if self._pending == 0:
            self._resolve()

    def fail(self, index: int, error: ShardlineError) -> None:
        self._failed[index] = error
        self._pending -= 1
        if self._pending == 0:
            self._resolve()

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(BatchAcks(self._shards, self._seqs, self._subs, self._failed))
