"""A Kafka broker that cannot be reached ends every command with one line, never a traceback.

Each command looks its topic up before it reads or sends anything; librdkafka answers an
unreachable bootstrap list with a ``KafkaException`` (``_TRANSPORT``), which must come out as
the command's one-line ``TransientServiceError`` and exit status 1 (docs/errors.md).  The
admin client is replaced by one that fails the way librdkafka does, so no test waits out
librdkafka's own timeout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from shardline.cli import main

BROKER = "127.0.0.1:9"


class _UnreachableAdmin:
    """``AdminClient`` whose metadata request fails as it does when no broker answers."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def list_topics(self, *args: object, **kwargs: object) -> Any:
        raise KafkaException(
            KafkaError(KafkaError._TRANSPORT, "Failed to get metadata: Local: Broker transport failure")
        )


@pytest.fixture(autouse=True)
def _unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("confluent_kafka.admin.AdminClient", _UnreachableAdmin)


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [
        (["produce", f"kafka://{BROKER}/telemetry"], "shardline produce: TransientServiceError: "),
        (["tail", f"kafka://{BROKER}/telemetry"], "shardline tail: TransientServiceError: "),
        (
            [
                "replay",
                f"kafka://{BROKER}/telemetry",
                "--name",
                "j",
                "--from-offset",
                "0",
                "--to-offset",
                "1",
            ],
            "shardline replay: TransientServiceError: ",
        ),
    ],
)
def test_one_line_and_a_documented_status(
    argv: list[str], prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--sink", f"file:{tmp_path / 'out.jsonl'}"] if argv[0] == "replay" else []
    status = main([*argv, *extra])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("%")]  # librdkafka's own log
    assert "Traceback" not in err
    assert lines == [lines[0]] and lines[0].startswith(prefix) and "_TRANSPORT" in lines[0]
    assert status == 1  # a run-time failure (docs/errors.md), replay included


def test_consume_logs_one_error_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "consume",
            f"kafka://{BROKER}/telemetry?group=g",
            "--sink",
            f"file:{tmp_path / 'out.jsonl'}",
            "--log-format",
            "text",
        ]
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert status == 1
    assert "consumer failed: kafka: _TRANSPORT" in err
