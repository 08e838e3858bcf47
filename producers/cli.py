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

Every line read is sent, skipped or failed, and counted: a line that is not strict JSON under
``--format ndjson``, or has no usable key, is skipped and named on stderr; one longer than any
record is a failed record, never held in memory; a failed read of stdin or a producer that
dies ends the reading, and the summary still counts what was read.

Exit status 0 when every line was sent and acknowledged, 3 when every record sent was
acknowledged but input lines were refused, 1 when a record was not delivered or the reading
ended early, 2 on bad arguments, a missing stream or topic or a closed stdin (before anything
is sent), 130 after Ctrl-C / SIGTERM (the lines already read are still sent first, and the last
one read is named; a second signal exits at once).
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from producers import keys
from producers._lines import LineCutShort, LineTooLong, read_lines
from shardline.cli import Command, run_async_command, silence_stdout
from shardline.endpoints import redact_url
from shardline.errormap import map_kafka_errors
from shardline.errors import (
    ConfigurationError,
    MessageTooLargeError,
    MissingResourceError,
    RecordTooLargeError,
    ResourceNotFoundError,
    ServiceError,
    ShardlineError,
    ValidationError,
)
from shardline.interrupts import INTERRUPTED, GracefulInterrupts

__all__ = ["EXIT_BAD_INPUT", "ProduceSummary", "command", "key_strategy", "read_lines"]

EXIT_BAD_INPUT = 3
"""Every record sent was acknowledged, but input lines were refused: not JSON under
``--format ndjson``, no usable key, too large for a record (docs/errors.md)."""


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
    refused: int = 0
    """Of the failed records, those refused for what they are (too large, a bad key), not lost
    in delivery: bad input, like the skipped lines."""

    def exit_status(self) -> int:
        """1 when a record was not delivered, else 3 when input was refused, else 0."""
        if self.failed > self.refused:
            return 1
        return EXIT_BAD_INPUT if self.refused or self.skipped else 0

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


def _parse_target(uri: str) -> tuple[str, str, str, str]:
    """``(kind, bootstrap, name, security)`` of ``kinesis://STREAM`` or ``kafka://BOOTSTRAP/TOPIC``."""
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    if parts.scheme == "kinesis" and parts.netloc and parts.path in ("", "/") and not query:
        return "kinesis", "", parts.netloc, ""
    if parts.scheme == "kafka" and parts.netloc:
        from shardline.kafka_config import refuse_kafka_user_info

        refuse_kafka_user_info(uri)
        topic = parts.path.strip("/")
        unknown = set(query) - {"security"}
        if not topic or "," in topic or unknown:
            raise ConfigurationError(
                f"TARGET must be kafka://BOOTSTRAP/TOPIC[?security=...], got {redact_url(uri)!r}"
            )
        security = query.get("security", ["plaintext"])[-1]
        if security not in ("plaintext", "tls", "msk-iam"):
            raise ConfigurationError("kafka:// security must be plaintext, tls or msk-iam")
        return "kafka", parts.netloc, topic, security
    raise ConfigurationError(
        f"TARGET must be kinesis://STREAM or kafka://BOOTSTRAP/TOPIC, got {redact_url(uri)!r}"
    )


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
            if isinstance(error, ValidationError) and not isinstance(error, ServiceError):
                self.summary.refused += 1
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


class _LineRefused(Exception):
    """Why an input line is not sent (completes "line N ...")."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_value(line: bytes) -> Any:
    """The value of an NDJSON line, read as strictly as the consumers downstream may read it.

    ``json.loads`` of bytes also takes UTF-16 and UTF-32, a byte order mark, encoded lone
    surrogates and ``NaN``/``Infinity``: lines a strict reader refuses went on as checked
    JSON.  A deeply nested line raised RecursionError, which ended the command with a
    traceback and no summary.
    """
    if line.startswith(codecs.BOM_UTF8):
        raise _LineRefused("starts with a byte order mark")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise _LineRefused("is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError:
        raise _LineRefused("is not JSON") from None
    except RecursionError:
        raise _LineRefused("is JSON nested too deeply") from None


@dataclass
class _Reading:
    """How reading stdin ended."""

    last_line: int = 0
    """The number of the last whole line read (sent, skipped or failed)."""
    error: str | None = None
    """What stopped it before the end of the input: stdin failed, or the producer did."""


async def _send_lines(
    stream: BinaryIO,
    stop: asyncio.Event,
    send: Callable[[bytes, str | None], Any],
    line_key: Callable[[bytes], str | None],
    reporter: _Reporter,
    too_large: Callable[[int], ValidationError],
    max_line_bytes: int | None,
) -> _Reading:
    """Send every line of ``stream`` until its end or a stop; each line read is sent, counted
    as skipped, or failed, and an error that ends the reading is returned, not raised, so
    the summary still counts what was read."""
    reading = _Reading()
    summary = reporter.summary
    async with contextlib.aclosing(read_lines(stream, stop, max_line_bytes=max_line_bytes)) as lines:
        while True:
            try:
                number, line = await anext(lines)
            except StopAsyncIteration:
                break
            except OSError as exc:  # EIO from a terminal that hung up, a failing disk
                reading.error = f"reading stdin failed after line {reading.last_line}: {exc}"
                break
            if isinstance(line, LineCutShort):
                summary.skipped += 1
                _say(f"line {number} was cut short by the stop ({line.size} bytes read); skipped")
                continue
            reading.last_line = number
            if isinstance(line, LineTooLong):
                reporter.track(number, _failed(too_large(line.size)))
                continue
            try:
                key = line_key(line)
            except _LineRefused as exc:
                summary.skipped += 1
                _say(f"line {number} {exc}; skipped")
                continue
            try:
                future = await send(line, key)
            except ValidationError as exc:
                # A record the producer refuses before sending (over the size limit, a bad
                # key) fails alone, like one refused by the service: the lines after it
                # are still sent, and the summary and --acks count it.
                future = _failed(exc)
            except ShardlineError as exc:  # the producer failed as a whole: nothing more goes out
                reporter.track(number, _failed(exc))
                reading.error = f"{type(exc).__name__}: {exc}; stopped reading after line {number}"
                break
            reporter.track(number, future)
    return reading


def _failed(error: BaseException) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    return future


def _say(text: str) -> None:
    print(f"shardline produce: {text}", file=sys.stderr)


def _line_key(
    ndjson: bool, strategy: keys.KeyStrategy | None, reads_json: bool
) -> Callable[[bytes], str | None]:
    """The key a line is sent with (``None``: the producer's strategy picks it), or
    :class:`_LineRefused` saying why it is not sent."""

    def key(line: bytes) -> str | None:
        if not ndjson:
            return None
        value = _json_value(line)
        if not reads_json:
            return None
        assert strategy is not None
        if not isinstance(value, dict):
            # keys.field reads an attribute of a value that is not a mapping: the key of
            # `[1, 2]` under --key field:count was "<built-in method count of list ...>"
            raise _LineRefused("is not a JSON object, so it has no field to key on")
        try:
            return keys.resolve(strategy, value).partition_key
        except ShardlineError as exc:
            raise _LineRefused(f"has no usable key ({exc})") from None

    return key


async def _produce(args: argparse.Namespace) -> int:
    kind, bootstrap, name, security = _parse_target(args.target)
    ndjson = args.format == "ndjson"
    strategy, reads_json = key_strategy(args.key, ndjson=ndjson, kafka=kind == "kafka")
    if not 0 <= args.rate_limit_percent <= 100:
        raise ConfigurationError("--rate-limit-percent must be in 0..100 (0 disables pacing)")
    # started with `<&-` or `>&-`: Python's stream is None, and using it raised AttributeError
    if sys.stdin is None:
        raise ConfigurationError("stdin is closed: there are no lines to send")
    if args.acks and sys.stdout is None:
        raise ConfigurationError("--acks prints to stdout, which is closed")
    stdin = sys.stdin.buffer
    summary = ProduceSummary()
    reporter = _Reporter(summary, args.acks)
    stop = asyncio.Event()
    too_large_error = MessageTooLargeError if kind == "kafka" else RecordTooLargeError
    opener = _open(kind, bootstrap, name, security, args, None if reads_json else strategy)
    reading: _Reading | None = None
    try:
        async with opener as send:
            limit = opener.max_record_bytes

            def too_large(size: int) -> ValidationError:
                return too_large_error(f"a line of {size} bytes exceeds the largest record, {limit} bytes")

            with GracefulInterrupts(on_stop=stop.set) as interrupts:
                line_key = _line_key(ndjson, strategy, reads_json)
                reading = await _send_lines(stdin, stop, send, line_key, reporter, too_large, limit)
                await reporter.settled.wait()
    except ShardlineError as exc:
        if reading is None:  # refused before anything was read: one line, as before
            raise
        # closing failed once every record was counted (usually as the error that stopped it)
        reading.error = reading.error or f"{type(exc).__name__}: {exc}"
    if sys.stdout is not None:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            reporter.stop_printing()
    if reading.error is not None:
        _say(reading.error)
    _say(summary.line())
    if interrupts.interrupted:
        _say(f"interrupted after input line {reading.last_line}: no later line was sent")
        return INTERRUPTED
    return 1 if reading.error is not None else summary.exit_status()


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
        self.max_record_bytes: int | None = None
        """The largest record the producer takes (data and key), once it is started."""

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
            self.max_record_bytes = producer.max_record_bytes

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
        self.max_record_bytes = kafka.config.max_message_bytes

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
