"""A payload cannot choose the ``Version`` of its Timestream records: it comes from the record's
position (or the mapping's version field), and a rejection naming a version at least ours is
the table already holding this write (or a newer one), not a failure."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from consumers.sinks.base import Outcome
from consumers.sinks.mapping import FieldMapping
from consumers.sinks.timestream import TimestreamSink
from shardline.records import ConsumedRecord, KafkaPosition
from tests.unit.consumers.sinks.timestream_doubles import ValidatingTimestream

MAPPING = FieldMapping(dimensions=("device",), time_field="ts")


def _record(offset: int, payload: dict[str, object]) -> ConsumedRecord:
    return ConsumedRecord(json.dumps(payload).encode(), "k", KafkaPosition("t", 0, offset))


async def test_payload_fields_named_like_the_version_do_not_set_it() -> None:
    client = ValidatingTimestream()
    sink = TimestreamSink("db", "table", client=client, mapping=MAPPING)
    crafted = {"device": "d", "ts": 1, "Version": 2**62, "version": 2**62, "temp": 1.0}
    await sink.write([_record(6, crafted)])
    (written,) = client.records
    assert written["Version"] == 7  # offset + 1
    assert {m["Name"] for m in written["MeasureValues"]} == {"Version", "version", "temp"}


async def test_a_newer_version_held_by_the_table_makes_a_replay_a_duplicate() -> None:
    class HoldsNewer(ValidatingTimestream):
        async def write_records(self, **params: object) -> dict[str, object]:
            error = {"Code": "RejectedRecordsException", "Message": "rejected"}
            rejected = [{"RecordIndex": 0, "Reason": "version", "ExistingVersion": 2**62}]
            raise ClientError({"Error": error, "RejectedRecords": rejected}, "WriteRecords")  # type: ignore[typeddict-unknown-key]

    sink = TimestreamSink("db", "table", client=HoldsNewer(), mapping=MAPPING)
    results = await sink.write([_record(6, {"device": "d", "ts": 1, "temp": 1.0})])
    assert [r.outcome for r in results] == [Outcome.DUPLICATE]
