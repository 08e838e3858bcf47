"""Parsing Kinesis response bodies in-process: botocore's shape walk against Shardline's parsers.

The same 200 bodies go through botocore's JSON parser (with the reader's own blob and
timestamp parsers, as a ``KinesisSource`` client has them) and through
:func:`~consumers.kinesis.reader_bodies.parse_get_records` /
:func:`~producers.put_records_body.parse_put_records`, and one SubscribeToShard event through
botocore's event-stream parser and :func:`~consumers.kinesis.reader_bodies.parse_subscribe_event`;
each figure is the best of five timed loops, per response and per entry.  No network: this
isolates the parse a reader pays per GetRecords response or fan-out event and a producer per
PutRecords response.

    python -m benchmarks.peers.kinesis_parse
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import timeit
from collections.abc import Callable
from functools import partial
from typing import Any

import botocore.session
from botocore.parsers import EventStreamJSONParser, ResponseParserFactory

from consumers.kinesis.reader_bodies import blob, parse_get_records, parse_subscribe_event, utc_timestamp
from producers.put_records_body import parse_put_records

__all__ = ["event_body", "get_records_body", "main", "put_records_body"]

_FIRST_SEQUENCE = 49680830206321283922654447791947863171657290630343688194


def get_records_body(records: int, size: int) -> bytes:
    """A GetRecords body of ``records`` random payloads of ``size`` bytes over 1,000 keys."""
    return json.dumps(
        {
            "Records": [
                {
                    "SequenceNumber": str(_FIRST_SEQUENCE + i),
                    "ApproximateArrivalTimestamp": 1796388677.7 + i / 1000,
                    "Data": base64.b64encode(os.urandom(size)).decode(),
                    "PartitionKey": f"device-{i % 1000}",
                    "EncryptionType": "NONE",
                }
                for i in range(records)
            ],
            "NextShardIterator": "A" * 280,
            "MillisBehindLatest": 0,
        }
    ).encode()


def event_body(records: int, size: int) -> bytes:
    """A SubscribeToShard event of ``records`` random payloads: a GetRecords body's records."""
    event = json.loads(get_records_body(records, size))
    del event["NextShardIterator"]
    event["ContinuationSequenceNumber"] = event["Records"][-1]["SequenceNumber"] if records else "0"
    return json.dumps(event).encode()


def put_records_body(entries: int, shards: int = 64) -> bytes:
    """A PutRecords body answering ``entries`` entries over ``shards`` shards."""
    return json.dumps(
        {
            "FailedRecordCount": 0,
            "Records": [
                {"SequenceNumber": str(_FIRST_SEQUENCE + i), "ShardId": f"shardId-{i % shards:012d}"}
                for i in range(entries)
            ],
        }
    ).encode()


def _best(call: Callable[[], Any], entries: int, budget: int) -> float:
    """Seconds per call, best of five loops of about ``budget`` entries each."""
    number = max(3, budget // max(entries, 1))
    return min(timeit.repeat(call, number=number, repeat=5)) / number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers.kinesis_parse", description=__doc__)
    parser.add_argument("--budget", type=int, default=20_000, help="entries parsed per timed loop")
    args = parser.parse_args(argv)
    model = botocore.session.get_session().get_service_model("kinesis")
    factory = ResponseParserFactory()
    factory.set_parser_defaults(timestamp_parser=utc_timestamp, blob_parser=blob)
    botocore_json = factory.create_parser("json")
    events = EventStreamJSONParser(timestamp_parser=utc_timestamp, blob_parser=blob)
    stream_shape = model.operation_model("SubscribeToShard").output_shape
    assert stream_shape is not None
    event_headers = {":message-type": "event", ":event-type": "SubscribeToShardEvent"}
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], int]] = []
    for label, body, operation, ours, entries in (
        (
            "GetRecords, 1,000 plain records of 100 B",
            get_records_body(1000, 100),
            "GetRecords",
            parse_get_records,
            1000,
        ),
        ("GetRecords, 4 aggregates of 800 B", get_records_body(4, 800), "GetRecords", parse_get_records, 4),
        ("PutRecords, 61 entries", put_records_body(61), "PutRecords", parse_put_records, 61),
        ("PutRecords, 500 entries", put_records_body(500), "PutRecords", parse_put_records, 500),
    ):
        shape = model.operation_model(operation).output_shape
        assert shape is not None
        response = {"status_code": 200, "headers": {}, "body": body}
        cases.append((label, partial(botocore_json.parse, response, shape), partial(ours, body), entries))
    one_event = event_body(1000, 100)
    event = {"status_code": 200, "headers": event_headers, "body": one_event}
    cases.append(
        (
            "SubscribeToShard event, 1,000 plain records of 100 B",
            partial(events.parse, event, stream_shape.members["EventStream"]),
            partial(parse_subscribe_event, one_event),
            1000,
        )
    )
    print("| body | botocore us/response | Shardline us/response | botocore us/entry | Shardline us/entry |")
    print("|---|---|---|---|---|")
    for label, walk_call, own_call, entries in cases:
        walk = _best(walk_call, entries, args.budget)
        own = _best(own_call, entries, args.budget)
        cells = (walk * 1e6, own * 1e6, walk * 1e6 / entries, own * 1e6 / entries)
        print(f"| {label} | {cells[0]:.1f} | {cells[1]:.1f} | {cells[2]:.2f} | {cells[3]:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
