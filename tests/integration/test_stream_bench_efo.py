"""``--consumer efo`` measured where the target has SubscribeToShard: ``--target kinesis`` on kinesis-mock.

The standard AWS configuration (``AWS_ENDPOINT_URL_KINESIS``) points ``--target kinesis`` at
kinesis-mock, the emulator with enhanced fan-out.  kinesis-mock's event stream lacks AWS's
initial-response event; the test process tolerates that (``efo_compat``), shipped code does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.result import validate_result
from tests.integration.efo_compat import tolerate_missing_initial_response

pytestmark = pytest.mark.integration


def test_fan_out_consumer_reads_every_record_on_a_kinesis_target(
    kinesis_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", kinesis_endpoint)
    with tolerate_missing_initial_response():
        code = main(
            [
                "run",
                "--target",
                "kinesis",
                "--consumer",
                "efo",
                "--duration",
                "3",
                "--rate",
                "100",
                "--shards",
                "2",
                "--out",
                str(tmp_path),
            ]
        )
    assert code == 0
    result = json.loads((tmp_path / "result.json").read_text())
    validate_result(result)
    summary = result["summary"]
    assert result["config"]["consumer"] == "efo"
    assert summary["records_acked"] == summary["records_sent"] == 300
    assert summary["consumer_records"] == 300  # pushed through SubscribeToShard, every record
    assert summary["end_to_end_ms"]["count"] == 300
    assert any("fan-out" in note for note in result["notes"])
    assert result["gateway"] is None  # no local gateway in front of a kinesis target
