"""The load generator for Kafka targets: a pacing tick's messages in one ``send_many`` call.

The Kinesis generator (:class:`benchmarks.generator.LoadGenerator`) draws a tick's keys in
bulk, builds the payloads from cached key tails and hands them to the producer as columns.
Kafka gets the same, except for routing: the client's partitioner picks each message's
partition, so a device's partition is learned from its acknowledgements (for the
per-partition key counts), and each tick's per-partition load is counted when its
acknowledgements arrive, in the second the messages were due, as the per-record path did.

A message is acknowledged when its tick's batch is: the batch's future resolves once every
message of the tick has its delivery report, and that moment is each message's
acknowledgement time.  A tick's messages are produced together and lingered together
(``linger_ms``), so their reports arrive within one round of broker responses; the latency
from each message's intended send time to that moment never understates its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from benchmarks.generator import _UNROUTED, LoadGenerator
from benchmarks.recorder import Recorder
from benchmarks.workload import WorkloadSpec

__all__ = ["KafkaLoadGenerator"]


class KafkaLoadGenerator(LoadGenerator):
    """:class:`~benchmarks.generator.LoadGenerator` for a Kafka producer (see the module docstring).

    ``partition_label`` names a partition as the recorder's series do; ``newest_acked`` (per
    partition, the highest acknowledged offset) is kept up to date for the consumer's
    time-behind-the-tip.  Device keys and binary payloads only: the other key strategies pick
    explicit partitions per message, which the per-record path sends.
    """

    def __init__(
        self,
        *,
        workload: WorkloadSpec,
        recorder: Recorder,
        producer: Any,
        start: float,
        wall_origin_ns: int,
        partition_label: Callable[[int], str],
        newest_acked: dict[int, int],
        **options: Any,
    ) -> None:
        if workload.payload_format != "binary":
            raise ValueError("the Kafka batch generator builds binary payloads only")
        super().__init__(
            workload=workload,
            shard_map=None,
            recorder=recorder,
            producer=producer,
            start=start,
            wall_origin_ns=wall_origin_ns,
            **options,
        )
        self._partition_label = partition_label
        self._newest_acked = newest_acked

    def _route(self, index: int, key: str) -> int:
        """Unknown before an acknowledgement: the client's partitioner decides."""
        return _UNROUTED

    def _count_load(
        self, second: int, counts: Counter[int], tails: dict[int, tuple[str, bytes, int]]
    ) -> None:
        """Count each device's messages; the partitions' load is counted from the acks."""
        device_records = self._device_records
        for index, count in counts.items():
            device_records[index] += count

    def _record_acks(
        self,
        second: int,
        acks: Any,
        keys: list[str] | None,
        sizes: list[int],
        times: float | list[float],
        indices: list[int],
    ) -> None:
        """A tick's acknowledgements: load per partition, routes learned, latencies in bulk."""
        assert keys is not None, "device keys only (see the class docstring)"
        rec = self._recorder
        failed = acks.failed
        acked_at = self._clock()
        by_partition: dict[int, list[int]] = {}
        for position, partition in enumerate(acks.partitions):
            if failed and position in failed:
                continue
            positions = by_partition.get(partition)
            if positions is None:
                by_partition[partition] = [position]
            else:
                positions.append(position)
        shard_of = self._shard_of
        add_counts = rec.load.add_counts
        entries: list[tuple[str, list[int], float]] = []
        for partition, positions in by_partition.items():
            label = self._partition_label(partition)
            shard = self._shard_number(label)
            nbytes = 0
            for position in positions:
                nbytes += sizes[position] + len(keys[position])
                shard_of[indices[position]] = shard
            add_counts(label, second, len(positions), nbytes)
            entries.append((label, positions, acked_at))
        rec.on_entries_acked(second, entries, sizes, times)
        newest = self._newest_acked
        for partition, end in acks.end_offsets().items():
            if end - 1 > newest.get(partition, -1):
                newest[partition] = end - 1
