"""``shardline consume`` argument handling: kafka:// URIs, and bad arguments exit 2 before any
network call (the endpoints below point at a closed port: any connection attempt would fail
differently or hang)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from consumers.cli import KafkaTarget, command, parse_kafka_uri
from shardline.errors import ConfigurationError


def test_kafka_uri_with_several_brokers_topics_and_options() -> None:
    target = parse_kafka_uri("kafka://b1:9092,b2:9092/orders,refunds?group=billing&session_timeout_ms=6000")
    assert target == KafkaTarget("b1:9092,b2:9092", ("orders", "refunds"), "billing", "plaintext", 6000)


def test_kafka_uri_security_choice() -> None:
    assert parse_kafka_uri("kafka://b:9098/t?group=g&security=msk-iam").security == "msk-iam"


@pytest.mark.parametrize(
    "uri",
    [
        "kafka:///topic?group=g",  # no bootstrap
        "kafka://b:9092/?group=g",  # no topic
        "kafka://b:9092/t",  # no group
        "kafka://b:9092/t?group=",  # empty group
        "kafka://b:9092/t?group=g&security=sasl",  # unknown security
        "kafka://b:9092/t?group=g&session_timeout_ms=soon",
        "kafka://b:9092/t?group=g&colour=blue",  # unknown option
    ],
)
def test_bad_kafka_uris_are_configuration_errors(uri: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_kafka_uri(uri)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.configure(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ("kinesis://s", "--sink", "file:///tmp/never.jsonl"),  # Kinesis without --checkpoint
        ("kafka://127.0.0.1:1/t?group=g", "--sink", "file:///tmp/never.jsonl", "--checkpoint", "memory://"),
        ("kafka://127.0.0.1:1/t?group=g", "--sink", "file:///tmp/never.jsonl", "--start", "at_timestamp:x"),
        ("kafka://127.0.0.1:1/t", "--sink", "file:///tmp/never.jsonl"),
        ("kinesis://s", "--checkpoint", "memory://", "--sink", "file:///x", "--start", "yesterday"),
        ("kinesis://s", "--checkpoint", "memory://", "--sink", "file:///x", "--max-user-records", "0"),
        ("kinesis://s", "--checkpoint", "sqlite:///a/%2e%2e/b.db", "--sink", "file:///tmp/never.jsonl"),
        ("kinesis://s", "--checkpoint", "memory://", "--sink", "file:///tmp/%2e%2e/never.jsonl"),
    ],
)
def test_bad_arguments_exit_2(argv: tuple[str, ...]) -> None:
    assert command.run(_args(*argv)) == 2


def test_deaggregation_options() -> None:
    assert _args("kinesis://s", "--sink", "file:///x").deaggregation == "kpl"
    args = _args("kinesis://s", "--sink", "file:///x", "--deaggregation", "never", "--max-user-records", "50")
    assert (args.deaggregation, args.max_user_records) == ("never", 50)
    bigger = _args("kinesis://s", "--sink", "file:///x", "--max-record-bytes", "10485760")
    assert bigger.max_record_bytes == 10 * 1024 * 1024
    with pytest.raises(SystemExit):
        _args("kinesis://s", "--sink", "file:///x", "--deaggregation", "sometimes")


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("AWS_ENDPOINT_URL_KINESIS", "127.0.0.1:1", "AWS_ENDPOINT_URL_KINESIS"),  # scheme forgotten
        ("AWS_PROFILE", "no-such-profile", "no-such-profile"),
    ],
    ids=["endpoint-without-scheme", "unknown-profile"],
)
def test_unusable_aws_configuration_exits_2_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    variable: str,
    value: str,
    named: str,
) -> None:
    # these were a traceback (endpoint) and "consumer failed: ProfileNotFound" (exit 1)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/missing-config")
    monkeypatch.setenv(variable, value)
    argv = ("kinesis://s", "--checkpoint", "memory://", "--sink", f"file://{tmp_path}/out.jsonl")
    assert command.run(_args(*argv, "--log-format", "text")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and named in err
