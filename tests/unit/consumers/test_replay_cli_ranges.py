"""`shardline replay kinesis://...`: a range that ends before it starts, or a sequence number
that is not one, is refused before any network call (the module's promise), with the range's
own message and exit status 2; so is a `kafka://` time range that ends in the future."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.replay import cli as replay_cli
from consumers.replay.kafka_range import check_range
from consumers.replay.kinesis_range import KinesisRange
from shardline.cli import main
from shardline.errors import ConfigurationError

BASE = ["replay", "kinesis://events", "--name", "n", "--sink", "file:///tmp/replay-ranges-never.jsonl"]
SHARD = ["--shard", "shardId-000000000000"]
T1, T2 = "2024-05-01T00:00:00+00:00", "2024-05-02T00:00:00+00:00"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resource checks are the command's first network calls: reaching them fails the test."""

    async def forbidden(*_: Any, **__: Any) -> None:
        raise AssertionError("a network call was made before the range was checked")

    monkeypatch.setattr(replay_cli, "run_checks", forbidden)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([*SHARD, "--from-sequence", "4", "--to-sequence", "2"], "ends before it starts"),
        (["--from-time", T2, "--to-time", T1], "ends before it starts"),
        (["--from-time", T1, "--to-time", T1], "ends before it starts"),
        ([*SHARD, "--to-sequence", "abc"], "decimal"),
        ([*SHARD, "--from-sequence", "\u00b2"], "decimal"),  # a digit to str.isdigit, not to int()
        ([*SHARD, "--from-sequence", "4", "--from-time", T1], "not both"),
    ],
    ids=["sequences reversed", "times reversed", "times equal", "sequence abc", "superscript", "both starts"],
)
def test_a_bad_kinesis_range_is_refused_before_any_network_call(
    capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    assert main([*BASE, *arguments]) == 2
    err = capsys.readouterr().err
    assert "ConfigurationError" in err and message in err and err.count("\n") == 1


def test_a_one_record_sequence_range_is_a_range() -> None:
    # --to-sequence is inclusive: the same number at both ends reads that one record
    assert KinesisRange(start_sequence="4", end_sequence="4").end_sequence == "4"
    assert KinesisRange(start_sequence="9", end_sequence="10").start_sequence == "9"  # by value, not text
    with pytest.raises(ConfigurationError, match="ends before it starts"):
        KinesisRange(start_sequence="10", end_sequence="9")


@pytest.mark.usefixtures("no_network")
def test_a_kafka_time_range_ending_in_the_future_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Its offsets were resolved at the start: it ended at the partitions' ends of that moment,
    exit 0, and a rerun found every partition complete, so what came later was never replayed."""
    ahead = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    arguments = ["replay", "kafka://127.0.0.1:9092/events", "--name", "n", "--sink", BASE[-1]]
    assert main([*arguments, "--from-time", T1, "--to-time", ahead]) == 2
    err = capsys.readouterr().err
    assert "ConfigurationError" in err and "must end in the past" in err and err.count("\n") == 1


def test_a_kafka_time_range_that_has_ended_is_a_range() -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    assert check_range(None, None, start, start + timedelta(days=1), now=start + timedelta(days=1)) is False
    with pytest.raises(ConfigurationError, match="must end in the past"):
        check_range(None, None, start, start + timedelta(days=1), now=start + timedelta(hours=23))


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("range_arguments", "message"),
    [
        ([], "a Kafka replay needs a range: --from-offset and --to-offset, or --from-time and --to-time"),
        (
            ["--from-offset", "0", "--to-offset", "5", "--from-time", T1, "--to-time", T2],
            "a Kafka replay takes offsets (--from-offset, --to-offset) or times (--from-time, --to-time)",
        ),
    ],
    ids=["no range", "both kinds"],
)
def test_a_kafka_replay_without_one_kind_of_range_names_the_options(
    capsys: pytest.CaptureFixture[str], range_arguments: list[str], message: str
) -> None:
    """Unlike a Kinesis replay (trim horizon to tip), a Kafka one needs a range; a first try
    without one was told "by offsets or by timestamps", which names no option to give."""
    arguments = ["replay", "kafka://127.0.0.1:9092/events", "--name", "n", "--sink", BASE[-1]]
    assert main([*arguments, *range_arguments]) == 2
    err = capsys.readouterr().err
    assert "ConfigurationError" in err and message in err and err.count("\n") == 1
