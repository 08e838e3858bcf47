"""The steady low-rate Kafka benchmark on the local broker: each client in its own process."""

from __future__ import annotations

import json

import pytest

from benchmarks.peers import kafka_steady

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
def test_both_clients_deliver_every_message_and_are_compared(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--bootstrap", kafka_bootstrap, "--rate", "100", "--seconds", "0.5", "--repeat", "1"]
    assert kafka_steady.main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    runs = [line for line in lines if "repeat" in line]
    assert [run["client"] for run in runs] == ["confluent-kafka", "shardline-send"]
    assert all(run["messages"] == 50 and run["cpu_us_per_msg"] > 0 for run in runs)
    summaries = {line["summary"]["client"]: line["summary"] for line in lines if "summary" in line}
    assert summaries["confluent-kafka"]["vs_raw_cpu"]["median"] == 1.0
    assert summaries["shardline-send"]["vs_raw_cpu"]["median"] > 0


def test_an_unknown_client_is_refused_before_anything_runs() -> None:
    with pytest.raises(SystemExit):
        kafka_steady.main(["--bootstrap", "127.0.0.1:9", "--clients", "kafka-python"])
