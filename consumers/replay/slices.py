"""Running one slice of a planned replay, on any machine, resumably.

:func:`run_slice` needs only the manifest and a slice index.  It

1. opens the job's checkpoint namespace (``replay-NAME`` in the manifest's DynamoDB
   checkpoint store) and binds it to the manifest's hash, refusing a manifest of another
   plan (:class:`~consumers.replay.ledger.ManifestMismatchError`);
2. claims the slice in the job ledger, refusing while a live runner holds it
   (:class:`~consumers.replay.ledger.SliceHeldError`);
3. runs the slice's units through the replay job (one lease per unit, fenced by
   ``leaseCounter``; a unit finished by an earlier attempt is skipped, a half-done one
   resumes from its checkpoint) into the sink, within this slice's share of the job's rate
   caps;
4. heartbeats while it runs: renews its claim, adds its counters to the ledger and
   re-divides the caps among the slices that are running now;
5. records ``done``, or ``failed`` with the error's type, and gives the slice up.

A runner that dies without a word (SIGKILL, a lost machine) leaves its claim to expire after
``lease_seconds``; any machine can then run the slice again and it continues from the
checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from consumers.replay.job import ReplayJob
from consumers.replay.ledger import COUNTERS, JobLedger, SliceHeldError, new_runner_id
from consumers.replay.manifest import Manifest, Unit
from consumers.replay.ranges import RangeReader
from consumers.replay.ratecap import CappedReader, CappedSink, RecordRate
from shardline.errors import ConfigurationError, ShardlineError
from shardline.records import ConsumedRecord

if TYPE_CHECKING:
    from shardline.kafka_config import KafkaClientConfig

__all__ = ["SliceOutcome", "UnitReader", "dynamodb_settings", "run_slice"]

_log = logging.getLogger(__name__)

WallClock = Callable[[], float]


@dataclass(slots=True)
class SliceOutcome:
    """What this attempt at a slice did (counters of this attempt only)."""

    index: int
    runner: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))


class UnitReader:
    """The units of one slice as a :class:`RangeReader`: one partition per unit, named by its lease key.

    Each unit is read by the project's own range reader for its kind (the S3 archive
    reader, the Kinesis range reader over the unit's window, the Kafka range reader over the
    unit's offsets); resume tokens are theirs.
    """

    def __init__(self, units: Sequence[Unit], readers: dict[str, tuple[RangeReader, str]]) -> None:
        self.units = tuple(units)
        self._readers = readers

    def __repr__(self) -> str:
        return f"UnitReader(units={len(self.units)})"

    async def partitions(self) -> list[str]:
        return [unit.name for unit in self.units]

    async def read(
        self, partition: str, after: str | None
    ) -> AsyncIterator[tuple[Sequence[ConsumedRecord], str]]:
        reader, inner = self._readers[partition]
        async for records, token in reader.read(inner, after):
            yield records, token


async def _unit_readers(
    manifest: Manifest, units: Sequence[Unit], stack: AsyncExitStack
) -> dict[str, tuple[RangeReader, str]]:
    """A range reader per unit, sharing one client per service."""
    from consumers.kinesis.session import reader_client
    from shardline.clients import aiobotocore_client

    clients: dict[str, Any] = {}

    async def client(service: str) -> Any:
        if service not in clients:
            # a Kinesis reader's client decodes what Kinesis answers as the source's does
            made = reader_client() if service == "kinesis" else aiobotocore_client(service)
            clients[service] = await stack.enter_async_context(made)
        return clients[service]

    readers: dict[str, tuple[RangeReader, str]] = {}
    kafka: KafkaClientConfig | None = None
    for unit in units:
        if unit.kind == "s3":
            from consumers.replay.ranges import S3ArchiveReader

            assert unit.bucket is not None and unit.key is not None
            readers[unit.name] = (S3ArchiveReader(await client("s3"), unit.bucket), unit.key)
        elif unit.kind == "kinesis":
            from consumers.replay.kinesis_range import KinesisRange, KinesisRangeReader

            assert unit.stream is not None and unit.shard is not None and unit.end_time is not None
            window = KinesisRange(
                start_time=None if unit.start_sequence or unit.start_time is None else _time(unit.start_time),
                end_time=_time(unit.end_time),
                start_sequence=unit.start_sequence,
            )
            kinesis = KinesisRangeReader(
                await client("kinesis"),
                unit.stream,
                window,
                shard_ids=[unit.shard],
                calls_per_second=manifest.caps.kinesis_calls_per_second,
            )
            readers[unit.name] = (kinesis, unit.shard)
        else:
            from consumers._kafka_replay import OffsetRange
            from consumers.replay.kafka_range import KafkaRangeReader
            from consumers.replay.plan import kafka_source_client

            assert unit.topic is not None and unit.partition is not None
            assert unit.start_offset is not None and unit.end_offset is not None
            if kafka is None:  # the source's ?security=: one client setting for every unit
                kafka = kafka_source_client(manifest.source)
            offsets = OffsetRange(unit.topic, unit.partition, unit.start_offset, unit.end_offset)
            readers[unit.name] = (KafkaRangeReader([offsets], kafka), offsets.name)
    return readers


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def dynamodb_settings(uri: str) -> tuple[str | None, str | None]:
    """``endpoint_url`` and ``region_name`` of a ``dynamodb://TABLE?...`` checkpoint URI (or ``None``)."""
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query))
    return query.get("endpoint_url"), query.get("region_name")


def _check_store(manifest: Manifest) -> None:
    if urlsplit(manifest.checkpoint).scheme != "dynamodb":
        raise ConfigurationError(
            "a sliced replay keeps its progress in a shared store: --checkpoint dynamodb://TABLE"
        )


def _check_destinations(manifest: Manifest) -> None:
    """Refuse a sink, dead letter or transform no runner can use before the ledger is touched.

    Found only once the slice was claimed, such a manifest (edited by hand, its hash
    recomputed) had already bound the job's namespace to its hash, so the corrected manifest
    was refused from then on with ``ManifestMismatchError``, and the slice recorded as failed.
    Building them makes no network call.
    """
    from consumers.sinks.uri import dead_letter_from_uri, sink_from_uri

    checks: list[tuple[str, Callable[[], object]]] = [("sink", lambda: sink_from_uri(manifest.sink))]
    dead_letter, transform = manifest.dead_letter, manifest.transform
    if dead_letter:
        checks.append(("dead_letter", lambda: dead_letter_from_uri(dead_letter)))
    if transform:
        from consumers._pipeline_transform import load_transform

        checks.append(("transform", lambda: load_transform(transform)))
    for name, check in checks:
        try:
            check()
        except ConfigurationError as exc:
            raise ConfigurationError(f"manifest {name} is refused: {exc}") from exc


async def run_slice(
    manifest: Manifest,
    index: int,
    *,
    runner: str | None = None,
    clock: WallClock = time.time,
    on_progress: Callable[[str, int], None] | None = None,
    wait_held: float = 0.0,
) -> SliceOutcome:
    """Run slice ``index`` of ``manifest`` to its end (see the module docstring).

    ``wait_held``: seconds to keep trying when another runner holds the slice (a retried
    AWS Batch child whose predecessor died waits for that one's lease to expire); 0 refuses
    at once.
    """
    from consumers.checkpoint.dynamodb import DynamoDBCheckpointStore
    from consumers.checkpoint.uri import open_checkpoint_store
    from shardline.clients import aiobotocore_client

    piece = manifest.slice(index)
    _check_store(manifest)
    _check_destinations(manifest)
    runner = runner or new_runner_id()
    outcome = SliceOutcome(index, runner)
    async with AsyncExitStack() as stack:
        endpoint_url, region_name = dynamodb_settings(manifest.checkpoint)
        dynamodb = await stack.enter_async_context(
            aiobotocore_client("dynamodb", endpoint_url=endpoint_url, region_name=region_name)
        )
        store = open_checkpoint_store(manifest.checkpoint, namespace=manifest.namespace, client=dynamodb)
        stack.push_async_callback(store.close)
        assert isinstance(store, DynamoDBCheckpointStore)  # _check_store made sure
        await store.prepare()  # the lease table exists from here on (created if the URI asks)
        ledger = JobLedger(dynamodb, store.table_name)
        await ledger.bind(manifest.hash, manifest.name, len(manifest.slices))
        await _claim(ledger, index, runner, manifest.lease_seconds, clock, wait_held)
        _log.info("slice claimed", extra={"slice": index, "runner": runner, "units": len(piece.units)})
        flushed = dict.fromkeys(COUNTERS, 0)
        try:
            await _run_claimed(
                manifest, index, runner, store, ledger, stack, clock, outcome, flushed, on_progress
            )
        except BaseException as exc:
            reason = _failure_reason(exc)
            try:
                await ledger.finish(
                    index,
                    runner,
                    state="failed",
                    now=clock(),
                    counts=_delta(outcome.counts, flushed),
                    error=reason,
                )
            except (ShardlineError, OSError):
                _log.warning("could not record the slice's failure", extra={"slice": index}, exc_info=True)
            raise
        await ledger.finish(index, runner, state="done", now=clock(), counts=_delta(outcome.counts, flushed))
    return outcome


def _failure_reason(error: BaseException) -> str:
    """What ``status`` shows for a failed attempt: never an exception's text unless Shardline wrote it."""
    if isinstance(error, ShardlineError):
        return f"{type(error).__name__}: {error}"
    if isinstance(error, asyncio.CancelledError | KeyboardInterrupt):
        return "interrupted (Ctrl-C or SIGTERM): run the slice again to resume it"
    return type(error).__name__


async def _claim(
    ledger: JobLedger, index: int, runner: str, lease_seconds: float, clock: WallClock, wait_held: float
) -> None:
    """Claim the slice, retrying until ``wait_held`` seconds passed while a live runner holds it."""
    deadline = clock() + wait_held
    while True:
        try:
            await ledger.claim(index, runner, lease_seconds=lease_seconds, now=clock())
            return
        except SliceHeldError:
            left = deadline - clock()
            if left <= 0:
                raise
            await asyncio.sleep(min(left, max(0.5, lease_seconds / 3)))


async def _run_claimed(
    manifest: Manifest,
    index: int,
    runner: str,
    store: Any,
    ledger: JobLedger,
    stack: AsyncExitStack,
    clock: WallClock,
    outcome: SliceOutcome,
    flushed: dict[str, int],
    on_progress: Callable[[str, int], None] | None,
) -> None:
    from consumers.sinks.uri import dead_letter_from_uri

    piece = manifest.slice(index)
    everyone = range(len(manifest.slices))
    live = max(1, await ledger.live_slices(everyone, clock()))
    read_rate = RecordRate(_share(manifest.caps.read_records_per_second, live))
    write_rate = RecordRate(_share(manifest.caps.write_records_per_second, live))
    units = UnitReader(piece.units, await _unit_readers(manifest, piece.units, stack))
    dead_letter = dead_letter_from_uri(manifest.dead_letter) if manifest.dead_letter else None
    if dead_letter is not None:
        stack.push_async_callback(dead_letter.close)
    transform = None
    if manifest.transform:
        from consumers._pipeline_transform import load_transform

        transform = load_transform(manifest.transform)
    job, sink = _replay_job(
        manifest,
        CappedReader(units, read_rate),
        write_rate,
        store,
        runner=runner,
        dead_letter=dead_letter,
        transform=transform,
        on_read=lambda partition, count: _read(outcome, on_progress, partition, count),
    )
    stack.push_async_callback(sink.close)

    def snapshot() -> None:
        outcome.counts.update(_live_counts(job))

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(manifest.lease_seconds / 3)
            snapshot()
            delta = _delta(outcome.counts, flushed)
            await ledger.heartbeat(
                index, runner, lease_seconds=manifest.lease_seconds, now=clock(), counts=delta
            )
            flushed.update(outcome.counts)
            running = max(1, await ledger.live_slices(everyone, clock()))
            read_rate.set_rate(_share(manifest.caps.read_records_per_second, running))
            write_rate.set_rate(_share(manifest.caps.write_records_per_second, running))

    beating = asyncio.create_task(heartbeat(), name=f"replay-slice-{index}-heartbeat")
    working = asyncio.create_task(job.run(), name=f"replay-slice-{index}")
    try:
        done, _ = await asyncio.wait({beating, working}, return_when=asyncio.FIRST_COMPLETED)
        if beating in done:  # the claim was lost (or the ledger failed): stop writing at once
            working.cancel()
            await asyncio.gather(working, return_exceptions=True)
            beating.result()
        summary = working.result()
    finally:
        for task in (beating, working):
            task.cancel()
        await asyncio.gather(beating, working, return_exceptions=True)
        snapshot()  # a failed attempt records what it wrote too (run_slice adds it as it fails)
    outcome.counts["read"] = max(outcome.counts["read"], summary.read)


def _read(
    outcome: SliceOutcome, on_progress: Callable[[str, int], None] | None, partition: str, count: int
) -> None:
    outcome.counts["read"] += count
    if on_progress is not None:
        on_progress(partition, count)


def _share(cap: float | None, running: int) -> float | None:
    return None if cap is None else cap / running


def _delta(counts: dict[str, int], flushed: dict[str, int]) -> dict[str, int]:
    return {name: counts[name] - flushed[name] for name in COUNTERS}


def _replay_job(
    manifest: Manifest,
    reader: RangeReader,
    write_rate: RecordRate,
    store: Any,
    *,
    runner: str,
    dead_letter: Any,
    transform: Any,
    on_read: Callable[[str, int], None],
) -> tuple[ReplayJob, CappedSink]:
    """The replay job over ``reader``: the one pipeline (transform, retries, bisection, dead letters)."""
    from consumers.sinks.uri import sink_from_uri

    sink = CappedSink(sink_from_uri(manifest.sink), write_rate)
    job = ReplayJob(
        reader,
        sink,
        store,
        owner=runner,
        concurrency=manifest.concurrency,
        on_progress=on_read,
        transform=transform,
        dead_letter=dead_letter,
    )
    return job, sink


def _live_counts(job: ReplayJob) -> dict[str, int]:
    """Written, duplicates and dead-lettered so far, from the job's pipeline.

    The pipeline's stats are brought up to date first (it does so on its own only when its run
    ends), so each heartbeat adds what this attempt wrote so far: a killed or taken-over
    attempt loses only the counts of its last heartbeat interval.
    """
    stats = job.pipeline.sync_stats()
    return {
        "written": stats.records_out - stats.duplicates,
        "duplicates": stats.duplicates,
        "dead_lettered": stats.dead_lettered,
    }
