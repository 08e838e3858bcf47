"""The Lambda handler answers before the invocation times out, whatever the sink does.

Every shipped network sink is pointed at a port nothing listens on (connections are refused
over the real socket), so the pipeline waits the outage out with back-off.  The bound is the
invocation's remaining time: the context reports 20 s left and the handler keeps
``time_margin`` of them back; the margin here leaves one second of waiting, so the test is
quick while the arithmetic is the one a 20 s invocation uses.  The handler must answer with
``batchItemFailures`` naming the unwritten records from the first one, well before the 20 s
run out.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from consumers.adapters.lambda_handler import make_handler
from consumers.sinks.base import BatchingSink
from consumers.sinks.deadletter import MemoryDeadLetter
from consumers.sinks.dynamodb import DynamoDBSink
from consumers.sinks.firehose import FirehoseSink
from consumers.sinks.influxdb import InfluxDBSink
from consumers.sinks.mapping import FieldMapping
from consumers.sinks.timestream import TimestreamSink

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/telemetry"
SEQUENCES = [f"4959033827149025660855969253836157109592157598913658{n:04d}" for n in range(1, 4)]
MAPPING = FieldMapping(dimensions=("device",), measures=("temp",), time_field="ts")
REMAINING_MS = 20_000
SAFETY_MARGIN = 19.0  # waits 20 s - 19 s = 1 s for the destination


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port  # nothing listens: every connection is refused


def _sinks(port: int) -> dict[str, Callable[[], BatchingSink[Any]]]:
    url = f"http://127.0.0.1:{port}"
    return {
        "dynamodb": lambda: DynamoDBSink("readings", endpoint_url=url),
        "dynamodb-guarded": lambda: DynamoDBSink("readings", endpoint_url=url, guarded=True),
        "firehose": lambda: FirehoseSink("archive", endpoint_url=url),
        "timestream": lambda: TimestreamSink("db", "readings", mapping=MAPPING, endpoint_url=url),
        "influxdb": lambda: InfluxDBSink(url, database="iot", mapping=MAPPING),
    }


class Context:
    """A Lambda context whose remaining time runs down with the real clock."""

    def __init__(self, remaining_ms: int) -> None:
        self._ends = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._ends - time.monotonic()) * 1000))


def _event() -> dict[str, Any]:
    records = []
    for index, sequence in enumerate(SEQUENCES):
        payload = {"device": f"d{index}", "temp": 20.5 + index, "ts": 1_700_000_000_000 + index}
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": f"d{index}",
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(json.dumps(payload).encode()).decode(),
                    "approximateArrivalTimestamp": 1_700_000_000.0 + index,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/consumer",
                "awsRegion": "us-east-1",
                "eventSourceARN": ARN,
            }
        )
    return {"Records": records}


@pytest.mark.parametrize("name", sorted(_sinks(1)))
@pytest.mark.timeout(30)
def test_a_sink_at_a_closed_port_is_answered_with_the_first_record_before_the_time_runs_out(
    closed_port: int, name: str
) -> None:
    sink = _sinks(closed_port)[name]()
    dead = MemoryDeadLetter()
    handler = make_handler(sink, dead_letter=dead, time_margin=SAFETY_MARGIN)
    context = Context(REMAINING_MS)

    started = time.monotonic()
    response = handler(_event(), context)
    elapsed = time.monotonic() - started

    # every unwritten record is listed, the first one first: Lambda resumes the shard there
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in SEQUENCES]}
    assert context.get_remaining_time_in_millis() > 15_000  # answered long before the timeout
    assert elapsed >= REMAINING_MS / 1000 - SAFETY_MARGIN - 0.5  # the outage was waited out first
    assert not dead.entries  # an outage is never the records' fault
