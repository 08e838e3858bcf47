"""``stream-bench run --workers N``: N processes, each its own producer and readers, one result.

The parent makes sure the stream exists, then starts N worker processes (``spawn``).  Worker
*i* owns shards ``i, i + N, ...`` of the stream and the devices whose keys hash to them: its
producer writes only to its shards and its readers read only those, so every worker
accounts for its own records and the workers need no coordination while they run.  Each
worker sends back its partial result (:mod:`benchmarks.merge`); the parent merges them.

The parent supervises: a worker that raises sends its cause, one that dies without a word
is noticed by its exit code, and either fails the whole run (the others are stopped) with
:class:`~shardline.errors.BackgroundTaskError` naming the worker and the cause.  The wait is
bounded by the run's duration, its drain and a start-up allowance.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from typing import Any

from benchmarks.merge import merge_partials, partial_from_outcome
from benchmarks.run import INTERRUPT_MESSAGE, RunOptions, RunOutcome, gateway_counts, run_kinesis
from benchmarks.targets import KinesisTarget
from benchmarks.targetwatch import TARGET_DIED, describe_exit
from shardline.clients import aiobotocore_client
from shardline.errors import BackgroundTaskError
from shardline.local.errors import LocalEmulatorError
from shardline.parentwatch import stop_when_orphaned

__all__ = ["WORKER_START_ALLOWANCE_S", "run_worker_process", "run_worker_processes", "run_workers"]

WORKER_START_ALLOWANCE_S = 120.0
"""Seconds a worker may take to start (interpreter, imports, stream lookup) beyond the run."""
_STOP_TIMEOUT_S = 10.0
_TARGET = -1
"""The embedded target's process among the handles :func:`_collect` waits on."""

WorkerMain = Callable[[Connection, RunOptions, str, str | None, bool], None]


def run_worker_process(
    connection: Connection, options: RunOptions, target_name: str, endpoint: str | None, show_progress: bool
) -> None:
    """A worker process: run its share and send back ``("done", partial)`` or ``("error", cause)``."""
    try:
        if hasattr(os, "setpgrp"):
            os.setpgrp()  # a terminal's Ctrl-C reaches the parent only; it forwards one stop
        stop_when_orphaned(_parent_pid(), label="stream-bench worker")
        target = KinesisTarget(target_name, endpoint)
        progress = None if show_progress else open(os.devnull, "w")  # noqa: SIM115 - closed below
        try:
            # No interrupt message of its own: the parent says why the run stops (a Ctrl-C it
            # forwards, or another worker that died), once.
            running = run_kinesis(options, target, progress_stream=progress, interrupt_message=None)
            outcome = asyncio.run(running)
        finally:
            if progress is not None:
                progress.close()
        connection.send(("done", partial_from_outcome(outcome)))
    except BaseException as exc:  # noqa: BLE001 - every cause goes to the parent, which fails the run
        with contextlib.suppress(Exception):
            connection.send(("error", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None
    finally:
        connection.close()


def _parent_pid() -> int:
    """The pid of the process that started this worker, as the parent itself passed it (a pid
    read here could already be the reaper's if the parent died while this one started)."""
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        return parent.pid
    return os.getppid()


async def _prepare_stream(endpoint: str | None, stream: str, shards: int) -> bool:
    from benchmarks.run import ensure_stream

    async with aiobotocore_client("kinesis", endpoint_url=endpoint) as client:
        return await ensure_stream(client, stream, shards)


async def _delete_stream(endpoint: str | None, stream: str) -> None:
    async with aiobotocore_client("kinesis", endpoint_url=endpoint) as client:
        await client.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)


def run_workers(
    options: RunOptions, target: KinesisTarget, *, worker_main: WorkerMain = run_worker_process
) -> RunOutcome:
    """Run ``options.workers`` worker processes against ``target`` and merge their partials."""
    emulator0 = target.emulator_cpu() if target.emulator_cpu is not None else None
    partials = run_worker_processes(options, target, worker_main=worker_main)
    outcome = merge_partials(partials)
    outcome.gateway = gateway_counts(target, outcome.stream, None) or outcome.gateway
    if target.emulator_cpu is not None and emulator0 is not None:
        outcome.emulator_cpu_seconds = target.emulator_cpu() - emulator0
    return outcome


def run_worker_processes(
    options: RunOptions, target: KinesisTarget, *, worker_main: WorkerMain = run_worker_process
) -> list[dict[str, Any]]:
    """Every worker's partial result, in worker order; BackgroundTaskError when one fails."""
    stream = options.stream or f"stream-bench-{uuid.uuid4().hex[:8]}"
    created = asyncio.run(_prepare_stream(target.endpoint_url, stream, options.shards))
    context = multiprocessing.get_context("spawn")
    workers: list[tuple[Any, Connection]] = []
    try:
        with _forward_stop(workers):
            shared = replace(
                options, stream=stream, new_stream=created, run_id=options.run_id or uuid.uuid4().hex
            )
            _start(context, workers, worker_main, shared, target)
            partials = _collect(workers, _timeout(options), target)
    except BaseException:
        _stop(workers, graceful=False)
        raise
    finally:
        if created and not target.is_embedded:
            with contextlib.suppress(Exception):
                asyncio.run(_delete_stream(target.endpoint_url, stream))
    _stop(workers, graceful=True)
    return partials


def _timeout(options: RunOptions) -> float:
    return WORKER_START_ALLOWANCE_S + options.workload.duration + options.drain_seconds + 60.0


@contextlib.contextmanager
def _forward_stop(workers: list[tuple[Any, Connection]]) -> Iterator[None]:
    """The first Ctrl-C / SIGTERM / SIGHUP asks every worker to stop (each then sends its partial
    result, marked interrupted); a second one stops the run at once.

    SIGHUP (the terminal closed) is a stop like SIGTERM: the workers are in process groups of
    their own, so the hang-up reaches the parent only, which forwards it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        if stopping:
            raise KeyboardInterrupt
        stopping.append(signum)
        with contextlib.suppress(OSError):  # a hung-up terminal takes no more output
            print(INTERRUPT_MESSAGE, file=sys.stderr, flush=True)
        for process, _ in workers:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    signums = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous = {signum: signal.signal(signum, forward) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _start(
    context: Any,
    workers: list[tuple[Any, Connection]],
    worker_main: WorkerMain,
    options: RunOptions,
    target: KinesisTarget,
) -> None:
    """Start the worker processes, appending each to ``workers`` as it starts."""
    for worker_id in range(options.workers):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=worker_main,
            args=(
                send,
                replace(options, worker_id=worker_id),
                target.name,
                target.endpoint_url,
                worker_id == 0,
            ),
            name=f"stream-bench-worker-{worker_id}",
            daemon=True,
        )
        process.start()
        send.close()
        workers.append((process, receive))


def _collect(
    workers: list[tuple[Any, Connection]], timeout: float, target: KinesisTarget | None = None
) -> list[dict[str, Any]]:
    """Every worker's partial, or BackgroundTaskError for the first that fails, dies or stalls;
    LocalEmulatorError when the embedded target's own process exits first (the workers would
    otherwise retry refused connections until the run's bound)."""
    deadline = time.monotonic() + timeout
    partials: dict[int, dict[str, Any]] = {}
    by_handle: dict[Any, int] = {}
    if target is not None and target.process_sentinel is not None:
        by_handle[target.process_sentinel] = _TARGET
    for worker_id, (process, connection) in enumerate(workers):
        by_handle[connection] = worker_id
        by_handle[process.sentinel] = worker_id
    count = len(workers)
    while len(partials) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            waiting = sorted(set(range(count)) - set(partials))
            raise BackgroundTaskError(f"workers {waiting} of {count} did not finish within {timeout:.0f} s")
        for handle in wait(list(by_handle), timeout=remaining):
            worker_id = by_handle[handle]
            if worker_id == _TARGET:
                code = describe_exit(target.process_exit_code() if target is not None else None)
                raise LocalEmulatorError(f"{TARGET_DIED} ({code}); the workers were stopped")
            if worker_id in partials:
                continue
            process, connection = workers[worker_id]
            message = None
            with contextlib.suppress(EOFError, OSError):
                if connection.poll(0):
                    message = connection.recv()
            if message is None:
                if handle is connection or not process.is_alive():
                    process.join(_STOP_TIMEOUT_S)
                    raise BackgroundTaskError(
                        f"worker {worker_id} of {count} died (exit code {process.exitcode}) without a result"
                    )
                continue
            kind, value = message
            if kind != "done":
                raise BackgroundTaskError(f"worker {worker_id} of {count} failed: {value}")
            partials[worker_id] = value
            del by_handle[connection]
            del by_handle[process.sentinel]
    return [partials[i] for i in range(count)]


def _stop(workers: list[tuple[Any, Connection]], *, graceful: bool) -> None:
    """Let finished workers exit (``graceful``), then terminate whatever still runs."""
    if graceful:
        for process, _ in workers:
            process.join(_STOP_TIMEOUT_S)
    for process, connection in workers:
        if process.is_alive():
            process.terminate()
            process.join(_STOP_TIMEOUT_S)
        connection.close()
