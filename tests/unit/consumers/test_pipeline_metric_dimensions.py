"""The pipeline's metrics name the stream (or topic) and sink they are about.

Exporters send only the dimensions stream, shard, sink and topic by default; reported with
``partition`` alone, every consumer's records_in, iterator age and dead letters landed in one
dimensionless CloudWatch series, and an operator could not tell which consumer fell behind.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Sequence
from typing import Any

from consumers._kafka_messages import lazy_batches, to_batches
from consumers.adapters._batch import process_batch
from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.kinesis import KinesisSource, ReaderConfig
from consumers.pipeline import Pipeline, PipelineConfig
from consumers.source import SourceBatch, names_of
from shardline.errors import CheckpointError, ValidationError
from shardline.exporters import EmfExporter
from shardline.metrics_events import CATALOGUE
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition, Position
from shardline.retry import RetryPolicy
from tests.unit.consumers.kinesis.test_kinesis_polling_unit import FakeKinesis
from tests.unit.consumers.pipeline_doubles import EventLog, RecordingDeadLetter, RecordingSink, ScriptedSource

NO_WAIT = RetryPolicy(max_attempts=None, deadline=None, initial_backoff=0.0, max_backoff=0.0)
FAST = PipelineConfig(checkpoint_interval=3600, sink_retry=NO_WAIT)
SHARD = "shardId-000000000000"
PIPELINE_EVENTS = (
    "records_in",
    "records_out",
    "iterator_age_ms",
    "dead_lettered",
    "checkpoint_lag",
    "checkpoint_errors",
    "checkpoints_written",
)


def _kinesis_batch(stream: str, first: int, count: int, *, millis_behind: int | None = None) -> SourceBatch:
    records = [
        ConsumedRecord(b"x", "k", KinesisPosition(stream, SHARD, str(sequence)))
        for sequence in range(first, first + count)
    ]
    return SourceBatch(SHARD, records, millis_behind_latest=millis_behind, stream=stream)


class _FirstCheckpointFails(ScriptedSource):
    """The checkpoint store is unavailable once (checkpoint_errors), then fine."""

    def __init__(self, batches: Sequence[SourceBatch]) -> None:
        super().__init__(batches)
        self._failed = False

    async def checkpoint(self, partition: str, position: Position) -> bool:
        if not self._failed:
            self._failed = True
            raise CheckpointError("checkpoint table unavailable", retriable=True)
        return await super().checkpoint(partition, position)


def _rejects_poison(records: Sequence[ConsumedRecord]) -> BaseException | None:
    return ValidationError("rejected") if any(r.data == b"poison" for r in records) else None


class _NamedSink(RecordingSink):
    name = "dynamodb"


async def _run_into(exporter: Any, stream: str, *, millis_behind: int, count: int = 3) -> None:
    """One pipeline on ``stream``: ``count`` records in, one of them dead-lettered, one failed checkpoint."""
    batch = _kinesis_batch(stream, 1, count, millis_behind=millis_behind)
    poison = ConsumedRecord(b"poison", "k", batch.records[0].position)
    batch = SourceBatch(
        SHARD, [poison, *batch.records[1:]], millis_behind_latest=millis_behind, stream=stream
    )
    source = _FirstCheckpointFails([batch])
    pipeline = Pipeline(
        source,
        _NamedSink(_rejects_poison),
        config=FAST,
        dead_letter=RecordingDeadLetter(),
        observer=exporter,
    )
    await pipeline.run()
    # the final pass failed (checkpoint_errors); one more pass reports the lag it caught up
    await pipeline._checkpoint_pass()


def _documents(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _dimension_sets(document: dict[str, Any]) -> list[list[str]]:
    dimension_sets: list[list[str]] = document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    return dimension_sets


async def test_every_pipeline_event_is_exported_under_the_stream_it_is_about() -> None:
    out = io.StringIO()
    exporter = EmfExporter(stream=out)
    await _run_into(exporter, "orders", millis_behind=1500)
    exporter.flush()
    documents = _documents(out)

    for event in PIPELINE_EVENTS:
        metric = CATALOGUE[event].cloudwatch_name
        carrying = [document for document in documents if metric in document]
        assert carrying, f"{event} was not exported"
        for document in carrying:
            assert document.get("Stream") == "orders", f"{event} exported without its stream: {document}"
            assert all(dimensions[:1] == ["Stream"] for dimensions in _dimension_sets(document))
    (dead,) = [document for document in documents if "DeadLettered" in document]
    assert (dead["Stream"], dead["Sink"], dead["DeadLettered"]) == ("orders", "dynamodb", 1)
    assert ["Stream", "Sink"] in _dimension_sets(dead)


async def test_two_pipelines_on_different_streams_write_distinct_series() -> None:
    out = io.StringIO()
    exporter = EmfExporter(stream=out)
    await asyncio.gather(
        _run_into(exporter, "orders", millis_behind=1_000, count=3),
        _run_into(exporter, "payments", millis_behind=90_000, count=5),
    )
    exporter.flush()
    by_stream: dict[str, dict[str, Any]] = {}
    for document in _documents(out):
        if document.get("Stream") is None:
            assert not any(CATALOGUE[event].cloudwatch_name in document for event in PIPELINE_EVENTS)
            continue
        dimensions = _dimension_sets(document)
        if ["Stream"] in dimensions:  # the per-stream series (dead letters: also per sink)
            by_stream.setdefault(document["Stream"], {}).update(document)

    assert by_stream["orders"]["RecordsIn"] == 3
    assert by_stream["payments"]["RecordsIn"] == 5
    assert by_stream["orders"]["IteratorAgeMilliseconds"]["Max"] == 1_000
    assert by_stream["payments"]["IteratorAgeMilliseconds"]["Max"] == 90_000
    assert by_stream["orders"]["DeadLettered"] == by_stream["payments"]["DeadLettered"] == 1


async def test_a_kafka_partition_is_reported_under_its_topic() -> None:
    records = [ConsumedRecord(b"x", "k", KafkaPosition("telemetry", 3, offset)) for offset in range(2)]
    source = ScriptedSource([SourceBatch("telemetry/3", records, topic="telemetry")])
    observer = EventLog()
    await Pipeline(source, RecordingSink(), config=FAST, observer=observer).run()
    assert ("records_in", 2, {"partition": "telemetry/3", "topic": "telemetry"}) in observer.events
    assert ("records_out", 2, {"partition": "telemetry/3", "topic": "telemetry"}) in observer.events


async def test_a_source_that_does_not_know_its_stream_reports_no_stream_at_all() -> None:
    records = [ConsumedRecord(b"x", "k", KinesisPosition("", SHARD, "1"))]
    source = ScriptedSource([SourceBatch(SHARD, records, millis_behind_latest=0, stream="")])
    out = io.StringIO()
    exporter = EmfExporter(stream=out)
    observer = EventLog()

    class Both:
        def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
            observer.on_event(name, value, **dimensions)
            exporter.on_event(name, value, **dimensions)

    await Pipeline(source, RecordingSink(), config=FAST, observer=Both()).run()
    exporter.flush()
    assert {key for _, _, dimensions in observer.events for key in dimensions} == {"partition"}
    assert "None" not in out.getvalue()


def test_kafka_batches_name_their_topic() -> None:
    from confluent_kafka import Message

    messages = [Message(topic="telemetry", partition=1, offset=0, key=b"k", value=b"v", timestamp=(1, 1))]
    for batches in (to_batches(messages), lazy_batches(messages)):
        assert [(batch.partition, batch.stream, batch.topic) for batch in batches] == [
            ("telemetry/1", None, "telemetry")
        ]


class _CountingSink(RecordingSink):
    """Sets ``filled`` once ``expected`` records are written."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.filled = asyncio.Event()

    async def write(self, batch: Sequence[ConsumedRecord]) -> None:
        await super().write(batch)
        if len(self.written) >= self.expected:
            self.filled.set()


async def test_a_kinesis_consumer_is_exported_under_its_stream() -> None:
    """End to end: the Kinesis source names its stream, the pipeline reports under it."""
    source = KinesisSource(
        "orders",
        store=MemoryCheckpointStore(),
        owner="A",
        client=FakeKinesis([("k", b"x")] * 3),
        config=ReaderConfig(lease_renew_interval=0.05, shard_discovery_interval=0.05),
    )
    sink = _CountingSink(3)
    out = io.StringIO()
    exporter = EmfExporter(stream=out)
    pipeline = Pipeline(source, sink, config=FAST, observer=exporter)
    running = asyncio.create_task(pipeline.run())
    try:
        await asyncio.wait_for(sink.filled.wait(), 5.0)
    finally:
        await asyncio.wait_for(pipeline.close(), 5.0)
        await running
    exporter.flush()
    pipeline_metrics = ("RecordsIn", "RecordsOut", "CheckpointLag")
    documents = [d for d in _documents(out) if any(metric in d for metric in pipeline_metrics)]
    assert documents
    assert all(document.get("Stream") == "orders" for document in documents), documents
    assert sum(document.get("RecordsIn", 0) for document in documents) == 3


def test_records_name_the_stream_or_topic_of_their_batch() -> None:
    assert names_of(KinesisPosition("orders", SHARD, "1")) == ("orders", None)
    assert names_of(KafkaPosition("telemetry", 0, 5)) == (None, "telemetry")
    assert names_of(KinesisPosition("", SHARD, "1")) == (None, None)  # a KCL worker told no name


async def test_batches_handed_over_by_an_engine_are_reported_under_their_stream() -> None:
    """The Lambda and KCL adapters hand records only: their positions name the stream."""
    observer = EventLog()
    records = [ConsumedRecord(b"x", "k", KinesisPosition("orders", SHARD, "1"))]
    await process_batch({SHARD: records}, RecordingSink(), observer=observer, millis_behind_latest=7)
    assert ("iterator_age_ms", 7, {"partition": SHARD, "stream": "orders"}) in observer.events
    assert ("records_in", 1, {"partition": SHARD, "stream": "orders"}) in observer.events
