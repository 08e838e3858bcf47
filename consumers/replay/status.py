"""``status`` of a planned replay: per slice and in total, from the shared checkpoint store.

A slice is

``done``      every unit of it reached its end (``SHARD_END``), recorded by the runner that finished it;
``running``   a runner holds it and renewed its lease in time;
``stalled``   a runner held it but stopped renewing (it died: SIGKILL, a lost machine): run it again;
``failed``    its runner stopped with an error (recorded with the slice): fix the cause, run it again;
``pending``   never started.

The job's state, also the exit status of ``shardline replay status``: ``done`` (0) when
every slice is done; ``failed`` (4) when any slice failed or stalled; ``running`` (3) while
any slice runs; ``pending`` (5) when slices are waiting and nothing runs.  What is left is
counted in the plan's own units of work: bytes of archive objects, offsets of Kafka
partitions, milliseconds of Kinesis windows not yet finished.
"""

from __future__ import annotations

from dataclasses import dataclass

from consumers.replay.ledger import COUNTERS, LedgerView, SliceRow
from consumers.replay.manifest import Manifest, Unit
from shardline.records import SHARD_END

__all__ = ["EXIT_CODES", "JobStatus", "SliceStatus", "job_status"]

EXIT_CODES = {"done": 0, "running": 3, "failed": 4, "pending": 5}

_WORK_UNITS = {"s3": "bytes", "kafka": "offsets", "kinesis": "ms of stream"}


@dataclass(frozen=True, slots=True)
class SliceStatus:
    index: int
    state: str
    units: int
    units_done: int
    work_left: int
    counts: dict[str, int]
    runner: str | None
    attempts: int
    error: str | None


@dataclass(frozen=True, slots=True)
class JobStatus:
    name: str
    manifest_hash: str
    bound_hash: str | None
    work_unit: str
    slices: tuple[SliceStatus, ...]

    @property
    def state(self) -> str:
        states = {piece.state for piece in self.slices}
        if states == {"done"}:
            return "done"
        if states & {"failed", "stalled"}:
            return "failed"
        if "running" in states:
            return "running"
        return "pending"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.state]

    def totals(self) -> dict[str, int]:
        return {name: sum(piece.counts.get(name, 0) for piece in self.slices) for name in COUNTERS}

    def lines(self) -> list[str]:
        header = (
            f"{'slice':>5}  {'state':<8} {'units':>11} {'read':>10} {'written':>10} {'dup':>8} "
            f"{'dead':>6} {'left (' + self.work_unit + ')':>16}  runner / error"
        )
        rows = [f"job {self.name}: {self.state} (manifest {self.manifest_hash[:12]})", header]
        for piece in self.slices:
            note = piece.error or piece.runner or ""
            rows.append(
                f"{piece.index:>5}  {piece.state:<8} {f'{piece.units_done}/{piece.units}':>11} "
                f"{piece.counts['read']:>10} {piece.counts['written']:>10} {piece.counts['duplicates']:>8} "
                f"{piece.counts['dead_lettered']:>6} {piece.work_left:>16}  {note}"
            )
        totals = self.totals()
        units = sum(piece.units for piece in self.slices)
        done = sum(piece.units_done for piece in self.slices)
        left = sum(piece.work_left for piece in self.slices)
        rows.append(
            f"{'total':>5}  {self.state:<8} {f'{done}/{units}':>11} {totals['read']:>10} "
            f"{totals['written']:>10} {totals['duplicates']:>8} {totals['dead_lettered']:>6} {left:>16}"
        )
        if self.bound_hash is not None and self.bound_hash != self.manifest_hash:
            rows.append(
                f"warning: the checkpoint namespace belongs to another plan (manifest {self.bound_hash[:12]})"
            )
        return rows


def _left(unit: Unit, checkpoint: str | None) -> int:
    if checkpoint == SHARD_END:
        return 0
    if unit.kind == "kafka" and checkpoint is not None and unit.end_offset is not None:
        return max(0, unit.end_offset - int(checkpoint) - 1)
    return unit.weight


def _state(row: SliceRow | None, units_done: int, units: int, now: float) -> str:
    if row is None or row.state is None:
        return "done" if units and units_done == units else "pending"
    if row.state == "running":
        return "running" if row.live(now) else "stalled"
    if row.state == "done" and units_done == units:
        return "done"
    return "failed"


def job_status(manifest: Manifest, view: LedgerView, now: float) -> JobStatus:
    """Combine the plan with what the job's table says (``now``: wall-clock seconds)."""
    slices = []
    for piece in manifest.slices:
        checkpoints = [view.checkpoints.get(unit.name) for unit in piece.units]
        done = sum(1 for checkpoint in checkpoints if checkpoint == SHARD_END)
        row = view.slices.get(piece.index)
        slices.append(
            SliceStatus(
                index=piece.index,
                state=_state(row, done, len(piece.units), now),
                units=len(piece.units),
                units_done=done,
                work_left=sum(_left(u, c) for u, c in zip(piece.units, checkpoints, strict=True)),
                counts=dict(row.counts) if row is not None else dict.fromkeys(COUNTERS, 0),
                runner=row.runner if row is not None else None,
                attempts=row.attempts if row is not None else 0,
                error=row.error if row is not None else None,
            )
        )
    kinds = {unit.kind for piece in manifest.slices for unit in piece.units}
    work_unit = _WORK_UNITS[next(iter(kinds))] if len(kinds) == 1 else "units"
    return JobStatus(manifest.name, manifest.hash, view.manifest_hash, work_unit, tuple(slices))
