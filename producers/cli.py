"""``shardline produce``: send lines from stdin to a Kinesis stream or Kafka topic.

    some-command | shardline produce kinesis://STREAM [--format ndjson|raw]
        [--key random|round_robin|constant:KEY|field:NAME] [--no-aggregate] [--acks]
    some-command | shardline produce kafka://BOOTSTRAP/TOPIC[?security=tls|msk-iam] [--key ...]

Each non-empty line is one record, sent as it was read (without its line break).  With
``--format ndjson`` every line must be a JSON value, and ``--key field:NAME`` keys each record
by one of its fields.  Records go through the producer, so they are batched, KPL-aggregated
(Kinesis, unless ``--no-aggregate``), paced per shard and retried, each key's records in the
order they were read (``--unordered`` trades that for concurrent requests per shard).  A summary (sent,
acknowledged, failed) goes to stderr; ``--acks`` prints one JSON line per record on stdout
(its input line number and where it landed, or why it failed).

Exit status 0 when every record was acknowledged, 1 when some failed, 2 on bad arguments or
a missing stream or topic (before anything is sent), 130 after Ctrl-C / SIGTERM (what was
read is still delivered first; a second signal exits at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from producers import keys
from shardline.cli import Command, run_async_command, silence_stdout
from shardline.errormap import map_kafka_errors
from shardline.errors import (
    ConfigurationError,
    MissingResourceError,
    ResourceNotFoundError,
    ShardlineError,
    ValidationError,
)
from shardline.interrupts import INTERRUPTED, GracefulInterrupts

__all__ = ["ProduceSummary", "command", "key_strategy", "read_lines"]

_READ_CHUNK = 1 << 16


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="TARGET", help="kinesis://STREAM or kafka://BOOTSTRAP/TOPIC[?security=tls|msk-iam]"
    )
    parser.add_argument(
        "--format",
        choices=("raw", "ndjson"),
        default="raw",
        help="raw: any line; ndjson: each line must be JSON (needed for --key field:NAME)",
    )
    parser.add_argument(
        "--key",
        default="random",
        help="partition key: random | round_robin (Kinesis) | constant:KEY | field:NAME (ndjson)",
    )
    parser.add_argument("--no-aggregate", action="store_true", help="Kinesis: one entry per record")
    parser.add_argument(
        "--unordered",
        action="store_true",
        help="Kinesis: allow concurrent requests per shard (faster; a key's records may be reordered)",
    )
    parser.add_argument(
        "--rate-limit-percent",
        type=float,
        default=100.0,
        help="Kinesis: pace each shard at this percentage of its write quota (0 disables)",
    )
    parser.add_argument("--acks", action="store_true", help="print one JSON line per record on stdout")


@dataclass
class ProduceSummary:
    """What happened to the records read from stdin."""

    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    skipped: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        text = f"{self.sent} sent, {self.acknowledged} acknowledged, {self.failed} failed"
        if self.skipped:
            text += f", {self.skipped} input line(s) skipped"
        if self.failures:
            text += (
                " (" + ", ".join(f"{name}: {count}" for name, count in sorted(self.failures.items())) + ")"
            )
        return text


def key_strategy(text: str, *, ndjson: bool, kafka: bool) -> tuple[keys.KeyStrategy | None, bool]:
    """``--key`` -> (strategy, whether it reads the parsed JSON value rather than the bytes)."""
    if text == "random":
        return keys.random(), False
    if text == "round_robin":
        if kafka:
            raise ConfigurationError("--key round_robin applies to Kinesis; Kafka spreads keyless messages")
        return keys.round_robin(), False
    if text.startswith("constant:") and text[len("constant:") :]:
        return keys.constant(text[len("constant:") :]), False
    if text.startswith("field:") and text[len("field:") :]:
        if not ndjson:
            raise ConfigurationError("--key field:NAME needs --format ndjson")
        return keys.field(text[len("field:") :]), True
    raise ConfigurationError("--key must be random, round_robin, constant:KEY or field:NAME")


async def read_lines(stream: BinaryIO, stop: asyncio.Event) -> AsyncIterator[tuple[int, bytes]]:
    """``(line number, line without its line break)`` for each non-empty line of ``stream``.

    A daemon thread reads whatever is available (``read1``), so piped input arrives in large
    chunks while a person typing sees each line sent as soon as it is entered, and a stop
    request is honoured at once even while the thread still waits for input (it then dies
    with the process, never holding the interpreter open).
    """
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes | BaseException] = asyncio.Queue(maxsize=16)
    read = getattr(stream, "read1", stream.read)

    def pump() -> None:
        while True:
            try:
                chunk: bytes | BaseException = read(_READ_CHUNK)
            except BaseException as exc:  # noqa: BLE001 - handed to the reading coroutine
                chunk = exc
            put = chunks.put(chunk)
            try:
                future = asyncio.run_coroutine_threadsafe(put, loop)
            except RuntimeError:  # the loop is closed: nobody wants more input
                put.close()  # never scheduled: close it rather than leave it unawaited
                return
            try:
                future.result()
            except BaseException:  # noqa: BLE001 - the loop is gone: nobody wants more input
                return
            if not chunk or isinstance(chunk, BaseException):
                return

    threading.Thread(target=pump, name="shardline-produce-stdin", daemon=True).start()
    stopped = asyncio.ensure_future(stop.wait())
    pending = b""
    number = 0
    try:
        while True:
            getter = asyncio.ensure_future(chunks.get())
            await asyncio.wait({getter, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                return
            chunk = getter.result()
            if isinstance(chunk, BaseException):
                raise chunk
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                number += 1
                line = line.rstrip(b"\r")
                if line:
                    yield number, line
        if pending.strip():
            yield number + 1, pending.rstrip(b"\r")
    finally:
        stopped.cancel()


def _parse_target(uri: str) -> tuple[str, str, str, str]:
    """``(kind, bootstrap, name, security)`` of ``kinesis://STREAM`` or ``kafka://BOOTSTRAP/TOPIC``."""
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    if parts.scheme == "kinesis" and parts.netloc and parts.path in ("", "/") and not query:
        return "kinesis", "", parts.netloc, ""
    if parts.scheme == "kafka" and parts.netloc:
        topic = parts.path.strip("/")
        unknown = set(query) - {"security"}
        if not topic or "," in topic or unknown:
            raise ConfigurationError(f"TARGET must be kafka://BOOTSTRAP/TOPIC[?security=...], got {uri!r}")
        security = query.get("security", ["plaintext"])[-1]
        if security not in ("plaintext", "tls", "msk-iam"):
            raise ConfigurationError("kafka:// security must be plaintext, tls or msk-iam")
        return "kafka", parts.netloc, topic, security
    raise ConfigurationError(f"TARGET must be kinesis://STREAM or kafka://BOOTSTRAP/TOPIC, got {uri!r}")


def _run(args: argparse.Namespace) -> int:
    return run_async_command("produce", lambda: _produce(args))


class _Reporter:
    """Counts acknowledgements and failures as they resolve; prints ``--acks`` lines."""

    def __init__(self, summary: ProduceSummary, print_acks: bool) -> None:
        self.summary = summary
        self.print_acks = print_acks
        self.pending = 0
        self.settled = asyncio.Event()
        self.settled.set()

    def track(self, line: int, future: asyncio.Future[Any]) -> None:
        self.summary.sent += 1
        self.pending += 1
        self.settled.clear()
        future.add_done_callback(lambda done: self._settle(line, done))

    def _settle(self, line: int, future: asyncio.Future[Any]) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.settled.set()
        error = future.exception() if not future.cancelled() else asyncio.CancelledError()
        entry: dict[str, Any] = {"line": line}
        if error is None:
            self.summary.acknowledged += 1
            ack = future.result()
            if hasattr(ack, "shard_id"):
                entry.update(
                    shard=ack.shard_id, sequence=ack.sequence_number, sub_sequence=ack.sub_sequence_number
                )
            else:
                entry.update(partition=ack.partition, offset=ack.offset)
        else:
            self.summary.failed += 1
            name = type(error).__name__
            self.summary.failures[name] = self.summary.failures.get(name, 0) + 1
            entry["error"] = name
        if self.print_acks:
            try:
                sys.stdout.write(json.dumps(entry, separators=(",", ":")) + "\n")
            except BrokenPipeError:  # `--acks | head`: the reader has what it wanted
                self.stop_printing()

    def stop_printing(self) -> None:
        """Stdout was closed: the records still go out and are counted, their lines are dropped.

        A callback that raised here was logged by the event loop with its traceback, once for
        every record still to be acknowledged.
        """
        if self.print_acks:
            self.print_acks = False
            silence_stdout()
            print("shardline produce: stdout closed; no more --acks lines", file=sys.stderr)


async def _produce(args: argparse.Namespace) -> int:
    kind, bootstrap, name, security = _parse_target(args.target)
    ndjson = args.format == "ndjson"
    strategy, reads_json = key_strategy(args.key, ndjson=ndjson, kafka=kind == "kafka")
    if not 0 <= args.rate_limit_percent <= 100:
        raise ConfigurationError("--rate-limit-percent must be in 0..100 (0 disables pacing)")
    summary = ProduceSummary()
    reporter = _Reporter(summary, args.acks)
    stop = asyncio.Event()
    async with _open(kind, bootstrap, name, security, args, None if reads_json else strategy) as send:
        with GracefulInterrupts(on_stop=stop.set) as interrupts:
            async for number, line in read_lines(sys.stdin.buffer, stop):
                key: str | None = None
                if ndjson:
                    try:
                        value = json.loads(line)
                    except ValueError:
                        summary.skipped += 1
                        print(f"shardline produce: line {number} is not JSON; skipped", file=sys.stderr)
                        continue
                    if reads_json:
                        assert strategy is not None
                        try:
                            key = keys.resolve(strategy, value).partition_key
                        except ShardlineError as exc:
                            summary.skipped += 1
                            print(f"shardline produce: line {number}: {exc}; skipped", file=sys.stderr)
                            continue
                try:
                    future = await send(line, key)
                except ValidationError as exc:
                    # A record the producer refuses before sending (over the size limit, a bad
                    # key) fails alone, like one refused by the service: the lines after it
                    # are still sent, and the summary and --acks count it.
                    future = asyncio.get_running_loop().create_future()
                    future.set_exception(exc)
                reporter.track(number, future)
            await reporter.settled.wait()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        reporter.stop_printing()
    print(f"shardline produce: {summary.line()}", file=sys.stderr)
    if interrupts.interrupted:
        return INTERRUPTED
    return 1 if summary.failed else 0


class _open:  # used as `async with _open(...) as send`
    """The producer TARGET names, started and checked, as one ``send(data, key)`` callable."""

    def __init__(
        self,
        kind: str,
        bootstrap: str,
        name: str,
        security: str,
        args: argparse.Namespace,
        strategy: keys.KeyStrategy | None,
    ) -> None:
        self._kind = kind
        self._bootstrap = bootstrap
        self._name = name
        self._security = security
        self._args = args
        self._strategy = strategy
        self._producer: Any = None

    async def __aenter__(self) -> Callable[[bytes, str | None], Any]:
        if self._kind == "kinesis":
            from producers.kinesis import KinesisProducer

            rate = self._args.rate_limit_percent or None
            producer = KinesisProducer(
                self._name,
                key_strategy=self._strategy,
                aggregate=not self._args.no_aggregate,
                rate_limit_percent=rate,
                ordered=not self._args.unordered,
            )
            try:
                await producer.start()
            except ResourceNotFoundError as exc:
                raise MissingResourceError("Kinesis stream", self._name, "the TARGET argument") from exc
            self._producer = producer

            async def send_kinesis(data: bytes, key: str | None) -> Any:
                return await producer.send(data, partition_key=key)

            return send_kinesis
        from producers.kafka import KafkaProducer
        from shardline.kafka_config import KafkaClientConfig, security_named

        log = logging.getLogger("shardline.produce")
        chosen = security_named(self._security, self._bootstrap, log)
        client = KafkaClientConfig(self._bootstrap, security=chosen, client_id="shardline-produce")
        await asyncio.to_thread(_check_topic, client, self._name)
        kafka = KafkaProducer(self._name, client, key_strategy=self._strategy)
        await kafka.start()
        self._producer = kafka

        async def send_kafka(data: bytes, key: str | None) -> Any:
            return await kafka.send(data, key)

        return send_kafka

    async def __aexit__(self, *exc_info: object) -> None:
        if self._producer is not None:
            await self._producer.close()


def _check_topic(client: Any, topic: str) -> None:
    """Refuse a missing topic (a broker that auto-creates topics would otherwise make a typo one)."""
    from confluent_kafka.admin import AdminClient

    with map_kafka_errors():  # an unreachable broker: a one-line error, not a traceback
        metadata = client.new_client(AdminClient).list_topics(timeout=10)
    if topic not in metadata.topics:
        raise MissingResourceError("Kafka topic", topic, "the TARGET argument", service="kafka")


command = Command(
    name="produce",
    help="Send lines from stdin (raw or NDJSON) to a stream or topic, batched, aggregated and paced.",
    configure=_configure,
    run=_run,
)
