"""What a reader does with a batch of bench records: ids and end-to-end latencies, in bulk.

The binary payload's header is unpacked with one precompiled struct per record; a JSON
payload (``--payload json``) goes through :func:`~benchmarks.workload.decode_payload`.
Records written before ``floor_ns`` (an existing stream's earlier traffic) or not written by
the bench are skipped.  End-to-end latency is measured from each record's INTENDED send time.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from benchmarks.recorder import Recorder
from benchmarks.workload import _MAGIC, decode_payload

__all__ = ["read_batch"]

_ID_AND_TIME = struct.Struct(">4sQq")


def read_batch(
    recorder: Recorder,
    records: Iterable[Any],
    second: int,
    now_ns: int,
    floor_ns: int,
    *,
    reader: str | None = None,
    counts: bool = True,
) -> None:
    """Count one reader batch: dedupe by record id, record end-to-end latency in microseconds.

    ``reader`` names the reader kind when several read the same shard (``--consumer both``):
    its latency is then also kept apart; only the reader with ``counts`` adds to the
    consumed records.
    """
    ids: list[int] = []
    micros: list[int] = []
    unpack = _ID_AND_TIME.unpack_from
    for record in records:
        data = record.data
        if data[:4] == _MAGIC and len(data) >= _ID_AND_TIME.size:
            _, record_id, intended_ns = unpack(data)
        else:
            payload = decode_payload(data)
            if payload is None:
                continue
            record_id, intended_ns = payload.record_id, payload.intended_ns
        if intended_ns >= floor_ns:
            ids.append(record_id)
            micros.append((now_ns - intended_ns) // 1000)
    if ids:
        if reader is not None:
            recorder.on_read_by(reader, ids, micros)
        if counts:
            recorder.on_consumed_many(second, ids, micros)
