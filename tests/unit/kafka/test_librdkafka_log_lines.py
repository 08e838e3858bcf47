"""librdkafka's own log lines go through Python logging, each kind at most once a minute.

With the brokers down librdkafka logs ``FAIL`` on every reconnect attempt, about twenty a
second, written straight to stderr: past ``--log-format json`` and past the rate limit that
``error_cb`` reports already go through (docs/errors.md).
"""

from __future__ import annotations

import logging
import socket
import time

import pytest
from confluent_kafka import Consumer

from shardline.kafka_config import KafkaClientConfig
from shardline.lograte import RepeatedRecords


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _suppressed() -> int:
    logger = logging.getLogger("shardline.librdkafka")
    return sum(getattr(flt, "suppressed", 0) for flt in logger.filters)


def test_reconnect_failures_are_logged_once_through_logging(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    client = KafkaClientConfig(f"127.0.0.1:{_closed_port()}", client_id="log-lines-test")
    conf = {
        **client.to_confluent(),
        "group.id": "g",
        "reconnect.backoff.ms": 10,
        "reconnect.backoff.max.ms": 20,
    }
    consumer = client.new_client(Consumer, conf)
    caplog.set_level(logging.INFO, logger="shardline.librdkafka")
    # the filter is the process's: earlier tests' clients may have had lines held back already
    before = _suppressed()
    try:
        consumer.subscribe(["t"])
        deadline = time.monotonic() + 15
        while _suppressed() - before < 3 and time.monotonic() < deadline:  # bounded: attempts every 20 ms
            consumer.consume(1, 0.1)
    finally:
        consumer.close()
    assert "|FAIL|" not in capfd.readouterr().err
    fails = [r for r in caplog.records if r.name == "shardline.librdkafka" and "FAIL" in r.getMessage()]
    assert len(fails) == 1
    assert _suppressed() - before >= 3


def test_repeated_records_pass_a_kind_once_per_interval_with_the_count() -> None:
    now = [0.0]
    flt = RepeatedRecords(lambda record: record.msg, interval=60.0, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("x", logging.ERROR, __file__, 1, msg, ("a",), None)

    assert flt.filter(record("%s down"))
    assert not flt.filter(record("%s down"))
    assert not flt.filter(record("%s down"))
    assert flt.filter(record("%s other"))
    now[0] = 61.0
    again = record("%s down")
    assert flt.filter(again)
    assert again.getMessage() == "a down (and 2 more like it since)"
    assert flt.suppressed == 2
