"""``stream-bench peers``: the same workload through Shardline and peer clients, side by side.

Every client runs in its own process, one after another in one invocation, against the same
local server, so one client's threads, caches and garbage do not disturb the next and its
CPU time is its own.  Figures are compared within the run only (ratios against the best
peer), never against numbers from another machine or another run.

The clients live in modules owned by the producer and consumer code's authors; this module
only drives them through their function APIs and normalises what they report:

* ``benchmarks.peers.kinesis.run_peer(name, endpoint, stream, records, record_size, keys,
  shards) -> dict``, names in its ``CLIENTS``; it creates the stream and verifies by read-back;
  called here inside a spawned child process, one per client, on a fresh stream each;
* ``benchmarks.peers.kafka``'s ``PRODUCERS`` and ``CONSUMERS`` tables of client functions
  ``(bootstrap, topic, messages, size, keys[, span]) -> delivered count`` (``span`` marks the
  start of the timed part, after the client's warm-up) and its ``create_topic``;
  each client is called in a child process spawned and timed here; a client that delivered
  or read fewer than the workload's records is a failed row (its figures kept in ``raw``),
  and its topic is not the one the consumers read.
"""

from __future__ import annotations

import importlib
import multiprocessing
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.process_stats import process_cpu_seconds
from shardline.errors import ConfigurationError

__all__ = [
    "DEFAULT_CLIENT_TIMEOUT_S",
    "PeerRow",
    "PeerWorkload",
    "available_peers",
    "normalise",
    "rank_rows",
    "run_kafka_peers",
    "run_kinesis_peers",
]

SHARDLINE = "shardline"
DEFAULT_CLIENT_TIMEOUT_S = 600.0

_RATE_KEYS = (
    "records_per_sec",
    "records_per_second",
    "records_per_s",
    "rec_per_s",
    "msgs_per_s",
    "messages_per_sec",
)
_CPU_KEYS = ("cpu_us_per_record", "cpu_us_per_msg", "cpu_us_per_message", "client_cpu_us_per_record")
_COUNT_KEYS = ("records", "messages", "count", "records_sent", "acked")
_SECONDS_KEYS = ("seconds", "wall_seconds", "elapsed", "elapsed_seconds")
_CPU_SECONDS_KEYS = ("cpu_seconds", "client_cpu_seconds")


@dataclass(frozen=True, slots=True)
class PeerWorkload:
    """What every client sends: the same records to the same kind of target."""

    records: int = 50_000
    record_size: int = 100
    keys: int = 1_000
    shards: int = 4

    def __post_init__(self) -> None:
        if self.records < 1 or self.record_size < 1 or self.keys < 1 or self.shards < 1:
            raise ConfigurationError("peers: records, record size, keys and shards must all be >= 1")


@dataclass(frozen=True, slots=True)
class PeerRow:
    """One client's figures; ``error`` instead of figures when it failed (the others still ran)."""

    client: str
    role: str
    records: int = 0
    records_per_sec: float = 0.0
    cpu_us_per_record: float = 0.0
    error: str | None = None
    raw: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "role": self.role,
            "records": self.records,
            "records_per_sec": self.records_per_sec,
            "cpu_us_per_record": self.cpu_us_per_record,
            "error": self.error,
            "raw": dict(self.raw) if self.raw is not None else None,
        }


def _first(result: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    for key in keys:
        value = result.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def normalise(
    client: str, role: str, result: Mapping[str, Any], *, fallback_cpu: float | None = None
) -> PeerRow:
    """A peer module's result dict as a :class:`PeerRow`, whatever its key names.

    Rates and CPU per record are taken as reported when present, else derived from the
    record count, seconds and CPU seconds; ``fallback_cpu`` is the child process's CPU
    seconds as measured here, used only when the peer reported no CPU figure.
    """
    if result.get("error"):
        return PeerRow(client, role, error=str(result["error"]), raw=result)
    count = _first(result, _COUNT_KEYS) or 0.0
    rate = _first(result, _RATE_KEYS)
    if rate is None:
        seconds = _first(result, _SECONDS_KEYS)
        rate = count / seconds if seconds else 0.0
    cpu_us = _first(result, _CPU_KEYS)
    if cpu_us is None:
        cpu_seconds = _first(result, _CPU_SECONDS_KEYS)
        if cpu_seconds is None:
            cpu_seconds = fallback_cpu
        cpu_us = cpu_seconds * 1e6 / count if cpu_seconds is not None and count else 0.0
    if count <= 0 or rate <= 0:
        return PeerRow(client, role, error="reported no records", raw=result)
    if result.get("verified") is False:
        return PeerRow(
            client, role, int(count), rate, cpu_us, error="read-back found records missing", raw=result
        )
    return PeerRow(client, role, int(count), rate, cpu_us, raw=result)


def rank_rows(rows: Sequence[PeerRow]) -> list[dict[str, Any]]:
    """Rows as dicts with ratios against the best peer of the same role (producer or consumer).

    ``vs_best_peer_rate`` is records/s over the fastest peer's; ``vs_best_peer_cpu`` is CPU
    per record over the most frugal peer's (below 1 is better).  Peers are the clients other
    than Shardline's own; when only Shardline ran, ratios are against itself.
    """
    ranked = []
    for row in rows:
        same_role = [r for r in rows if r.role == row.role and r.error is None]
        peers = [r for r in same_role if r.client != SHARDLINE and not r.client.startswith(SHARDLINE + "-")]
        pool = peers or same_role
        best_rate = max((r.records_per_sec for r in pool), default=0.0)
        best_cpu = min((r.cpu_us_per_record for r in pool if r.cpu_us_per_record > 0), default=0.0)
        document = row.as_dict()
        ok = row.error is None
        document["vs_best_peer_rate"] = row.records_per_sec / best_rate if ok and best_rate else None
        document["vs_best_peer_cpu"] = row.cpu_us_per_record / best_cpu if ok and best_cpu else None
        ranked.append(document)
    return ranked


def available_peers(family: str) -> tuple[str, ...] | str:
    """The client names of ``benchmarks.peers.<family>``, or why they are not available."""
    try:
        module = importlib.import_module(f"benchmarks.peers.{family}")
    except ImportError as exc:
        return f"benchmarks.peers.{family} is not available ({exc})"
    names = getattr(module, "PEERS", None) or getattr(module, "CLIENTS", None)
    if names is None and hasattr(module, "PRODUCERS"):
        names = (*module.PRODUCERS, *getattr(module, "CONSUMERS", {}))
    if not names or not hasattr(module, "run_peer"):
        return f"benchmarks.peers.{family} does not expose its client names and run_peer()"
    return tuple(names)


def _kinesis_child(queue: Any, name: str, endpoint: str, stream: str, workload: PeerWorkload) -> None:
    """Child process: one Kinesis client, its result and this process's CPU seconds."""
    try:
        module = importlib.import_module("benchmarks.peers.kinesis")
        cpu0 = process_cpu_seconds()
        result = module.run_peer(
            name, endpoint, stream, workload.records, workload.record_size, workload.keys, workload.shards
        )
        queue.put((dict(result), process_cpu_seconds() - cpu0))
    except Exception as exc:  # noqa: BLE001 - reported as this client's row; the others still run
        queue.put(({"error": f"{type(exc).__name__}: {exc}"}, None))


def _kafka_child(queue: Any, name: str, bootstrap: str, topic: str, workload: PeerWorkload) -> None:
    """Child process: one Kafka client from ``benchmarks.peers.kafka``'s tables, timed here."""
    try:
        module = importlib.import_module("benchmarks.peers.kafka")
        client = {**module.PRODUCERS, **module.CONSUMERS}[name]
        args: tuple[Any, ...] = (bootstrap, topic, workload.records, workload.record_size, workload.keys)
        span = module.Span() if hasattr(module, "Span") else None  # the timed part, after warm-up
        cpu0, wall0 = process_cpu_seconds(), time.perf_counter()
        done = client(*args, span) if span is not None else client(*args)
        wall_end, cpu_end = time.perf_counter(), process_cpu_seconds()
        if span is not None and span.wall is not None and span.cpu is not None:
            wall0, cpu0 = span.wall, span.cpu
        wall, cpu = wall_end - wall0, cpu_end - cpu0
        result: dict[str, Any] = {"records": int(done), "seconds": wall, "cpu_seconds": cpu}
        if int(done) < workload.records:
            # A client whose deliveries failed (or a reader that stopped short) did less work
            # in its span than the others: its figures are kept in the row, never ranked.
            did = "delivered" if name in module.PRODUCERS else "read"
            result["error"] = f"{int(done)} of {workload.records} records {did}"
        queue.put((result, cpu))
    except Exception as exc:  # noqa: BLE001 - reported as this client's row; the others still run
        queue.put(({"error": f"{type(exc).__name__}: {exc}"}, None))


def spawned_result(target: Callable[..., None], *args: Any, timeout: float) -> tuple[Any, str | None]:
    """Run ``target(queue, *args)`` in a spawned process and take the one result it puts.

    Returns ``(result, None)``, or ``(None, why)`` when the child ended without a result
    (noticed at once) or gave none within ``timeout`` seconds (then it is stopped by its
    process handle), so one stuck or dead child cannot stall a table.
    """
    import queue as queue_module

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=target, args=(results, *args), daemon=True)
    process.start()
    deadline = time.monotonic() + timeout
    result: Any = None
    got = False
    while not got and time.monotonic() < deadline:
        try:
            result, got = results.get(timeout=1.0), True
        except queue_module.Empty:
            if not process.is_alive():
                break
    failure: str | None = None
    if not got and process.is_alive():
        failure = f"no result within {timeout:g} s; process stopped"
        process.terminate()
    elif not got:
        failure = f"process ended without a result (exit code {process.exitcode})"
    process.join(30)
    if process.is_alive():
        process.terminate()
        process.join(30)
    return result, failure


def _in_child(
    target: Callable[..., None], *args: Any, timeout: float = DEFAULT_CLIENT_TIMEOUT_S
) -> tuple[dict[str, Any], float | None]:
    """One client's measurement from :func:`spawned_result`, its failure as the row's error."""
    result, failure = spawned_result(target, *args, timeout=timeout)
    if failure is not None:
        return {"error": f"client {failure}"}, None
    measured: tuple[dict[str, Any], float | None] = result
    return measured


def run_kinesis_peers(
    endpoint: str,
    workload: PeerWorkload,
    names: Sequence[str],
    *,
    on_row: Callable[[PeerRow], None] | None = None,
    timeout: float = DEFAULT_CLIENT_TIMEOUT_S,
) -> list[PeerRow]:
    """Each named Kinesis client in its own process, on its own fresh stream, one after another."""
    rows = []
    for name in names:
        # under the bench role's stream prefix (iam-roles.yaml BenchStreamPrefix), so a run
        # against AWS (--endpoint) may create, load, read and delete it
        stream = f"stream-bench-peers-{name}-{uuid.uuid4().hex[:8]}".replace("_", "-")
        result, child_cpu = _in_child(_kinesis_child, name, endpoint, stream, workload, timeout=timeout)
        row = normalise(name, "producer", result, fallback_cpu=child_cpu)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def run_kafka_peers(
    bootstrap: str,
    workload: PeerWorkload,
    names: Sequence[str],
    *,
    on_row: Callable[[PeerRow], None] | None = None,
    timeout: float = DEFAULT_CLIENT_TIMEOUT_S,
) -> list[PeerRow]:
    """Producers (each on a fresh topic), then consumers reading the first producer's topic."""
    module = importlib.import_module("benchmarks.peers.kafka")
    producers = [n for n in names if n in getattr(module, "PRODUCERS", {})]
    consumers = [n for n in names if n in getattr(module, "CONSUMERS", {})]
    rows: list[PeerRow] = []
    read_topic: str | None = None

    def run(name: str, role: str, topic: str) -> PeerRow:
        result, child_cpu = _in_child(_kafka_child, name, bootstrap, topic, workload, timeout=timeout)
        row = normalise(name, role, result, fallback_cpu=child_cpu)
        rows.append(row)
        if on_row is not None:
            on_row(row)
        return row

    for name in producers:
        topic = module.create_topic(bootstrap, workload.shards)
        if run(name, "producer", topic).error is None and read_topic is None:
            read_topic = topic
    for name in consumers:
        if read_topic is None:
            rows.append(PeerRow(name, "consumer", error="no producer filled a topic to read"))
            continue
        run(name, "consumer", read_topic)
    return rows
