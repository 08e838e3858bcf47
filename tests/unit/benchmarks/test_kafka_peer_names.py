"""``--peers ""`` / ``--consumers ""`` name no client (they were split into one named "")."""

from __future__ import annotations

import pytest

from benchmarks.peers import kafka


def test_empty_lists_name_no_client(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_broker(*args: object) -> str:
        raise AssertionError("a topic was created for a client nobody named")

    monkeypatch.setattr(kafka, "create_topic", no_broker)
    assert kafka.main(["--bootstrap", "127.0.0.1:9", "--peers", "", "--consumers", ""]) == 0


def test_names_skip_blanks() -> None:
    assert kafka._names("confluent-kafka,,shardline-send ") == ["confluent-kafka", "shardline-send"]
