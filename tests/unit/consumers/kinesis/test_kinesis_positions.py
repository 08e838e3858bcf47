from datetime import UTC, datetime

import pytest

from consumers.kinesis.positions import (
    AFTER_SEQUENCE_NUMBER,
    AT_SEQUENCE_NUMBER,
    AT_TIMESTAMP,
    LATEST,
    TRIM_HORIZON,
    StartKind,
    StartPosition,
)
from shardline.errors import ValidationError


def test_iterator_args_match_get_shard_iterator() -> None:
    assert TRIM_HORIZON.iterator_args() == {"ShardIteratorType": "TRIM_HORIZON"}
    assert LATEST.iterator_args() == {"ShardIteratorType": "LATEST"}
    assert AFTER_SEQUENCE_NUMBER("42").iterator_args() == {
        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
        "StartingSequenceNumber": "42",
    }
    ts = datetime(2024, 1, 2, tzinfo=UTC)
    assert AT_TIMESTAMP(ts).iterator_args() == {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": ts}


def test_starting_position_matches_subscribe_to_shard() -> None:
    expected = {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "7"}
    assert AT_SEQUENCE_NUMBER("7").starting_position() == expected
    assert TRIM_HORIZON.starting_position() == {"Type": "TRIM_HORIZON"}


@pytest.mark.parametrize("bad", ["", "12a", "-1", "1" * 129, "\u00b2", "\u0663"])  # not ASCII digits
def test_bad_sequence_numbers_rejected(bad: str) -> None:
    with pytest.raises(ValidationError):
        AFTER_SEQUENCE_NUMBER(bad)


def test_naive_timestamp_rejected() -> None:
    with pytest.raises(ValidationError):
        AT_TIMESTAMP(datetime(2024, 1, 1))


def test_inconsistent_fields_rejected() -> None:
    with pytest.raises(ValidationError):
        StartPosition(StartKind.LATEST, sequence_number="1")
    with pytest.raises(ValidationError):
        StartPosition(StartKind.AFTER_SEQUENCE_NUMBER, sequence_number="1", skip_through_sub_sequence=0)
    with pytest.raises(ValidationError):
        StartPosition(StartKind.TRIM_HORIZON, timestamp=datetime(2024, 1, 1, tzinfo=UTC))


def test_skip_drops_only_processed_sub_records() -> None:
    start = AT_SEQUENCE_NUMBER("100", skip_through_sub_sequence=2)
    assert start.skips("100", 0)
    assert start.skips("100", 2)
    assert not start.skips("100", 3)
    assert not start.skips("101", 0)
    assert not AFTER_SEQUENCE_NUMBER("100").skips("100", 0)


def test_first_kept_sub_sequence_agrees_with_skips() -> None:
    start = AT_SEQUENCE_NUMBER("1000", skip_through_sub_sequence=4)
    for sequence in ("999", "1000", "1001"):
        first = start.first_kept_sub_sequence(sequence)
        assert [start.skips(sequence, sub) for sub in range(10)] == [sub < first for sub in range(10)]
    assert AT_SEQUENCE_NUMBER("1000").first_kept_sub_sequence("999") == 0
