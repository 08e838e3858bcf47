"""A Kinesis peer run whose read-back did not find exactly what was sent is no figure.

Such a client did less work in its span than the others (records lost, or duplicates in
place of records), so it looks faster and cheaper: it must count in no median and no ratio,
its own or as a baseline, and the table must say it was left out.
"""

from __future__ import annotations

from typing import Any

from benchmarks.peers import kinesis, kinesis_read


def _put(client: str, cpu: float, rate: float, *, verified: bool = True) -> dict[str, Any]:
    return {
        "client": client,
        "cpu_us_per_record": cpu,
        "records_per_second": rate,
        "kinesis_entries": 10,
        "verified": verified,
        "load_1m": 1.0,
    }


def _line(table: str, client: str) -> list[str]:
    return next(line for line in table.splitlines() if line.startswith(f"| {client} |")).split(" | ")


def test_a_producer_that_lost_records_gets_no_figures_and_no_ratio() -> None:
    table = kinesis._table(
        [[_put("kinesis-agg", 5.0, 100_000), _put("shardline-batch", 2.0, 300_000, verified=False)]]
    )
    row = _line(table, "shardline-batch")
    assert row[1:8] == ["-"] * 7
    assert row[-1] == "failed: read-back found records missing |"


def test_an_unverified_repetition_is_left_out_of_medians_and_ratios_and_said_so() -> None:
    runs = [
        [_put("kinesis-agg", 4.0, 100_000), _put("shardline-batch", 2.0, 200_000)],
        # this repetition's peer lost records and looked twice as cheap
        [_put("kinesis-agg", 2.0, 300_000, verified=False), _put("shardline-batch", 2.0, 200_000)],
        [_put("kinesis-agg", 4.0, 100_000), _put("shardline-batch", 3.0, 200_000)],
    ]
    ratios = kinesis._ratios(runs)["shardline-batch"]
    assert ratios["cpu_vs_agg"] == [0.5, 0.75]
    assert ratios["cpu_vs_best"] == [0.5, 0.75]
    agg = _line(kinesis._table(runs), "kinesis-agg")
    assert agg[2] == "4.00 (4.00-4.00)"
    assert agg[-1] == "NO: 1 of 3 runs failed or lost records, left out |"
    assert _line(kinesis._table(runs), "shardline-batch")[-1] == "yes |"


def _read(reader: str, repetition: int, cpu: float, *, verified: bool = True) -> dict[str, Any]:
    return {
        "kind": "aggregated",
        "reader": reader,
        "repetition": repetition,
        "cpu_us_per_record": cpu,
        "records_per_second": 1000,
        "verified": verified,
    }


def test_a_reader_run_that_was_not_verified_is_left_out_of_the_read_table() -> None:
    runs = [
        _read("boto3-agg", 0, 3.0),
        _read("shardline", 0, 0.5, verified=False),  # duplicates reached the count early
        _read("boto3-agg", 1, 3.0),
        _read("shardline", 1, 1.5),
    ]
    summary = kinesis_read.summarise(runs)["aggregated"]
    shardline = summary["readers"]["shardline"]
    assert (shardline["runs"], shardline["ok"], shardline["unverified"]) == (2, 1, 1)
    assert shardline["cpu_us_per_record"] == {"median": 1.5, "min": 1.5, "max": 1.5}
    assert summary["shardline_vs_peer_cpu"] == {"median": 0.5, "min": 0.5, "max": 0.5}
    assert "1 run(s) NOT VERIFIED, left out" in kinesis_read.table(kinesis_read.summarise(runs))


def test_a_reader_with_no_verified_run_reads_failed() -> None:
    runs = [_read("boto3-agg", 0, 3.0), _read("shardline", 0, 0.5, verified=False)]
    summary = kinesis_read.summarise(runs)["aggregated"]
    assert summary["shardline_vs_peer_cpu"] is None
    assert "| aggregated | shardline | failed, 1 run(s) NOT VERIFIED | - | - |" in kinesis_read.table(
        kinesis_read.summarise(runs)
    )
