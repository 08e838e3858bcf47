"""A kclpy record processor that breaks the daemon's checkpoint rules on purpose, so the tests
can show the daemon emulator refuses what the Java daemon refuses."""

from __future__ import annotations

import contextlib
from typing import Any

from amazon_kclpy import kcl
from amazon_kclpy.checkpoint_error import CheckpointError
from amazon_kclpy.v3 import processor


class RuleBreaker(processor.RecordProcessorBase):  # type: ignore[misc]
    def initialize(self, initialize_input: Any) -> None:
        self.errors: list[str] = []

    def process_records(self, process_records_input: Any) -> None:
        last = process_records_input.records[-1]
        checkpointer = process_records_input.checkpointer
        attempts = [
            (last.sequence_number, last.sub_sequence_number + 1),  # past the last record delivered
            (str(int(last.sequence_number) + 1), 0),  # a sequence number never delivered
            (last.sequence_number, last.sub_sequence_number),  # fine
            (process_records_input.records[0].sequence_number, 0),  # backwards
        ]
        for sequence, sub in attempts:
            with contextlib.suppress(CheckpointError):
                checkpointer.checkpoint(sequence, sub)

    def lease_lost(self, lease_lost_input: Any) -> None:
        return None

    def shard_ended(self, shard_ended_input: Any) -> None:
        shard_ended_input.checkpointer.checkpoint()

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        return None


if __name__ == "__main__":
    kcl.KCLProcess(RuleBreaker()).run()
