"""``run --workers N``: the slices of a manifest as local processes, supervised.

Each slice runs in its own ``shardline replay run --manifest M --slice I`` process, at most
``N`` at once, so a slice behaves exactly as it would on another machine (its own claim,
leases and heartbeat in the shared store).  Every process is watched: one that exits with an
error or is killed by a signal is reported on stderr with its slice, pid and cause, the other
slices go on, and the exit status is 1 when any slice did not finish (``status`` then shows it
as failed or stalled; run it again, here or elsewhere, to resume it).  Interrupting the
supervisor (Ctrl-C, SIGTERM) terminates its workers: each gets one SIGTERM, records its slice
as stopped and gives its claim up, so a rerun resumes the slice at once; one that has not
exited after :data:`STOP_GRACE_SECONDS` is killed (its claim then expires after
``lease_seconds``).  Workers run in their own session, so a terminal's Ctrl-C reaches the
supervisor alone and each worker is stopped exactly once; each watches its supervisor
(:mod:`shardline.parentwatch`) and stops the same way should the supervisor die without
stopping it (SIGKILL, the OOM killer).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from shardline.errors import ConfigurationError

__all__ = ["STOP_GRACE_SECONDS", "WorkerResult", "run_workers"]

STOP_GRACE_SECONDS = 30.0
"""How long a terminated worker has to record its slice and exit before it is killed."""


@dataclass(frozen=True, slots=True)
class WorkerResult:
    slice: int
    pid: int
    returncode: int

    @property
    def cause(self) -> str:
        if self.returncode == 0:
            return "done"
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"killed by {name}"
        return f"exited with status {self.returncode}"


def worker_command(manifest: str, index: int, *, manifest_hash: str | None = None) -> list[str]:
    """The slice runner's command line.

    ``manifest_hash`` is the hash of the manifest the supervisor read: each worker reads the
    manifest again, and one replaced in the meantime (another plan at the same location, with
    more slices than the supervisor starts workers for) is refused instead of run in part.
    """
    expect = ["--manifest-hash", manifest_hash] if manifest_hash is not None else []
    return [
        sys.executable,
        "-m",
        "shardline.cli",
        "replay",
        "run",
        "--manifest",
        manifest,
        "--slice",
        str(index),
        *expect,
        "--supervisor-pid",
        str(os.getpid()),
    ]


async def run_workers(
    manifest: str,
    slices: Sequence[int],
    workers: int,
    *,
    report: TextIO | None = None,
    grace: float = STOP_GRACE_SECONDS,
    manifest_hash: str | None = None,
) -> list[WorkerResult]:
    """Run ``slices`` as processes, ``workers`` at a time; every worker's end is reported.

    ``manifest_hash``: the workers refuse any manifest but the one with this hash.
    """
    if workers < 1:
        raise ConfigurationError("--workers must be at least 1")
    out = report if report is not None else sys.stderr
    queue = list(slices)
    running: dict[asyncio.Task[int], tuple[int, asyncio.subprocess.Process]] = {}
    results: list[WorkerResult] = []
    try:
        while queue or running:
            while queue and len(running) < workers:
                index = queue.pop(0)
                process = await asyncio.create_subprocess_exec(
                    *worker_command(manifest, index, manifest_hash=manifest_hash), start_new_session=True
                )
                print(f"replay workers: slice {index} started as pid {process.pid}", file=out, flush=True)
                running[asyncio.create_task(process.wait())] = (index, process)
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                index, process = running.pop(task)
                result = WorkerResult(index, process.pid, task.result())
                results.append(result)
                print(
                    f"replay workers: slice {index} (pid {result.pid}) {result.cause}", file=out, flush=True
                )
    finally:
        for task, (_, process) in running.items():
            if process.returncode is None:
                process.terminate()
            task.cancel()
        for index, process in running.values():
            await _stopped(process, grace)
            stopped = WorkerResult(index, process.pid, process.returncode or 0)
            print(
                f"replay workers: slice {index} (pid {stopped.pid}) stopped: {stopped.cause}",
                file=out,
                flush=True,
            )
    return sorted(results, key=lambda result: result.slice)


async def _stopped(process: asyncio.subprocess.Process, grace: float) -> None:
    """Wait up to ``grace`` seconds for a terminated worker, then kill it."""
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        process.kill()
        await process.wait()
