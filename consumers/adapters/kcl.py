"""A record processor for the KCL MultiLangDaemon (amazon-kclpy's v3 interface).

For scale-out across machines the Kinesis Client Library balances shard leases; its Java
MultiLangDaemon starts one of these processes per shard and talks to it over stdin/stdout
(JSON lines).  The processor writes each ``processRecords`` batch through the same
transform / sink / retry / bisection / dead-letter logic as ``shardline consume`` and
checkpoints *through the daemon*, which owns the lease table:

* after a batch (an empty call too), once ``checkpoint_interval`` seconds passed since the
  last checkpoint, at the last record written or dead-lettered, naming exactly the
  (sequence, sub-sequence) number the daemon delivered it with;
* ``shardEnded``: checkpoint with no sequence number, i.e. SHARD_END, so children start,
  and only when every record the shard delivered was written or dead-lettered; a SHARD_END
  the daemon refuses (throttled past the retries, any reason but a lost lease) ends the
  process, since the daemon cannot ask this child again and the shard would stay open;
* ``shutdownRequested``: checkpoint what is written;
* ``leaseLost``: never checkpoint (another worker owns the shard now).

The processor cannot fail silently.  amazon-kclpy catches every exception a processor
raises and still answers the daemon with a status line, which the daemon takes as "done":
so the processor never lets an exception reach kclpy.  The sink, the dead letter and the
transform are built and checked in ``initialize``, before its status; any unexpected
exception, and records that could be neither written nor dead-lettered (after checkpointing
what *was* written), end the process with exit status 1 (``SystemExit``, which kclpy lets
through).  The daemon then reads no status, logs the error and calls ``System.exit(1)``:
the whole worker stops, every shard of it, and its leases expire and move to other workers
or to the restarted worker, which resume from the last checkpoint.  So without a dead
letter one poison record stops the whole daemon, again on every restart: run with
``--dead-letter``.

Records are taken exactly as the daemon delivers them: the KCL has already de-aggregated KPL
records, so the processor does not de-aggregate again (a payload that merely looks like an
aggregate stays one record).  Arrival times are UTC-aware, from the message's millisecond
timestamp.

Run by the daemon as ``python -m consumers.adapters.kcl --sink URI [--dead-letter URI]
[--transform module:function]`` (see ``deploy/kcl/shardline.properties``).  Install the
Python half of amazon-kclpy with ``pip install 'shardline[kcl]' && shardline-install-kclpy``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import tenacity
from amazon_kclpy import kcl
from amazon_kclpy.checkpoint_error import CheckpointError as KclCheckpointError
from amazon_kclpy.v3 import processor

from consumers._pipeline_transform import load_transform
from consumers.adapters._batch import process_batch
from consumers.pipeline import PipelineConfig, Transform
from consumers.sinks.base import DeadLetter, Sink
from shardline.errors import CheckpointError, ConfigurationError, ShardlineError
from shardline.logformat import setup_logging
from shardline.metrics import MetricsObserver
from shardline.records import ConsumedRecord, KinesisPosition
from shardline.retry import RetryPolicy

__all__ = ["ShardlineRecordProcessor", "main"]

logger = logging.getLogger(__name__)

_CHECKPOINT_ATTEMPTS = 5
_RETRIABLE_CHECKPOINT_ERRORS = {"ThrottlingException", "KinesisClientLibDependencyException"}
_CHECKPOINT_RETRY = RetryPolicy(
    max_attempts=_CHECKPOINT_ATTEMPTS, initial_backoff=0.2, max_backoff=2.0, deadline=None
)


def _checkpoint_code(exc: BaseException) -> str:
    """The daemon's error name for a failed checkpoint (ThrottlingException, ShutdownException...)."""
    return str(exc.value) if hasattr(exc, "value") else str(exc)


# the daemon's answer when this worker no longer holds the lease: its new owner checkpoints
_LEASE_GONE = "ShutdownException"


_RETRY_CHECKPOINT_ERRORS = tenacity.retry_if_exception(
    lambda exc: isinstance(exc, KclCheckpointError) and _checkpoint_code(exc) in _RETRIABLE_CHECKPOINT_ERRORS
)


class ShardlineRecordProcessor(processor.RecordProcessorBase):  # type: ignore[misc]
    """One shard's processor; see the module docstring for the checkpoint rules.

    ``sink`` (and ``dead_letter``) may be objects or zero-argument factories; factories are
    called in :meth:`initialize`, on the processor's own event loop, so clients bind to it.
    """

    def __init__(
        self,
        sink: Sink | Callable[[], Sink],
        *,
        transform: Transform | None = None,
        dead_letter: DeadLetter | Callable[[], DeadLetter] | None = None,
        stream_name: str = "",
        checkpoint_interval: float = 60.0,
        config: PipelineConfig | None = None,
        observer: MetricsObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        exit_process: Callable[[int], None] = sys.exit,
    ) -> None:
        if checkpoint_interval < 0:
            raise ConfigurationError("checkpoint_interval must be >= 0 seconds")
        self._sink_spec = sink
        self._dead_letter_spec = dead_letter
        self._transform = transform
        self._stream_name = stream_name
        self._checkpoint_interval = checkpoint_interval
        self._config = config
        self._observer = observer
        self._clock = clock
        self._exit = exit_process
        self._loop = asyncio.new_event_loop()
        self._sink: Sink | None = None
        self._dead_letter: DeadLetter | None = None
        self.shard_id = ""
        self._acknowledged: KinesisPosition | None = None
        self._checkpointed: KinesisPosition | None = None
        self._delivered: KinesisPosition | None = None
        self._last_checkpoint_time = clock()

    # --- the v3 interface -----------------------------------------------------------------------

    def initialize(self, initialize_input: Any) -> None:
        with self._fatal("initialize"):
            self.shard_id = str(initialize_input.shard_id)
            # built here, before the status line: a bad URI or transform ends the process
            # instead of being answered "initialized"
            self._sink = _build(self._sink_spec, "write")
            self._dead_letter = (
                None if self._dead_letter_spec is None else _build(self._dead_letter_spec, "put")
            )
            if self._transform is not None and not callable(self._transform):
                raise ConfigurationError("transform must be callable")
            self._last_checkpoint_time = self._clock()
            logger.info("initialized", extra={"shard": self.shard_id})

    def process_records(self, process_records_input: Any) -> None:
        with self._fatal("processRecords"):
            self._process_records(process_records_input)

    def lease_lost(self, lease_lost_input: Any) -> None:
        with self._fatal("leaseLost"):
            logger.warning("lease lost; not checkpointing", extra={"shard": self.shard_id})
            self._close()

    def shard_ended(self, shard_ended_input: Any) -> None:
        with self._fatal("shardEnded"):
            if self._delivered is not None and (
                self._acknowledged is None or self._acknowledged < self._delivered
            ):
                # unreachable while every failed batch ends the process; kept as the last guard
                # between a record that was not written and the SHARD_END that would skip it
                raise RuntimeError("shard ended with records neither written nor dead-lettered")
            # no sequence number: the daemon records SHARD_END so the children may start
            refused = self._checkpoint(shard_ended_input.checkpointer, None, None)
            if refused is not None and refused != _LEASE_GONE:
                # The KCL checks the lease after this status and, without SHARD_END, retries
                # its shutdown on a processor the daemon has already stopped: the shard and its
                # children would stay stuck on this worker.  Ending the process moves the
                # lease; the next owner reads the shard from its checkpoint and ends it.
                raise CheckpointError(f"the daemon did not record SHARD_END ({refused})")
            self._close()

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        with self._fatal("shutdownRequested"):
            self._checkpoint_acknowledged(shutdown_requested_input.checkpointer)
            self._close()

    # --- processing -----------------------------------------------------------------------------

    def _process_records(self, process_records_input: Any) -> None:
        records = [self._consumed(record) for record in process_records_input.records]
        if records:
            self._write(records, process_records_input)
        # after an empty call too (``callProcessRecordsEvenForEmptyRecordList``): that is how an
        # idle shard gets the tail of its last batch checkpointed, instead of having it read
        # again by every next owner of the lease
        if self._clock() - self._last_checkpoint_time >= self._checkpoint_interval:
            self._checkpoint_acknowledged(process_records_input.checkpointer)

    def _write(self, records: list[ConsumedRecord], process_records_input: Any) -> None:
        """Write one non-empty batch; end the process if some of it was neither written nor
        dead-lettered, after checkpointing what was."""
        assert self._sink is not None, "initialize() must run first"
        self._delivered = records[-1].position  # type: ignore[assignment]
        outcome = self._loop.run_until_complete(
            process_batch(
                {self.shard_id: records},
                self._sink,
                transform=self._transform,
                dead_letter=self._dead_letter,
                config=self._config,
                observer=self._observer,
                millis_behind_latest=process_records_input.millis_behind_latest,
            )
        )
        watermark = outcome.watermarks.get(self.shard_id)
        if isinstance(watermark, KinesisPosition):
            self._acknowledged = watermark
        checkpointer = process_records_input.checkpointer
        if outcome.failure is not None:
            logger.error(
                "records could not be written or dead-lettered; checkpointing what was written and "
                "exiting (the daemon stops this worker; the shard resumes from the checkpoint)",
                extra={"shard": self.shard_id, "error_type": type(outcome.failure).__name__},
            )
            self._checkpoint_acknowledged(checkpointer)
            with contextlib.suppress(Exception):
                self._close()
            self._die()

    @contextlib.contextmanager
    def _fatal(self, action: str) -> Iterator[None]:
        """Turn any exception into the end of the process, never into kclpy's catch-all."""
        try:
            yield
        except SystemExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - every error ends the process, none is swallowed
            # the type only: messages of sink and transform errors may quote record payloads
            logger.critical(
                "unexpected error; exiting so the daemon does not take it as processed",
                extra={"shard": self.shard_id, "action": action, "error_type": type(exc).__name__},
            )
            with contextlib.suppress(BaseException):
                self._close()
            self._die()

    def _die(self) -> NoReturn:
        self._exit(1)
        raise SystemExit(1)  # should ``exit_process`` return

    # --- helpers --------------------------------------------------------------------------------

    def _consumed(self, record: Any) -> ConsumedRecord:
        sub_sequence = record.sub_sequence_number
        consumed = ConsumedRecord(
            data=record.binary_data,
            partition_key=str(record.partition_key),
            position=KinesisPosition(
                self._stream_name,
                self.shard_id,
                str(record.sequence_number),
                int(sub_sequence) if sub_sequence is not None else 0,
            ),
            # kclpy's approximate_arrival_timestamp is a naive local time; the message's
            # milliseconds since the epoch are the exact, zone-free value
            arrival_time=datetime.fromtimestamp(int(record.timestamp_millis) / 1000, tz=UTC),
        )
        return consumed

    def _checkpoint_acknowledged(self, checkpointer: Any) -> None:
        position = self._acknowledged
        if position is None or position == self._checkpointed:
            return
        if self._checkpoint(checkpointer, position.sequence_number, position.sub_sequence_number) is None:
            self._checkpointed = position

    def _checkpoint(
        self, checkpointer: Any, sequence_number: str | None, sub_sequence: int | None
    ) -> str | None:
        """Checkpoint through the daemon; ``None`` once recorded, else the daemon's error name.

        Throttled or dependency errors are retried (shardline.retry; blocking is fine: one
        shard per process).  Within a shard a refused checkpoint is not fatal: the next one
        moves it on, or the next owner resumes from the last good checkpoint and the
        idempotent sink absorbs the repeats; :meth:`shard_ended` decides for SHARD_END.
        """
        try:
            for attempt in _CHECKPOINT_RETRY.sync_retrying(retry=_RETRY_CHECKPOINT_ERRORS):
                with attempt:
                    checkpointer.checkpoint(sequence_number, sub_sequence)
        except KclCheckpointError as exc:
            code = _checkpoint_code(exc)
            logger.warning("checkpoint refused by the daemon", extra={"shard": self.shard_id, "code": code})
            return code
        self._last_checkpoint_time = self._clock()
        return None

    def close(self) -> None:
        """Close the sinks (if the daemon never ended the shard) and the processor's own loop,
        whose collection at exit otherwise printed a traceback on stderr."""
        try:
            self._close()
        finally:
            if not self._loop.is_closed():
                self._loop.close()

    def _close(self) -> None:
        async def close_all() -> None:
            if self._sink is not None:
                await self._sink.close()
            if self._dead_letter is not None:
                await self._dead_letter.close()

        if self._sink is None and self._dead_letter is None:
            return
        try:
            self._loop.run_until_complete(close_all())
        finally:
            self._sink = None
            self._dead_letter = None


_Built = TypeVar("_Built")


def _build(spec: _Built | Callable[[], _Built], method: str) -> _Built:
    """``spec`` itself when it is already the object (has ``method``), else ``spec()``."""
    if hasattr(spec, method):
        return spec  # type: ignore[return-value]
    assert callable(spec)
    built: _Built = spec()
    return built


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point the MultiLangDaemon runs (``executableName`` in the properties file)."""
    parser = argparse.ArgumentParser(
        prog="python -m consumers.adapters.kcl", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sink", required=True, help="sink URI, e.g. dynamodb://TABLE or file:///path.jsonl")
    parser.add_argument("--dead-letter", help="dead-letter URI, e.g. s3://BUCKET/PREFIX or file:///dlq.jsonl")
    parser.add_argument("--transform", help="module:function applied to every record")
    parser.add_argument("--stream-name", default="", help="stream name recorded in record identities")
    parser.add_argument("--checkpoint-interval", type=float, default=60.0, help="seconds between checkpoints")
    args = parser.parse_args(argv)
    # stdout is the daemon's protocol channel: logs go to stderr only, with their fields (the
    # shard, the action, the error type and the daemon's checkpoint error name)
    setup_logging("INFO", "auto", stream=sys.stderr)

    from consumers.sinks.uri import dead_letter_from_uri, sink_from_uri

    sink_uri: str = args.sink
    dead_letter_uri: str | None = args.dead_letter
    try:
        record_processor = ShardlineRecordProcessor(
            lambda: sink_from_uri(sink_uri),
            transform=load_transform(args.transform) if args.transform else None,
            dead_letter=(lambda: dead_letter_from_uri(dead_letter_uri)) if dead_letter_uri else None,
            stream_name=args.stream_name,
            checkpoint_interval=args.checkpoint_interval,
        )
    except ShardlineError as exc:
        # our own messages name the option, never a payload
        logger.critical("bad configuration: %s", exc, extra={"error_type": type(exc).__name__})
        return 1
    try:
        kcl.KCLProcess(record_processor).run()
    except Exception as exc:  # noqa: BLE001 - whatever kclpy could not read ends the process
        # A line kclpy cannot decode (not JSON, an unknown action, a message missing a field)
        # or a closed pipe, raised from kclpy's own loop: the processor's errors never get
        # here (they end the process in ``_fatal``).  One line with the type only: kclpy's
        # messages quote the offending message whole, records and their payloads included.
        logger.critical(
            "could not read the daemon's message; exiting without a status",
            extra={"shard": record_processor.shard_id, "error_type": type(exc).__name__},
        )
        return 1
    finally:
        record_processor.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
