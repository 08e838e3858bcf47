"""The read side of a ``send_many()`` batch: a sequence of acknowledgements built on demand.

Both producers record a batch's outcome in a compact form (runs of slots per Kinesis entry,
partition and offset lists for Kafka) and turn it into ack objects only when the caller reads
them.  This base owns the sequence protocol; a subclass says how long the batch is and how to
build the ack at one position.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar, overload

from shardline.errors import ShardlineError

__all__ = ["LazyAcks"]

AckT = TypeVar("AckT")


class LazyAcks(Sequence[AckT]):
    """Acks in the order the records were given; a failed position raises its error.

    :attr:`failed` maps each failed position to its error, so nothing fails silently.
    """

    __slots__ = ("failed",)

    def __init__(self, failed: dict[int, ShardlineError]) -> None:
        self.failed = failed

    @property
    def ok(self) -> bool:
        """True when every record of the batch was acknowledged."""
        return not self.failed

    def __len__(self) -> int:
        raise NotImplementedError

    def _build(self, index: int) -> AckT:
        """The ack of the acknowledged record at ``index`` (0 <= index < len)."""
        raise NotImplementedError

    def _ack(self, index: int) -> AckT:
        if self.failed:
            error = self.failed.get(index)
            if error is not None:
                raise error
        return self._build(index)

    @overload
    def __getitem__(self, index: int) -> AckT: ...
    @overload
    def __getitem__(self, index: slice) -> list[AckT]: ...
    def __getitem__(self, index: int | slice) -> AckT | list[AckT]:
        if isinstance(index, slice):
            return [self._ack(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._ack(index)

    def __iter__(self) -> Iterator[AckT]:
        for i in range(len(self)):
            yield self._ack(i)
