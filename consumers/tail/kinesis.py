"""Follow every shard of a Kinesis stream, parents before children, without leases or checkpoints.

A debugging reader, not a consumer: it takes no lease and writes no checkpoint, so it never
disturbs the applications reading the stream, and it may run next to them.  Per shard a
:class:`~consumers.kinesis.PollingShardReader` de-aggregates KPL records; shard order follows
:func:`~consumers.kinesis.plan_reads` (the lineage rules of the consumers), fed with what this
follower itself finished, kept in memory only.  With ``until_tip`` each shard stops once a
read finds it caught up, and :meth:`KinesisFollower.batches` ends when every shard did.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from consumers.checkpoint.base import Lease
from consumers.kinesis.batch import ShardBatch
from consumers.kinesis.config import ReaderConfig
from consumers.kinesis.lineage import plan_reads
from consumers.kinesis.polling import PollingShardReader
from consumers.kinesis.positions import StartPosition
from shardline.errormap import map_aws_errors
from shardline.errors import ConfigurationError
from shardline.records import SHARD_END
from shardline.shardmath import ShardInfo, list_shards
from shardline.tasks import stray_cancel

__all__ = ["KinesisFollower", "ShardDone"]


class ShardDone:
    """A shard's reader finished: ``ended`` when it reached SHARD_END, else it stopped at the tip."""

    __slots__ = ("ended", "shard_id")

    def __init__(self, shard_id: str, ended: bool) -> None:
        self.shard_id = shard_id
        self.ended = ended


class KinesisFollower:
    """Yields :class:`ShardBatch` values of every readable shard until stopped (or at the tip).

    ``start`` is TRIM_HORIZON, LATEST or AT_TIMESTAMP for the whole stream, or a sequence
    position for the one shard named in ``shard_ids``.  ``shard_ids`` limits reading to those
    shards (their children are not followed).
    """

    def __init__(
        self,
        client: Any,
        stream: str,
        start: StartPosition,
        *,
        shard_ids: Sequence[str] = (),
        until_tip: bool = False,
        config: ReaderConfig | None = None,
    ) -> None:
        if start.is_sequence_based and len(shard_ids) != 1:
            raise ConfigurationError("a sequence-number start belongs to one shard: give exactly one --shard")
        self._client = client
        self._stream = stream
        self._start = start
        self._only = set(shard_ids)
        self._until_tip = until_tip
        self._config = config if config is not None else ReaderConfig(idle_backoff_max=0.5)
        self._known: dict[str, ShardInfo] = {}
        self._finished: dict[str, Lease] = {}
        self._reading: dict[str, asyncio.Task[None]] = {}
        self._started: set[str] = set()
        self._output: asyncio.Queue[ShardBatch | ShardDone | BaseException] = asyncio.Queue(maxsize=64)
        self._stopped = asyncio.Event()

    async def stop(self) -> None:
        """End :meth:`batches` soon (the batch being printed is the last)."""
        self._stopped.set()

    @property
    def finished_shards(self) -> list[str]:
        """Shards read to their end or to the tip so far."""
        return sorted(self._finished)

    async def batches(self) -> AsyncIterator[ShardBatch | ShardDone]:
        """Batches in per-shard order, and a :class:`ShardDone` as each shard finishes."""
        stop_wait = asyncio.ensure_future(self._stopped.wait())
        try:
            await self._plan(await self._list())
            if self._until_tip and not self._reading:
                return
            while not self._stopped.is_set():
                getter = asyncio.ensure_future(self._output.get())
                done, _ = await asyncio.wait({getter, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                item = getter.result()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, ShardDone):
                    self._reading.pop(item.shard_id, None)
                    self._finished[item.shard_id] = Lease(
                        item.shard_id, None, 0, SHARD_END if item.ended else None
                    )
                    yield item
                    if item.ended and not self._only:
                        await self._plan(await self._list())
                    if self._until_tip and not self._reading:
                        return
                    continue
                if item.child_shards:
                    for child in item.child_shards:
                        self._known.setdefault(child.shard_id, child)
                yield item
        finally:
            stop_wait.cancel()
            tasks = list(self._reading.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _list(self) -> list[ShardInfo]:
        with map_aws_errors("kinesis"):
            return await list_shards(self._client, stream_name=self._stream)

    async def _plan(self, listed: list[ShardInfo]) -> None:
        for info in listed:
            self._known[info.shard_id] = info
        if self._only:
            unknown = self._only - set(self._known)
            if unknown:
                raise ConfigurationError(f"no shard {', '.join(sorted(unknown))} in stream {self._stream!r}")
            for shard_id in sorted(self._only - self._started):
                self._launch(self._known[shard_id], self._start)
            return
        # a shard read to the tip (not to its end) is tracked: its children wait for its end
        tracked = {shard_id: lease for shard_id, lease in self._finished.items()}
        for shard_id in self._started - set(tracked):
            tracked[shard_id] = Lease(shard_id, None, 0, None)
        for plan in plan_reads(self._known.values(), tracked, self._start, exclude=self._started):
            self._launch(plan.shard, plan.start)

    def _launch(self, shard: ShardInfo, start: StartPosition) -> None:
        self._started.add(shard.shard_id)
        self._reading[shard.shard_id] = asyncio.create_task(
            self._read(shard, start), name=f"tail-{shard.shard_id}"
        )

    async def _read(self, shard: ShardInfo, start: StartPosition) -> None:
        ended = False
        try:
            reader = PollingShardReader(
                self._client,
                self._stream,
                shard.shard_id,
                start,
                shard=shard,
                stop_at_tip=self._until_tip,
                config=self._config,
            )
            async for batch in reader:
                ended = ended or batch.end_of_shard
                await self._output.put(batch)
            await self._output.put(ShardDone(shard.shard_id, ended))
        except BaseException as exc:  # noqa: BLE001 - surfaced by batches(), which owns this task
            await self._output.put(stray_cancel(exc, f"the reader of {shard.shard_id}"))
