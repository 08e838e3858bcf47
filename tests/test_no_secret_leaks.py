"""The canary: a recognisable fake secret must never come back out of the project.

The canary is planted as the AWS secret key and session token, as a SASL/SCRAM password, as an
MSK IAM token and as record payloads.  Everything the project prints, logs, raises or shows in
a ``repr`` is then searched for it.  Extend :func:`test_project_output_never_contains_the_canary`'s
scenarios as features land.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from shardline.errormap import from_botocore, from_error_code
from shardline.kafka_config import KafkaClientConfig, MskIam, MskIamTokenProvider, Scram
from shardline.local import processes
from shardline.local.environment import export_lines, stack_environment
from shardline.records import ConsumedRecord, KafkaPosition, KinesisPosition, Record

CANARY = "CANARY-SECRET-d3adb33f"
PROJECT_LOGGERS = ("shardline", "producers", "consumers", "benchmarks")


class _Capture(logging.Handler):
    """Keeps every record (formatted, with any traceback) emitted anywhere during a test."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def project_lines(self) -> list[str]:
        return [self.format(record) for record in self.records if record.name.startswith(PROJECT_LOGGERS)]


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Capture]:
    """The canary planted in the AWS environment, with DEBUG logging captured everywhere."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", CANARY)
    capture = _Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(previous)


def _canary_signer(region: str) -> tuple[str, int]:
    return CANARY, 4_102_444_800_000  # expiry in ms, as the MSK signer reports it


def _invalid_signature_error() -> ClientError:
    # What AWS answers to a bad signature: the canonical request echoed back, headers and all.
    message = (
        "The request signature we calculated does not match the signature you provided.\n\n"
        "The Canonical String for this request should have been\n'POST\n/\n\n"
        f"host:kinesis.us-east-1.amazonaws.com\nx-amz-security-token:{CANARY}\n'"
    )
    return ClientError({"Error": {"Code": "InvalidSignatureException", "Message": message}}, "PutRecords")


def _reprs_of_values() -> list[str]:
    payload = CANARY.encode()
    values: list[object] = [
        Record(data=payload, partition_key="device-1", headers={"h": payload}),
        ConsumedRecord(
            data=payload,
            partition_key="device-1",
            position=KinesisPosition("stream", "shardId-000000000000", "1"),
            arrival_time=datetime(2024, 1, 1, tzinfo=UTC),
            headers={"h": payload},
        ),
        ConsumedRecord(data=payload, partition_key="k", position=KafkaPosition("topic", 0, 7)),
        Scram(username="user", password=CANARY),
        KafkaClientConfig(bootstrap_servers="127.0.0.1:9092", security=Scram(username="u", password=CANARY)),
    ]
    provider = MskIamTokenProvider("us-east-1", signer=_canary_signer)
    token, _ = provider.oauth_cb()
    assert token == CANARY  # the provider really holds the canary
    values += [provider, MskIam(token_provider=provider)]
    return [text for value in values for text in (repr(value), str(value))]


def _error_messages() -> list[str]:
    errors: list[BaseException] = [
        from_botocore(_invalid_signature_error(), service="kinesis"),
        from_error_code(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        ),
    ]
    return [text for error in errors for text in (str(error), repr(error), str(error.args))]


def _local_stack_output() -> list[str]:
    env = stack_environment(kinesis="http://127.0.0.1:1", aws="http://127.0.0.1:2", kafka="127.0.0.1:3")
    child_env = processes._child_env({})
    return [*export_lines(env), *(f"{key}={value}" for key, value in child_env.items())]


SCENARIOS: dict[str, Callable[[], list[str]]] = {
    "reprs of records and Kafka security settings": _reprs_of_values,
    "translated service errors": _error_messages,
    "local stack exports and server environments": _local_stack_output,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_project_output_never_contains_the_canary(planted: _Capture, scenario: str) -> None:
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == CANARY
    produced = SCENARIOS[scenario]()
    assert produced, "the scenario produced nothing to search"
    leaked = [text for text in [*produced, *planted.project_lines()] if CANARY in text]
    assert leaked == []


def test_the_canary_search_would_notice_a_leak(planted: _Capture) -> None:
    logging.getLogger("shardline.canary-self-test").debug("secret=%s", CANARY)
    assert any(CANARY in line for line in planted.project_lines())
