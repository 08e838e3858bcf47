"""Closing a Kafka consumer is bounded, for every consumer Shardline builds.

confluent-kafka's ``Consumer.close()`` has no timeout: with the brokers gone it waited for
librdkafka for tens of seconds, and ``consume``, ``replay`` and ``tail`` hung that long at
shutdown or on Ctrl-C.  The stand-in consumer here never finishes closing until the test's
teardown lets it; every wait of the test itself is bounded (``asyncio.wait_for``).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumers.kafka import KafkaConsumerConfig, KafkaReplaySource, KafkaSource, OffsetRange
from consumers.replay.kafka_range import offset_ranges
from consumers.tail.kafka import KafkaFollower, KafkaStart
from shardline.errors import ConfigurationError, TransientServiceError
from shardline.kafka_config import KafkaClientConfig, Scram

BOUND = 5.0  # seconds; every scenario takes milliseconds when nothing hangs
CLOSE_TIMEOUT = 0.05
PASSWORD = "not-in-any-log"
CLIENT = KafkaClientConfig(
    bootstrap_servers="127.0.0.1:9",
    security=Scram("reader", PASSWORD),
    consumer_close_timeout_s=CLOSE_TIMEOUT,
)
REPO = Path(__file__).resolve().parents[3]


class StuckConsumer:
    """A consumer whose ``close()`` waits for ``release`` (or raises ``close_error``)."""

    def __init__(self, conf: dict[str, Any], close_error: Exception | None = None) -> None:
        self.release = threading.Event()
        self.close_error = close_error
        self.close_started = threading.Event()

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return SimpleNamespace(topics={"t": SimpleNamespace(partitions={0: None})})

    def offsets_for_times(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, 5) for tp in partitions]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int]:
        return 0, 0  # the log starts at offset 0: nothing removed

    def assign(self, partitions: list[TopicPartition]) -> None:
        return None

    def consume(self, count: int, timeout: float) -> list[Any]:
        return []

    def close(self) -> None:
        self.close_started.set()
        if self.close_error is not None:
            raise self.close_error
        self.release.wait()


Built = list[StuckConsumer]


@pytest.fixture
def built() -> Iterator[Built]:
    """The consumers built by the test; their closes are released at teardown."""
    consumers: Built = []
    yield consumers
    for consumer in consumers:
        consumer.release.set()


def _factory(built: Built, close_error: Exception | None) -> Callable[[dict[str, Any]], StuckConsumer]:
    def build(conf: dict[str, Any]) -> StuckConsumer:
        built.append(StuckConsumer(conf, close_error))
        return built[-1]

    return build


async def _group_member(factory: Callable[[dict[str, Any]], Any], _mp: pytest.MonkeyPatch) -> None:
    source = KafkaSource(["t"], CLIENT, KafkaConsumerConfig(group_id="g"), consumer_factory=factory)
    await source.close()


async def _replay_range(factory: Callable[[dict[str, Any]], Any], _mp: pytest.MonkeyPatch) -> None:
    source = KafkaReplaySource([OffsetRange("t", 0, 0, 10)], CLIENT, consumer_factory=factory)
    await source.close()


async def _tail(factory: Callable[[dict[str, Any]], Any], mp: pytest.MonkeyPatch) -> None:
    mp.setattr(confluent_kafka, "Consumer", factory)
    follower = KafkaFollower(CLIENT, "t", KafkaStart("earliest"))
    await follower.stop()  # the loop ends at once: what is left is the close
    async for _batch in follower.batches():
        pass


async def _replay_planner(factory: Callable[[dict[str, Any]], Any], mp: pytest.MonkeyPatch) -> None:
    mp.setattr(confluent_kafka, "Consumer", factory)
    end = datetime(2025, 1, 1, tzinfo=UTC)
    await offset_ranges(CLIENT, "t", from_time=end - timedelta(hours=1), to_time=end)


CLOSERS: dict[str, Callable[[Callable[[dict[str, Any]], Any], pytest.MonkeyPatch], Awaitable[None]]] = {
    "group-member": _group_member,
    "replay-range": _replay_range,
    "tail": _tail,
    "replay-planner": _replay_planner,
}


@pytest.mark.parametrize("closer", CLOSERS.values(), ids=CLOSERS.keys())
async def test_a_close_that_never_finishes_is_abandoned_after_the_bound_with_one_warning(
    closer: Callable[..., Awaitable[None]],
    built: Built,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    await asyncio.wait_for(closer(_factory(built, None), monkeypatch), BOUND)
    (consumer,) = built
    assert consumer.close_started.is_set() and not consumer.release.is_set()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    text = warnings[0].getMessage()
    assert "consumer of t took over" in text  # names the topic ...
    assert PASSWORD not in caplog.text  # ... and no credentials


@pytest.mark.parametrize("closer", CLOSERS.values(), ids=CLOSERS.keys())
async def test_a_close_that_raises_comes_out_typed_and_leaves_no_thread_behind(
    closer: Callable[..., Awaitable[None]], built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = set(threading.enumerate())
    failure = KafkaException(KafkaError(KafkaError._TRANSPORT, "all brokers down"))
    with pytest.raises(TransientServiceError) as raised:
        await asyncio.wait_for(closer(_factory(built, failure), monkeypatch), BOUND)
    assert raised.value.__cause__ is failure
    started = [t for t in set(threading.enumerate()) - before if t.name.startswith("shardline-")]
    for thread in started:  # each consumer thread ends once its close is done
        await asyncio.wait_for(asyncio.to_thread(thread.join, BOUND), BOUND)
        assert not thread.is_alive()


async def test_a_second_close_does_nothing(built: Built) -> None:
    source = KafkaSource(
        ["t"], CLIENT, KafkaConsumerConfig(group_id="g"), consumer_factory=_factory(built, None)
    )
    await asyncio.wait_for(source.close(), BOUND)
    built[0].release.set()
    await asyncio.wait_for(source.close(), BOUND)
    assert len(built) == 1


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True])
def test_the_close_timeout_must_be_a_positive_finite_number(timeout: float) -> None:
    with pytest.raises(ConfigurationError, match="consumer_close_timeout_s"):
        KafkaClientConfig(bootstrap_servers="127.0.0.1:9", consumer_close_timeout_s=timeout)


_NEVER_CLOSES = textwrap.dedent(
    """
    import asyncio, threading
    from consumers.kafka import KafkaConsumerConfig, KafkaSource
    from shardline.kafka_config import KafkaClientConfig

    class NeverCloses:
        def __init__(self, conf):
            pass

        def close(self):
            threading.Event().wait()  # librdkafka waiting for brokers that are gone

    async def main():
        client = KafkaClientConfig(bootstrap_servers="127.0.0.1:9", consumer_close_timeout_s=0.2)
        source = KafkaSource(["t"], client, KafkaConsumerConfig(group_id="g"), consumer_factory=NeverCloses)
        await source.close()

    asyncio.run(main())
    print("closed")
    """
)


def test_the_process_exits_past_a_close_that_never_finishes() -> None:
    # concurrent.futures joins its worker threads at interpreter exit: a close abandoned on one
    # of them kept the process alive after main() returned, for as long as the close took.
    done = subprocess.run(
        [sys.executable, "-c", _NEVER_CLOSES],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "closed"
    assert "closing the Kafka consumer of t took over" in done.stderr
