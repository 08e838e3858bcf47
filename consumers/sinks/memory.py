"""An in-memory sink, shipped for tests and dry runs (like httpx's mock transport).

Keeps the latest payload per record identity, so it is idempotent like the real sinks, and
lets a test script per-entry failures of the next sends through :meth:`MemorySink.inject`
or a whole-call failure through :meth:`MemorySink.fail_calls`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from consumers.sinks.base import BatchingSink, ChunkLimits, EntryResult
from shardline.errors import ShardlineError
from shardline.records import ConsumedRecord

__all__ = ["MemorySink"]


class MemorySink(BatchingSink[ConsumedRecord]):
    """Stores ``identity -> payload``; records the size of every call it received."""

    name = "memory"

    def __init__(self, *, max_entries: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limits = ChunkLimits(max_entries=max_entries)
        self.items: dict[str, bytes] = {}
        self.call_sizes: list[int] = []
        self._planned: deque[Mapping[int, EntryResult]] = deque()
        self._failing_calls: deque[ShardlineError] = deque()

    def __repr__(self) -> str:
        return f"MemorySink(items={len(self.items)})"

    def inject(self, failures: Mapping[int, EntryResult]) -> None:
        """The next send answers ``failures[i]`` for entry ``i`` (others are written)."""
        self._planned.append(failures)

    def fail_calls(self, error: ShardlineError, times: int = 1) -> None:
        """The next ``times`` sends raise ``error`` as a whole."""
        self._failing_calls.extend([error] * times)

    def encode(self, record: ConsumedRecord) -> ConsumedRecord:
        return record

    def entry_size(self, entry: ConsumedRecord) -> int:
        return len(entry.data)

    async def send(self, entries: Sequence[ConsumedRecord]) -> Sequence[EntryResult]:
        if self._failing_calls:
            raise self._failing_calls.popleft()
        self.call_sizes.append(len(entries))
        plan = self._planned.popleft() if self._planned else {}
        results: list[EntryResult] = []
        for index, record in enumerate(entries):
            result = plan.get(index)
            if result is not None:
                results.append(result)
            elif self.items.get(record.identity) == record.data:
                results.append(EntryResult.duplicate())
            else:
                self.items[record.identity] = record.data
                results.append(EntryResult.written())
        return results
