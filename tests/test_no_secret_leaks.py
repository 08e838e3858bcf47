"""The canary: a recognisable fake secret must never come back out of the project.

The canary is planted as the AWS secret key and session token, as a SASL/SCRAM password, as an
MSK IAM token, as the password of URLs (sink URIs, AWS endpoints, ``kafka://`` targets) and as
record payloads.  Everything the project prints, logs (message and extra
fields), raises or shows in a ``repr`` is then searched for it.  The consumer's failure paths
(a failing transform, a sink rejecting with an echoed payload, a poison record, a dead-letter
destination that fails) run too: their reasons may quote the payload, and must reach only the
dead-letter entry.  Extend :func:`test_project_output_never_contains_the_canary`'s
scenarios as features land.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from consumers.pipeline import Pipeline, PipelineConfig
from consumers.sinks.base import DeadLetterEntry, EntryResult
from consumers.sinks.deadletter import MemoryDeadLetter
from consumers.sinks.memory import MemorySink
from consumers.source import SourceBatch
from shardline.errormap import from_botocore, from_error_code
from shardline.errors import SerializationError, ShardlineError
from shardline.kafka_config import KafkaClientConfig, MskIam, MskIamTokenProvider, Scram
from shardline.local import processes
from shardline.local.environment import export_lines, stack_environment
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition, Record

CANARY = "CANARY-SECRET-d3adb33f"
PROJECT_LOGGERS = ("shardline", "producers", "consumers", "benchmarks")


class _Capture(logging.Handler):
    """Keeps every record (formatted, with any traceback) emitted anywhere during a test."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def project_lines(self) -> list[str]:
        return [
            f"{self.format(record)} {_extra_fields(record)!r}"
            for record in self.records
            if record.name.startswith(PROJECT_LOGGERS)
        ]


_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What a JSON log formatter would print besides the message."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Capture]:
    """The canary planted in the AWS environment, with DEBUG logging captured everywhere."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", CANARY)
    capture = _Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(previous)


def _canary_signer(region: str) -> tuple[str, int]:
    return CANARY, 4_102_444_800_000  # expiry in ms, as the MSK signer reports it


def _invalid_signature_error() -> ClientError:
    # What AWS answers to a bad signature: the canonical request echoed back, headers and all.
    message = (
        "The request signature we calculated does not match the signature you provided.\n\n"
        "The Canonical String for this request should have been\n'POST\n/\n\n"
        f"host:kinesis.us-east-1.amazonaws.com\nx-amz-security-token:{CANARY}\n'"
    )
    return ClientError({"Error": {"Code": "InvalidSignatureException", "Message": message}}, "PutRecords")


def _reprs_of_values() -> list[str]:
    payload = CANARY.encode()
    values: list[object] = [
        Record(data=payload, partition_key="device-1", headers={"h": payload}),
        ConsumedRecord(
            data=payload,
            partition_key="device-1",
            position=KinesisPosition("stream", "shardId-000000000000", "1"),
            arrival_time=datetime(2024, 1, 1, tzinfo=UTC),
            headers={"h": payload},
        ),
        ConsumedRecord(data=payload, partition_key="k", position=KafkaPosition("topic", 0, 7)),
        Scram(username="user", password=CANARY),
        KafkaClientConfig(bootstrap_servers="127.0.0.1:9092", security=Scram(username="u", password=CANARY)),
    ]
    provider = MskIamTokenProvider("us-east-1", signer=_canary_signer)
    token, _ = provider.oauth_cb()
    assert token == CANARY  # the provider really holds the canary
    values += [provider, MskIam(token_provider=provider)]
    return [text for value in values for text in (repr(value), str(value))]


def _error_messages() -> list[str]:
    errors: list[BaseException] = [
        from_botocore(_invalid_signature_error(), service="kinesis"),
        from_error_code(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        ),
    ]
    return [text for error in errors for text in (str(error), repr(error), str(error.args))]


def _local_stack_output() -> list[str]:
    env = stack_environment(kinesis="http://127.0.0.1:1", aws="http://127.0.0.1:2", kafka="127.0.0.1:3")
    child_env = processes._child_env({})
    return [*export_lines(env), *(f"{key}={value}" for key, value in child_env.items())]


# --- the consumer's failure paths ----------------------------------------------------------------


class _OneBatch:
    """A source of one batch of records whose payloads carry the canary."""

    def __init__(self, records: Sequence[ConsumedRecord]) -> None:
        self._records = list(records)

    async def batches(self) -> AsyncIterator[SourceBatch]:
        yield SourceBatch("shardId-000000000000", self._records)

    async def checkpoint(self, partition: str, position: Any) -> bool:
        return True

    async def checkpoint_end(self, partition: str) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def close(self, timeout: float | None = None) -> None:
        return None


def _canary_records(count: int) -> list[ConsumedRecord]:
    return [
        ConsumedRecord(
            data=f'{{"secret": "{CANARY}", "n": {i}}}'.encode(),
            partition_key="device-1",
            position=KinesisPosition("stream", "shardId-000000000000", str(i)),
        )
        for i in range(1, count + 1)
    ]


class _EchoingSink(MemorySink):
    """Rejects record 2 quoting its payload (as InfluxDB echoes a refused line); the record
    starting with ``{"poison"`` cannot be encoded, and the error quotes it."""

    name = "echoing"

    def encode(self, record: ConsumedRecord) -> ConsumedRecord:
        if record.position.identity.endswith("/3/0"):
            raise SerializationError(f"cannot encode {record.data.decode()}")
        return record

    async def send(self, entries: Sequence[ConsumedRecord]) -> Sequence[EntryResult]:
        results = list(await super().send(entries))
        for index, entry in enumerate(entries):
            if entry.position.identity.endswith("/2/0"):
                results[index] = EntryResult.rejected(f"unable to parse '{entry.data.decode()}'", "HTTP400")
        return results


class _BrokenDeadLetter:
    async def put(self, entries: Sequence[DeadLetterEntry]) -> None:
        raise ShardlineError(f"cannot store {entries[0].record.data.decode()}", retriable=False)

    async def close(self) -> None:
        return None


def _failing_transform(record: ConsumedRecord) -> ConsumedRecord:
    if record.position.identity.endswith("/1/0"):
        raise ValueError(f"transform choked on {record.data.decode()}")
    return record


def _consumer_failure_paths() -> list[str]:
    async def run(dead_letter: Any) -> list[str]:
        pipeline = Pipeline(
            _OneBatch(_canary_records(4)),
            _EchoingSink(),
            config=PipelineConfig(checkpoint_interval=3600),
            dead_letter=dead_letter,
            transform=_failing_transform,
        )
        try:
            stats = await asyncio.wait_for(pipeline.run(), 10)
        except ShardlineError as exc:
            return [str(exc), repr(exc), str(exc.args)]
        return [repr(stats), repr(pipeline)]

    dead = MemoryDeadLetter()
    produced = asyncio.run(run(dead))
    # the full reasons are in the dead-letter entries, and only there
    assert len(dead.entries) == 3
    assert all(CANARY in entry.reason for entry in dead.entries.values())
    produced += [repr(entry) for entry in dead.entries.values()]
    produced += asyncio.run(run(_BrokenDeadLetter()))
    return produced


def _trust_boundary_output() -> list[str]:
    """Event-id keys, pass-through dicts and InfluxDB credentials, in reprs and refusals."""
    from consumers.kafka import KafkaConsumerConfig
    from consumers.sinks.influxdb import InfluxDBSink
    from producers.kafka import KafkaProducerConfig
    from shardline.aggregation import DeaggregationPolicy
    from shardline.errors import ConfigurationError
    from shardline.eventid import EventIdKey

    key = EventIdKey(CANARY * 2)
    out = [
        repr(key),
        repr(DeaggregationPolicy(event_id_key=key)),
        repr(KafkaProducerConfig(librdkafka={"client.rack": CANARY}, event_id_key=key)),
        repr(KafkaConsumerConfig("g", librdkafka={"client.rack": CANARY}, event_id_key=key)),
        repr(InfluxDBSink(f"https://admin:{CANARY}@influx.example.com", database="iot", token=CANARY)),
    ]
    for build in (
        lambda: KafkaProducerConfig(librdkafka={"sasl.password": CANARY}),
        lambda: InfluxDBSink(f"http://admin:{CANARY}@influx.example.com", database="iot"),
        lambda: InfluxDBSink("http://influx.example.com", org="o", bucket="b", token=CANARY),
    ):
        try:
            build()
        except ConfigurationError as exc:
            out.append(str(exc))
    return out


def _url_user_info_output() -> list[str]:
    """The canary as the password of every URL the project takes: sink and dead-letter URIs
    (percent-encoded, as a password with ``/`` or ``#`` must be), AWS endpoints, ``kafka://``
    targets and stream-bench results; reprs, refusals and result blocks are searched."""
    import json

    from benchmarks.environment import environment
    from consumers.cli import parse_kafka_uri
    from consumers.sinks.awsclient import LazyClient
    from consumers.sinks.uri import sink_from_uri
    from producers.cli import _parse_target
    from shardline.clients import boto3_client
    from shardline.errors import ConfigurationError

    encoded = "12%2F" + CANARY  # "12/CANARY": a decoded "/" once moved the host into the password
    out = [
        repr(sink_from_uri(f"influxdb+https://admin:{encoded}@influx.example.com:8086/iot")),
        repr(LazyClient("s3", endpoint_url=f"https://admin:{CANARY}@s3.example.com")),
        json.dumps(environment("Kinesis", f"https://admin:{CANARY}@kinesis.example.com", "eu-west-1")),
    ]
    refused: list[Callable[[], object]] = [
        lambda: sink_from_uri(f"influxdb://admin:{encoded}@influx.example.com:8086/iot"),
        lambda: boto3_client("kinesis", region_name="us-east-1", endpoint_url=f"https://a:{CANARY}@bad host"),
        lambda: boto3_client("kinesis", region_name="us-east-1", endpoint_url=f"http://a:{CANARY}@10.0.0.1"),
        lambda: parse_kafka_uri(f"kafka://admin:{CANARY}@b-1.example.com:9096/t?group=g"),
        lambda: _parse_target(f"kafka://admin:{CANARY}@b-1.example.com:9096/t1,t2"),
    ]
    for build in refused:
        try:
            build()
        except ConfigurationError as exc:
            out += [str(exc), repr(exc)]
        else:
            raise AssertionError("a URL with the canary as its password was not refused")
    return out


SCENARIOS: dict[str, Callable[[], list[str]]] = {
    "URL user info: sink URIs, AWS endpoints, kafka:// targets, bench results": _url_user_info_output,
    "consumer failure paths: transform, echoed rejection, poison, dead letter failing": (
        _consumer_failure_paths
    ),
    "event-id keys, pass-through dicts and InfluxDB credentials": _trust_boundary_output,
    "reprs of records and Kafka security settings": _reprs_of_values,
    "translated service errors": _error_messages,
    "local stack exports and server environments": _local_stack_output,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_project_output_never_contains_the_canary(planted: _Capture, scenario: str) -> None:
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == CANARY
    produced = SCENARIOS[scenario]()
    assert produced, "the scenario produced nothing to search"
    leaked = [text for text in [*produced, *planted.project_lines()] if CANARY in text]
    assert leaked == []


def test_the_canary_search_would_notice_a_leak(planted: _Capture) -> None:
    logging.getLogger("shardline.canary-self-test").debug("secret=%s", CANARY)
    assert any(CANARY in line for line in planted.project_lines())
