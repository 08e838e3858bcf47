"""``stream-bench run`` end to end on the embedded local target (moto behind the limit gateway)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.cli import main
from benchmarks.result import validate_result
from shardline.errors import ShardlineError
from shardline.shardmath import partition_key_hash

pytestmark = pytest.mark.integration


def test_run_for_ten_seconds_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--duration", "10", "--rate", "300", "--shards", "2", "--out", str(tmp_path)])
    assert code == 0
    result = json.loads((tmp_path / "result.json").read_text())
    validate_result(result)
    summary = result["summary"]
    assert summary["records_sent"] == 3000
    assert summary["records_acked"] == summary["records_sent"]
    assert summary["records_failed"] == 0
    assert summary["consumer_records"] == summary["records_acked"]  # every acknowledged record was read back
    assert summary["send_to_ack_ms"]["count"] == 3000
    assert result["gateway"], "the embedded target's gateway counted the traffic"
    report = (tmp_path / "report.html").read_text()
    assert 'id="chart-heatmap"' in report
    assert (
        "interpreter lock" in result["summary"]["client_cpu_method"]
    )  # in-process: thread CPU, caveat stated
    out = capsys.readouterr()
    assert "bound by" in out.out
    assert "how client CPU was measured" in out.out
    assert f"result JSON: {(tmp_path / 'result.json').resolve()}" in out.out
    assert f"HTML report: {(tmp_path / 'report.html').resolve()}" in out.out
    assert "stream-bench" in out.err  # progress went to stderr


def test_single_hot_device_is_throttled_and_named(tmp_path: Path) -> None:
    code = main(
        [
            "run",
            "--duration",
            "5",
            "--rate",
            "1500",
            "--keys",
            "1",
            "--shards",
            "2",
            "--no-aggregate",
            "--consumer",
            "none",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "result.json").read_text())
    hot = result["hot_shards"]
    assert len(hot) == 1
    assert hot[0]["top_keys"][0]["key"] == "device-000000"
    hashed = partition_key_hash("device-000000")
    shard_ids = sorted(result["shards"])
    # Two even shards: the lower half of the hash space is the first shard.
    expected = shard_ids[0] if hashed < 2**127 else shard_ids[1]
    assert hot[0]["shard_id"] == expected
    assert hot[0]["seconds_over_limit"] >= 1


def test_embedded_target_in_a_child_process_measures_client_and_emulator_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--duration",
            "3",
            "--rate",
            "200",
            "--shards",
            "1",
            "--embedded-target-process",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "result.json").read_text())
    validate_result(result)
    summary = result["summary"]
    assert summary["records_acked"] == summary["records_sent"] == 600
    assert summary["consumer_records"] == 600
    assert "whole bench process" in summary["client_cpu_method"]
    assert summary["emulator_cpu_seconds"] is not None and summary["emulator_cpu_seconds"] > 0
    assert result["gateway"], "the child's gateway counters came back over the pipe"
    assert sum(s["accepted_records"] for s in result["gateway"].values()) >= 1
    assert "child process" in capsys.readouterr().err


def test_reduced_limits_scale_the_clients_budgets_too(tmp_path: Path) -> None:
    """At --limits-percent 10 the readers poll within the gateway's 0.5 GetRecords calls/s per
    shard and the producer paces at 10%: a simulation at a tenth of AWS's scale, not readers
    spending most of their calls on throttles."""
    code = main(
        [
            "run",
            "--duration",
            "6",
            "--rate",
            "400",
            "--shards",
            "4",
            "--skew",
            "uniform",
            "--limits-percent",
            "10",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "result.json").read_text())
    summary = result["summary"]
    assert summary["records_acked"] == summary["records_sent"] == 2400
    assert summary["consumer_records"] == summary["records_acked"]
    gateway = result["gateway"]
    answered = sum(shard["get_records_calls"] for shard in gateway.values())
    throttled = sum(shard["get_records_throttled"] for shard in gateway.values())
    # Readers at AWS's full budget against a 10% gateway had about four calls throttled for
    # each one answered; at the scaled budget only the odd collision of two equal rates is left.
    assert answered > 0
    assert throttled * 2 <= answered
    assert sum(shard["throttled_records"] for shard in gateway.values()) == 0


def _reader_that(next_batch: Callable[[], Awaitable[None]]) -> type:
    """A stand-in for PollingShardReader whose every batch is ``next_batch()``; it reports
    nothing to its observer, so it never holds a position."""

    class Reader:
        def __init__(self, *_: object, **__: object) -> None:
            pass

        def __aiter__(self) -> Reader:
            return self

        async def __anext__(self) -> None:
            await next_batch()

    return Reader


def test_a_reader_that_dies_is_named_in_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run gathered its readers and dropped their errors: a dead reader only showed as
    records written and never read."""
    import consumers.kinesis.polling

    async def dies() -> None:
        raise ShardlineError("iterator expired")

    monkeypatch.setattr(consumers.kinesis.polling, "PollingShardReader", _reader_that(dies))
    code = main(["run", "--duration", "2", "--rate", "100", "--shards", "1", "--out", str(tmp_path)])
    assert code == 0
    result = json.loads((tmp_path / "result.json").read_text())
    validate_result(result)
    assert result["summary"]["records_acked"] == 200
    assert result["summary"]["consumer_records"] == 0
    assert (
        "a reader stopped before the run started; 1 of 1 readers had no position in their shard then"
        in (result["notes"])
    )
    assert not any("after 60 s" in note for note in result["notes"])  # it did not wait for the bound
    note = next(note for note in result["notes"] if "stopped early" in note)
    assert note.startswith("the polling reader of shardId-000000000000 stopped early on ShardlineError")
    printed = " ".join(capsys.readouterr().out.split())  # the console wraps long notes
    assert "stopped early on ShardlineError (iterator expired)" in printed


def test_a_reader_without_a_position_delays_the_start_at_most_the_bound_and_is_noted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The clock starts once every reader holds a position; one that never gets there (an
    unreachable shard, a subscription that never opens) must not hold the run for ever."""
    import benchmarks.readertasks
    import consumers.kinesis.polling

    async def never_positioned() -> None:
        await asyncio.Event().wait()  # cancelled when the run stops

    monkeypatch.setattr(consumers.kinesis.polling, "PollingShardReader", _reader_that(never_positioned))
    monkeypatch.setattr(benchmarks.readertasks, "READERS_PATIENCE", 0.1)
    monkeypatch.setattr(benchmarks.readertasks, "READERS_POSITIONED_TIMEOUT", 1.0)
    code = main(["run", "--duration", "2", "--rate", "100", "--shards", "1", "--out", str(tmp_path)])
    assert code == 0
    result = json.loads((tmp_path / "result.json").read_text())
    validate_result(result)
    assert result["summary"]["records_acked"] == 200
    assert (
        "1 of 1 readers had no position in their shard after 1 s; the run started without waiting for them"
        in result["notes"]
    )
    assert (
        "stream-bench: waiting for 1 of 1 readers: no position in their shard yet (at most 1 s)"
        in capsys.readouterr().err
    )


def test_a_run_stopped_while_its_readers_get_positions_stops_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The readers are running before the clock starts; a run that ends there stops them
    before it closes their client, rather than leaving them to the event loop's shutdown."""
    import contextlib

    import benchmarks.run
    import consumers.kinesis.polling
    import consumers.kinesis.session

    events: list[str] = []

    async def read_until_stopped() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            events.append("reader stopped")

    async def stopped_while_waiting(*_: object, **__: object) -> None:
        await asyncio.sleep(0)  # the reader tasks start
        raise RuntimeError("stopped while waiting")

    real_client = consumers.kinesis.session.reader_client

    @contextlib.asynccontextmanager
    async def noting_client(**kwargs: Any) -> AsyncIterator[Any]:
        try:
            async with real_client(**kwargs) as client:
                yield client
        finally:
            events.append("client closed")

    monkeypatch.setattr(consumers.kinesis.polling, "PollingShardReader", _reader_that(read_until_stopped))
    monkeypatch.setattr(consumers.kinesis.session, "reader_client", noting_client)
    monkeypatch.setattr(benchmarks.run, "start_when_positioned", stopped_while_waiting)
    with pytest.raises(RuntimeError, match="stopped while waiting"):
        main(["run", "--duration", "2", "--rate", "100", "--shards", "2", "--out", str(tmp_path)])
    assert events == ["reader stopped", "reader stopped", "client closed"]
