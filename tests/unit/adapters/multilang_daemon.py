"""An emulator of the Java MultiLangDaemon's side of the JSON-lines protocol, rules included.

It drives a record-processor subprocess exactly as ``MultiLangShardRecordProcessor`` /
``MultiLangProtocol`` do (awslabs/amazon-kinesis-client v3.5.1, commit
024eb86e2163a3d211cacf21f44f5411b6c41c53, amazon-kinesis-client-multilang/.../multilang/):

* every message is one JSON line; after sending an action the daemon reads the child's lines
  until a ``status`` arrives, answering each ``checkpoint`` line in between;
* a checkpoint is checked as ``ShardRecordProcessorCheckpointer.checkpoint`` checks it: no
  sequence number means "the largest permitted" (the last delivered record, or ``SHARD_END``
  once the shard ended); otherwise the extended sequence number must lie between the last
  checkpoint and the last record delivered, sub-sequence >= 0, digits only; a violation is
  answered with ``"error": "IllegalArgumentException"``; a checkpoint while no checkpointer is
  held (``initialize``, ``leaseLost``) with ``InvalidStateException``;
* a status for another action, the child's stdout closing or the child exiting before its
  status ends the daemon: ``stopProcessing`` -> ``System.exit(1)``, which the emulator reports
  as :class:`DaemonExit` (no further message is sent).

Every wait is bounded.  The lines the child wrote are kept in :attr:`MultiLangDaemon.transcript`
for line-by-line comparison.
"""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SHARD_END = "SHARD_END"
_SENTINEL_ORDER = {"AT_TIMESTAMP": -3, "TRIM_HORIZON": -2, "LATEST": -1}


class DaemonExit(Exception):
    """The daemon would have called ``System.exit(1)`` here (every shard of the worker stops)."""


@dataclass(frozen=True, order=True)
class ExtendedSequenceNumber:
    """``ExtendedSequenceNumber``'s ordering: sentinels below every number, SHARD_END above."""

    value: int
    sub_sequence: int

    @classmethod
    def of(cls, sequence: str, sub_sequence: int = 0) -> ExtendedSequenceNumber:
        if sequence == SHARD_END:
            return cls(2**200, 0)
        if sequence in _SENTINEL_ORDER:
            return cls(_SENTINEL_ORDER[sequence], 0)
        if not sequence.isdigit():
            raise ValueError(sequence)
        return cls(int(sequence), sub_sequence)


@dataclass(frozen=True)
class Record:
    """One record as the daemon delivers it (``JsonFriendlyRecord``)."""

    sequence_number: str
    data: bytes
    sub_sequence_number: int = 0
    partition_key: str = "pk"
    arrival_millis: int = 1545084650987

    def message(self) -> dict[str, Any]:
        return {
            "action": "record",
            "data": base64.b64encode(self.data).decode("ascii"),
            "partitionKey": self.partition_key,
            "sequenceNumber": self.sequence_number,
            "subSequenceNumber": self.sub_sequence_number,
            "approximateArrivalTimestamp": self.arrival_millis,
        }


class MultiLangDaemon:
    """One shard's daemon side, talking to ``process`` (started with text-mode pipes)."""

    def __init__(self, process: subprocess.Popen[str], shard_id: str, *, timeout: float = 60.0) -> None:
        self.process = process
        self.shard_id = shard_id
        self.timeout = timeout
        self.transcript: list[dict[str, Any]] = []
        self.checkpoints: list[tuple[str, int]] = []
        self.injected_errors: list[str] = []
        self._last_checkpoint: ExtendedSequenceNumber | None = None
        self._largest_permitted: tuple[str, int] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.exited = False
        threading.Thread(target=self._pump, daemon=True, name="child-stdout").start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    # --- the daemon's actions ---------------------------------------------------------------------

    def initialize(self, sequence_number: str = "TRIM_HORIZON", sub_sequence: int = 0) -> None:
        self._exchange(
            {
                "action": "initialize",
                "shardId": self.shard_id,
                "sequenceNumber": sequence_number,
                "subSequenceNumber": sub_sequence,
            },
            checkpointer=False,
        )
        if sequence_number not in _SENTINEL_ORDER:
            self._last_checkpoint = ExtendedSequenceNumber.of(sequence_number, sub_sequence)

    def process_records(self, records: Sequence[Record], millis_behind_latest: int = 0) -> None:
        if records:
            last = records[-1]
            self._largest_permitted = (last.sequence_number, last.sub_sequence_number)
        self._exchange(
            {
                "action": "processRecords",
                "millisBehindLatest": millis_behind_latest,
                "records": [record.message() for record in records],
            }
        )

    def shard_ended(self) -> None:
        self._largest_permitted = (SHARD_END, 0)
        self._exchange({"action": "shardEnded"})
        self._close_child()

    def lease_lost(self) -> None:
        self._exchange({"action": "leaseLost"}, checkpointer=False)
        self._close_child()

    def shutdown_requested(self) -> None:
        self._exchange({"action": "shutdownRequested"})

    # --- protocol ---------------------------------------------------------------------------------

    def _exchange(self, message: dict[str, Any], *, checkpointer: bool = True) -> None:
        if self.exited:
            raise AssertionError("the daemon has exited; nothing more is sent")
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self._exit(f"could not write {message['action']}: {exc}")
        action = message["action"]
        while True:
            received = self._next_message(action)
            if received.get("action") == "checkpoint":
                self._answer_checkpoint(received, checkpointer)
                continue
            if received.get("action") == "status":
                if received.get("responseFor") != action:
                    self._exit(f"status for {received.get('responseFor')!r} while waiting for {action!r}")
                return
            # MessageReader: an unknown action is a parse failure -> no message -> exit
            self._exit(f"unexpected message {received!r}")

    def _next_message(self, action: str) -> dict[str, Any]:
        while True:
            try:
                line = self._lines.get(timeout=self.timeout)
            except queue.Empty:
                # MultiLangProtocol with timeoutInSeconds: haltJvm(1)
                self._exit(f"no status for {action!r} within {self.timeout}s")
            if line is None:
                self._exit(f"child closed its stdout before the status for {action!r}")
            if not line.strip():
                continue
            try:
                message: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError:
                self._exit(f"child wrote a line that is not JSON while waiting for {action!r}")
            self.transcript.append(message)
            return message

    def _answer_checkpoint(self, message: dict[str, Any], checkpointer: bool) -> None:
        sequence = message.get("sequenceNumber")
        sub_sequence = message.get("subSequenceNumber")
        error = self._checkpoint_error(sequence, sub_sequence, checkpointer)
        answer = {"action": "checkpoint", "sequenceNumber": sequence, "subSequenceNumber": sub_sequence}
        if error is not None:
            answer["error"] = error
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(answer) + "\n")
        self.process.stdin.flush()

    def _checkpoint_error(self, sequence: Any, sub_sequence: Any, checkpointer: bool) -> str | None:
        if not checkpointer:
            return "InvalidStateException"
        if self.injected_errors:
            return self.injected_errors.pop(0)
        if sequence is None:
            if self._largest_permitted is None:
                return "IllegalArgumentException"
            target = self._largest_permitted
        else:
            if not isinstance(sequence, str) or not sequence.isdigit():
                return "IllegalArgumentException"
            sub = 0 if sub_sequence is None else sub_sequence
            if not isinstance(sub, int) or sub < 0:
                return "IllegalArgumentException"
            target = (sequence, sub)
        new = ExtendedSequenceNumber.of(*target)
        if self._largest_permitted is None or new > ExtendedSequenceNumber.of(*self._largest_permitted):
            return "IllegalArgumentException"
        if self._last_checkpoint is not None and new < self._last_checkpoint:
            return "IllegalArgumentException"
        self._last_checkpoint = new
        self.checkpoints.append(target)
        return None

    def _close_child(self) -> None:
        """``childProcessShutdownSequence``: close the child's stdin, wait for it to exit."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=self.timeout)

    def _exit(self, reason: str) -> Any:
        self.exited = True
        raise DaemonExit(reason)
