"""The source's own session: epoch timestamps straight to UTC, other forms through botocore."""

from __future__ import annotations

from datetime import UTC, datetime

from botocore.utils import parse_timestamp

from consumers.kinesis.session import reader_session, utc_timestamp


def test_epoch_seconds_become_utc_datetimes() -> None:
    assert utc_timestamp(1595035749.7) == datetime.fromtimestamp(1595035749.7, UTC)
    assert utc_timestamp(1595035749).tzinfo is UTC
    assert utc_timestamp(1595035749.7) == parse_timestamp(1595035749.7)  # the same instant as botocore's


def test_other_forms_are_botocores() -> None:
    assert utc_timestamp("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_the_session_parses_with_it() -> None:
    factory = reader_session().get_component("response_parser_factory")
    parser = factory.create_parser("json")
    assert parser._timestamp_parser is utc_timestamp
