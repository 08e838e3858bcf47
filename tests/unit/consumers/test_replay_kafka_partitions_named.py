"""A Kafka replay's ``--partition`` the topic does not have is refused, not waited for forever.

A reader assigned a partition that does not exist waits for its records for ever: the
single-process job hung with nothing on screen but "none in 30 s", and ``replay plan`` wrote a
manifest whose slice hung every runner it was given to.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from consumers.replay import kafka_range
from consumers.replay.kafka_range import offset_ranges
from shardline.cli import main
from shardline.errors import MissingResourceError
from shardline.kafka_config import KafkaClientConfig


class _OnePartitionAdmin:
    """``AdminClient`` listing ``telemetry`` with partition 0 only."""

    def __init__(self, config: dict[str, Any]) -> None:
        pass

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return SimpleNamespace(topics={"telemetry": SimpleNamespace(partitions={0: object()}, error=None)})


async def test_a_replay_by_offsets_refuses_a_partition_the_topic_lacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def partitions(*_: Any) -> list[int]:
        return [0, 1]

    monkeypatch.setattr(kafka_range, "_all_partitions", partitions)
    client = KafkaClientConfig("127.0.0.1:9092")
    with pytest.raises(MissingResourceError, match="'telemetry/7' \\(named by --partition\\)"):
        await offset_ranges(client, "telemetry", partitions=[1, 7], from_offset=0, to_offset=3)
    named = await offset_ranges(client, "telemetry", partitions=[1], from_offset=0, to_offset=3)
    every = await offset_ranges(client, "telemetry", from_offset=0, to_offset=3)
    assert [r.partition for r in named] == [1] and [r.partition for r in every] == [0, 1]


def test_plan_refuses_a_partition_the_topic_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("confluent_kafka.admin.AdminClient", _OnePartitionAdmin)
    out = tmp_path / "plan.json"
    argv = ["replay", "plan", "kafka://127.0.0.1:9092/telemetry", "--slices", "2", "--out", str(out)]
    argv += ["--name", "j", "--sink", f"file:{tmp_path / 'sink.jsonl'}", "--checkpoint", "dynamodb://replay"]
    argv += ["--from-offset", "0", "--to-offset", "10", "--partition", "3"]
    assert main(argv) == 2  # before: 0, and a manifest with a slice no runner could finish
    err = capsys.readouterr().err
    assert "MissingResourceError" in err and "'telemetry/3'" in err and err.count("\n") == 1
    assert not out.exists()
