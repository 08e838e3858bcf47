"""A sliced Kafka replay connects with the security its source URI names (``?security=tls``).

``replay plan`` and ``replay run`` used to read only the bootstrap list from the source and
connect in plaintext whatever ``?security=`` said, with no warning: an MSK cluster's TLS or
IAM listener was spoken to in the clear.  They now build the client the way ``consume`` and
single-process ``replay`` do.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from consumers.replay.kafka_range import KafkaRangeReader
from consumers.replay.manifest import Manifest, Slice, Unit
from consumers.replay.plan import parse_source
from consumers.replay.slices import _unit_readers
from shardline.cli import main
from shardline.errors import ConfigurationError

SOURCE = "kafka://b-1.example.kafka.us-east-1.amazonaws.com:9094/telemetry?security=tls"


class _RecordingAdmin:
    """``AdminClient`` that remembers its configuration and lists one two-partition topic."""

    configs: list[dict[str, Any]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.configs.append(config)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        partitions = {0: object(), 1: object()}
        return SimpleNamespace(topics={"telemetry": SimpleNamespace(partitions=partitions, error=None)})


def test_plan_lists_partitions_over_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _RecordingAdmin.configs = []
    monkeypatch.setattr("confluent_kafka.admin.AdminClient", _RecordingAdmin)
    out = tmp_path / "plan.json"
    argv = ["replay", "plan", SOURCE, "--slices", "2", "--out", str(out), "--name", "j"]
    argv += ["--sink", f"file:{tmp_path / 'sink.jsonl'}", "--checkpoint", "dynamodb://replay"]
    argv += ["--from-offset", "0", "--to-offset", "10"]
    assert main(argv) == 0, capsys.readouterr().err
    assert _RecordingAdmin.configs, "the partitions were not listed"
    for config in _RecordingAdmin.configs:
        assert config["security.protocol"] == "SSL"
        assert config["enable.ssl.certificate.verification"] is True


async def test_run_reads_over_tls() -> None:
    unit = Unit("s0000-u00000", "kafka", 10, topic="telemetry", partition=0, start_offset=0, end_offset=10)
    manifest = Manifest(
        name="j",
        source=SOURCE,
        sink="file:out.jsonl",
        checkpoint="dynamodb://replay",
        slices=(Slice(0, (unit,)),),
    )
    async with AsyncExitStack() as stack:
        readers = await _unit_readers(manifest, [unit], stack)
    reader, _ = readers[unit.name]
    assert isinstance(reader, KafkaRangeReader)
    assert reader.client.to_confluent()["security.protocol"] == "SSL"


@pytest.mark.parametrize(
    "uri", ["kafka://b:9094/telemetry?securty=tls", "kafka://b:9094/telemetry?security=ssl"]
)
def test_a_misspelt_security_option_is_refused_not_ignored(uri: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_source(uri)
