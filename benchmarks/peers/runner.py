"""``stream-bench peers``: the same workload through Shardline and peer clients, side by side.

Each client runs in its own process (``multiprocessing`` spawn), one after another, so one
client's threads and memory do not disturb the next, and client CPU is that process's own
user+sys time.  Peer modules expose one function::

    benchmarks.peers.kinesis.run_peer(name: str, workload: PeerWorkload) -> dict
    benchmarks.peers.kinesis.PEERS: tuple[str, ...]      # names run_peer accepts

returning at least ``records``, ``seconds`` and ``cpu_seconds``.  ``benchmarks.peers.kafka``
has its own shape, ``run_peer(name, bootstrap, topic, messages, size, keys)`` over its
``PRODUCERS`` and ``CONSUMERS`` (it spawns the process itself), driven by :func:`run_kafka_peers`.
"""

from __future__ import annotations

import importlib
import multiprocessing
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["PeerWorkload", "available_peers", "run_kafka_peers", "run_peers"]


@dataclass(frozen=True, slots=True)
class PeerWorkload:
    """What every client sends: the same records to the same kind of target."""

    endpoint_url: str | None
    stream: str
    records: int = 100_000
    record_size: int = 100
    keys: int = 1_000
    shards: int = 4
    bootstrap: str | None = None


def available_peers(family: str) -> tuple[str, ...] | str:
    """The peer names of ``benchmarks.peers.<family>``, or why they are not available."""
    try:
        module = importlib.import_module(f"benchmarks.peers.{family}")
    except ImportError as exc:
        return f"benchmarks.peers.{family} is not available ({exc})"
    peers = getattr(module, "PEERS", None)
    if peers is None and hasattr(module, "PRODUCERS"):
        peers = (*module.PRODUCERS, *getattr(module, "CONSUMERS", {}))
    if not peers or not hasattr(module, "run_peer"):
        return f"benchmarks.peers.{family} does not expose PEERS and run_peer(name, workload)"
    return tuple(peers)


def _child(family: str, name: str, workload: dict[str, Any], queue: Any) -> None:
    module = importlib.import_module(f"benchmarks.peers.{family}")
    try:
        queue.put(module.run_peer(name, PeerWorkload(**workload)))
    except Exception as exc:  # noqa: BLE001 - reported as that peer's result, the others still run
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def run_peers(family: str, workload: PeerWorkload, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Run each named peer in its own process; rows with records/s and CPU-us per record."""
    context = multiprocessing.get_context("spawn")
    rows = []
    for name in names:
        queue = context.Queue()
        process = context.Process(target=_child, args=(family, name, asdict(workload), queue))
        process.start()
        result: dict[str, Any] = queue.get()
        process.join()
        row = {"client": name, **result}
        if "error" not in result:
            records = max(int(result.get("records", 0)), 1)
            row["records_per_sec"] = records / max(float(result.get("seconds", 0.0)), 1e-9)
            row["cpu_us_per_record"] = float(result.get("cpu_seconds", 0.0)) * 1e6 / records
        rows.append(row)
    return rows


def run_kafka_peers(workload: PeerWorkload, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Producers first, then consumers, on one fresh topic, through ``benchmarks.peers.kafka``."""
    if not workload.bootstrap:
        raise ValueError("Kafka peers need a bootstrap server")
    module = importlib.import_module("benchmarks.peers.kafka")
    topic = module.create_topic(workload.bootstrap, workload.shards)
    rows: list[dict[str, Any]] = []
    for name in names:
        try:
            result = module.run_peer(
                name, workload.bootstrap, topic, workload.records, workload.record_size, workload.keys
            )
        except Exception as exc:  # noqa: BLE001 - reported as that peer's row, the others still run
            rows.append({"client": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        rows.append(
            {
                "client": name,
                "records_per_sec": float(result.get("msgs_per_s", 0)),
                "cpu_us_per_record": float(result.get("cpu_us_per_msg", 0.0)),
            }
        )
    return rows
