"""The in-process parse benchmark: its bodies are what the parsers accept, and it prints a table."""

from __future__ import annotations

import pytest

from benchmarks.peers.kinesis_parse import event_body, get_records_body, main, put_records_body
from consumers.kinesis.reader_bodies import parse_get_records, parse_subscribe_event
from producers.put_records_body import parse_put_records


def test_its_bodies_take_the_fast_path() -> None:
    # a body the parsers left to botocore would time botocore twice
    parsed = parse_get_records(get_records_body(3, 10))
    assert parsed is not None and len(parsed["Records"]) == 3
    event = parse_subscribe_event(event_body(3, 10))
    assert event is not None and len(event["Records"]) == 3
    answered = parse_put_records(put_records_body(5))
    assert answered is not None and len(answered["Records"]) == 5


def test_it_prints_one_row_per_body(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--budget", "10"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 5  # the header and five bodies
