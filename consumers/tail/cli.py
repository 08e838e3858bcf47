"""``shardline tail``: print the records of a Kinesis stream or Kafka topic, like kcat.

    shardline tail kinesis://STREAM [--start latest|trim_horizon|at_timestamp:ISO|sequence:SEQ]
        [--shard ID]... [--key KEY]... [--max-records N] [--until-tip] [--format json|text]
    shardline tail kafka://BOOTSTRAP/TOPIC[?security=tls|msk-iam] [--start ...|offset:N]
        [--partition N]...

Every shard is followed, parents before children; KPL aggregates are de-aggregated.  Records
go to stdout (JSON lines by default); a summary goes to stderr.  Nothing is checkpointed and
no lease or consumer group is joined, so tailing never disturbs the stream's consumers.  It
ends after ``--max-records``, at the tip with ``--until-tip``, or on Ctrl-C / SIGTERM (exit
status 130; a second one exits at once).
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import io
import logging
import sys
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack
from typing import Any

from consumers.cli import KafkaTarget, parse_kafka_uri, parse_stream_uri
from consumers.preflight import kafka_topics_check, kinesis_stream_check, run_checks
from consumers.tail.output import PAYLOAD_MODES, as_json, as_text
from shardline.cli import Command, parse_aware_time, run_async_command, silence_stdout
from shardline.errors import ConfigurationError
from shardline.interrupts import INTERRUPTED, GracefulInterrupts
from shardline.limits import INT64_MAX
from shardline.records import ConsumedRecord

__all__ = ["command"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="kinesis://STREAM or kafka://BOOTSTRAP/TOPIC")
    parser.add_argument(
        "--start",
        default="latest",
        help="latest | trim_horizon | at_timestamp:ISO | sequence:SEQ (Kinesis, one --shard) | "
        "offset:N (Kafka, one --partition)",
    )
    parser.add_argument("--shard", action="append", default=[], help="Kinesis: only this shard (repeatable)")
    parser.add_argument(
        "--partition", type=int, action="append", default=[], help="Kafka: only this partition (repeatable)"
    )
    parser.add_argument("--key", action="append", default=[], help="only records with this partition key")
    parser.add_argument("-n", "--max-records", type=int, help="stop after this many records")
    parser.add_argument("--until-tip", action="store_true", help="stop once every shard is caught up")
    parser.add_argument("--format", choices=("json", "text"), default="json", help="output lines")
    parser.add_argument("--payload", choices=PAYLOAD_MODES, default="auto", help="how payloads are printed")


def _run(args: argparse.Namespace) -> int:
    return run_async_command("tail", lambda: _tail(args))


def _kinesis_start(text: str) -> Any:
    from consumers.cli import parse_start
    from consumers.kinesis import AT_SEQUENCE_NUMBER

    if text.lower().startswith("sequence:"):
        return AT_SEQUENCE_NUMBER(text.split(":", 1)[1])
    try:
        return parse_start(text)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} (or sequence:SEQ with one --shard)") from exc


def _kafka_start(text: str) -> Any:
    from consumers.tail.kafka import KafkaStart

    lowered = text.lower()
    if lowered in ("latest", "trim_horizon", "earliest"):
        return KafkaStart("latest" if lowered == "latest" else "earliest")
    if lowered.startswith("offset:"):
        try:
            offset = int(text.split(":", 1)[1])
        except ValueError as exc:
            raise ConfigurationError("--start offset:N needs an integer offset") from exc
        if not 0 <= offset <= INT64_MAX:
            raise ConfigurationError("--start offset:N needs an offset from 0 to 2**63 - 1")
        return KafkaStart("offset", offset=offset)
    if lowered.startswith("at_timestamp:"):
        moment = parse_aware_time(text.split(":", 1)[1], "--start at_timestamp")
        return KafkaStart("timestamp", timestamp=moment)
    raise ConfigurationError("--start for Kafka is latest, trim_horizon, at_timestamp:ISO or offset:N")


def _kafka_client(target: KafkaTarget) -> Any:
    from shardline.kafka_config import KafkaClientConfig, security_named

    log = logging.getLogger("shardline.tail")
    security = security_named(target.security, target.bootstrap_servers, log)
    return KafkaClientConfig(target.bootstrap_servers, security=security, client_id="shardline-tail")


async def _tail(args: argparse.Namespace) -> int:
    """Check everything, then print records until the count, the tip or a signal ends it."""
    if args.max_records is not None and args.max_records < 1:
        raise ConfigurationError("--max-records must be at least 1")
    if sys.stdout is None:  # started with stdout closed (`>&-`): writing raised AttributeError
        raise ConfigurationError("stdout is closed: there is nowhere to print the records")
    kafka = args.source.startswith("kafka://")
    if kafka:
        target = parse_kafka_uri(args.source, require_group=False)
        if len(target.topics) != 1:
            raise ConfigurationError("tail reads one topic: kafka://BOOTSTRAP/TOPIC")
        if args.shard:
            raise ConfigurationError("--shard applies to kinesis:// sources; use --partition")
        kafka_start = _kafka_start(args.start)
        client = _kafka_client(target)
        from consumers.tail.kafka import KafkaFollower

        follower: Any = KafkaFollower(
            client, target.topics[0], kafka_start, partitions=args.partition, until_tip=args.until_tip
        )
        check = kafka_topics_check(target.topics, "the SOURCE argument", client)
        await run_checks([check])
        return await _print(args, follower, _kafka_records(follower))
    stream = parse_stream_uri(args.source)
    if args.partition:
        raise ConfigurationError("--partition applies to kafka:// sources; use --shard")
    start = _kinesis_start(args.start)
    from consumers.tail.kinesis import KinesisFollower

    if start.is_sequence_based and len(args.shard) != 1:
        raise ConfigurationError("a sequence-number start belongs to one shard: give exactly one --shard")
    await run_checks([kinesis_stream_check(stream, "the SOURCE argument")])
    from consumers.kinesis.session import reader_client

    async with AsyncExitStack() as stack:
        kinesis = await stack.enter_async_context(reader_client())
        kinesis_follower = KinesisFollower(
            kinesis, stream, start, shard_ids=args.shard, until_tip=args.until_tip
        )
        return await _print(args, kinesis_follower, _kinesis_records(kinesis_follower))


async def _kinesis_records(follower: Any) -> AsyncGenerator[ConsumedRecord, None]:
    from consumers.tail.kinesis import ShardDone

    async for item in follower.batches():
        if isinstance(item, ShardDone):
            continue
        for record in item.records:
            yield record


async def _kafka_records(follower: Any) -> AsyncGenerator[ConsumedRecord, None]:
    async for batch in follower.batches():
        for record in batch.records:
            yield record


def _renderer(output_format: str, mode: str, encoding: str) -> Callable[[ConsumedRecord], str]:
    """How each record becomes a line that ``encoding`` can write.

    Under a locale that is not UTF-8 (a Latin-1 terminal, ``PYTHONIOENCODING=ascii``) the
    first record with a character the encoding lacks raised UnicodeEncodeError out of the
    write, ending the tail with a traceback: JSON lines are then written in ASCII
    (``\\u20ac``), readable lines with such characters as ``\\u20ac`` (backslashreplace).
    """
    if output_format == "json":
        ascii_only = codecs.lookup(encoding).name != "utf-8"
        return lambda record: as_json(record, mode, ascii_only=ascii_only)
    if codecs.lookup(encoding).name == "utf-8":
        return lambda record: as_text(record, mode)
    return lambda record: as_text(record, mode).encode(encoding, "backslashreplace").decode(encoding)


async def _print(
    args: argparse.Namespace, follower: Any, records: AsyncGenerator[ConsumedRecord, None]
) -> int:
    out = sys.stdout
    render = _renderer(args.format, args.payload, getattr(out, "encoding", None) or "utf-8")
    wanted = set(args.key)
    printed = 0
    loop = asyncio.get_running_loop()
    stops: list[asyncio.Task[None]] = []
    if isinstance(out, io.TextIOWrapper):
        out.reconfigure(line_buffering=True)  # `tail | grep`: each record as soon as it is read
    with GracefulInterrupts(on_stop=lambda: stops.append(loop.create_task(follower.stop()))) as interrupts:
        try:
            async with contextlib.aclosing(records):
                async for record in records:
                    if wanted and record.partition_key not in wanted:
                        continue
                    out.write(render(record) + "\n")
                    printed += 1
                    if args.max_records is not None and printed >= args.max_records:
                        break
                    if interrupts.interrupted:
                        break
            out.flush()
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            silence_stdout()
            return 0
        finally:
            await follower.stop()
            if stops:
                await asyncio.gather(*stops, return_exceptions=True)
    print(f"shardline tail: {printed} record(s)", file=sys.stderr)
    return INTERRUPTED if interrupts.interrupted else 0


command = Command(
    name="tail",
    help="Print the records of a stream or topic (de-aggregated, every shard); never checkpoints.",
    configure=_configure,
    run=_run,
)
