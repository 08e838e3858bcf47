"""Sink URIs as typed on a command line: a misspelt option or flag, credentials where a name goes.

Each is refused before anything connects, and no error text carries the password.
"""

from __future__ import annotations

import pytest

from consumers.checkpoint.uri import open_checkpoint_store
from consumers.sinks.dynamodb import DynamoDBSink
from consumers.sinks.uri import dead_letter_from_uri, sink_from_uri
from shardline.errors import ConfigurationError
from shardline.uripaths import file_uri_path

SECRET = "s3cretpw"


@pytest.mark.parametrize(
    ("uri", "named"),
    [
        ("dynamodb://events?gaurded=true", "gaurded"),
        ("dynamodb://events?guarded=true&keyz=device_id", "keyz"),
        ("timestream://db/table?dimension=device", "dimension"),
        ("firehose://delivery?region=eu-west-1", "region"),
        ("influxdb://127.0.0.1:8086/db?bukket=b", "bukket"),
    ],
)
def test_an_unknown_option_is_refused_by_name(uri: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match=f"unknown .*sink option.*{named}"):
        sink_from_uri(uri)


@pytest.mark.parametrize("value", ["ture", "maybe", "enabled"])
def test_a_guard_flag_that_is_neither_true_nor_false_is_refused(value: str) -> None:
    # read as "not true", it silently wrote unguarded: older versions overwrote newer items
    with pytest.raises(ConfigurationError, match="guarded"):
        sink_from_uri(f"dynamodb://events?guarded={value}")


@pytest.mark.parametrize(("value", "guarded"), [("true", True), ("on", True), ("0", False), ("no", False)])
def test_guard_flags_read_as_written(value: str, guarded: bool) -> None:
    sink = sink_from_uri(f"dynamodb://events?guarded={value}&key=device_id")
    assert isinstance(sink, DynamoDBSink)
    assert sink.guarded is guarded


def test_multi_measure_flag_typo_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="multi_measure"):
        sink_from_uri("timestream://db/table?multi_measure=flase&dimensions=d&measures=m")


@pytest.mark.parametrize(
    "uri",
    [
        f"dynamodb://user:{SECRET}@events",
        f"firehose://user:{SECRET}@delivery",
        f"timestream://user:{SECRET}@db/table",
    ],
)
def test_credentials_in_a_sink_name_are_refused_unechoed(uri: str) -> None:
    with pytest.raises(ConfigurationError, match="no user or password") as caught:
        sink_from_uri(uri)
    assert SECRET not in str(caught.value)


def test_a_file_uri_host_with_credentials_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError, match="names host") as caught:
        file_uri_path(f"file://user:{SECRET}@host/out.jsonl")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "uri",
    [
        f"sqlite://user:{SECRET}@host/leases.db",
        f"dynamodb://user:{SECRET}@leases",
        f"dynamodb://user:{SECRET}@leases/extra",
        f"memory://user:{SECRET}@x",
    ],
)
def test_credentials_in_a_checkpoint_uri_are_refused_unechoed(uri: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_checkpoint_store(uri)
    assert SECRET not in str(caught.value)


def test_a_misspelt_dead_letter_option_is_refused() -> None:
    # the owner check is a safety option: misspelt, it was silently off
    with pytest.raises(ConfigurationError, match="expected_bucket_ownr"):
        dead_letter_from_uri("s3://dead-letters/telemetry/?expected_bucket_ownr=123456789012")


def test_credentials_in_a_dead_letter_bucket_are_refused_unechoed() -> None:
    with pytest.raises(ConfigurationError, match="no user or password") as caught:
        dead_letter_from_uri(f"s3://user:{SECRET}@dead-letters/telemetry/")
    assert SECRET not in str(caught.value)
