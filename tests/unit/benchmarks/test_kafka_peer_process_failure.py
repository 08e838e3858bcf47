"""A Kafka peer whose process fails or hangs is reported at once or stopped, never waited on."""

from __future__ import annotations

import pytest

from benchmarks.peers import kafka


@pytest.mark.timeout(60)  # the default timeout is half an hour: the child's end must be noticed
def test_a_client_that_raises_is_reported_when_its_process_ends() -> None:
    # no messages to send: the client's own warm-up fails at once (an IndexError in the child)
    with pytest.raises(RuntimeError, match=r"peer 'confluent-kafka' failed: IndexError"):
        kafka.run_peer("confluent-kafka", "127.0.0.1:1", "topic", 0, 100, 10)


@pytest.mark.timeout(120)
def test_a_client_that_gives_no_result_is_stopped_after_its_timeout() -> None:
    # a consumer of an unreachable broker waits for its messages forever
    with pytest.raises(RuntimeError, match=r"no result within 3 s; process stopped"):
        kafka.run_peer("confluent-kafka-consumer", "127.0.0.1:1", "topic", 10, 100, 10, timeout=3.0)
