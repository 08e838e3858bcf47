"""The worst-case output per input byte stated in docs/security.md holds for the file sink."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from consumers.sinks.encoding import record_to_dict
from shardline._kpl_pb import AggregatedRecord
from shardline.aggregation import DEFAULT_MAX_USER_RECORDS, MAGIC, deaggregate_consumed
from shardline.records import ConsumedRecord, KinesisPosition, RefusedRecord

DOC = Path(__file__).resolve().parents[3] / "docs" / "security.md"


def _aggregate(key: str, records: int) -> bytes:
    message = AggregatedRecord()
    message.partition_key_table.append(key)
    for _ in range(records):
        message.records.add(partition_key_index=0, data=b"")
    body = message.SerializeToString()
    return MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()


def _line_bytes(record: ConsumedRecord) -> int:
    return len(json.dumps(record_to_dict(record), separators=(",", ":"), sort_keys=True)) + 1


def test_the_documented_worst_case_bounds_the_file_sink_output() -> None:
    stated = re.search(r"one input byte yields at most ~(\d+) output bytes", DOC.read_text())
    assert stated is not None, "docs/security.md states the bound"
    bound = int(stated[1])
    sequence = "49590338271490256608559692538361571095921575989136588898"  # a real one's length
    position = KinesisPosition("telemetry", "shardId-000000000000", sequence)
    worst = _aggregate("\U0001f600" * 256, DEFAULT_MAX_USER_RECORDS)  # JSON escapes each as 12 bytes
    records = deaggregate_consumed(ConsumedRecord(worst, "p", position))
    assert len(records) == DEFAULT_MAX_USER_RECORDS
    output = sum(_line_bytes(r) for r in records)
    assert output / len(worst) <= bound
    # one more record, or one more key character, and nothing is expanded
    over_cap = _aggregate("k", DEFAULT_MAX_USER_RECORDS + 1)
    [refused] = deaggregate_consumed(ConsumedRecord(over_cap, "p", position))
    assert isinstance(refused, RefusedRecord)
    [refused] = deaggregate_consumed(ConsumedRecord(_aggregate("k" * 257, 2), "p", position))
    assert isinstance(refused, RefusedRecord)
