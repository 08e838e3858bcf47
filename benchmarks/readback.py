"""What a reader does with a batch of bench records: ids and end-to-end latencies, in bulk.

The bench needs only the first 20 bytes of each record it wrote (magic, record id, intended
send time), so its readers receive KPL aggregates whole (:data:`READER_DEAGGREGATION`: the
shard reader does not expand them) and :func:`read_batch` expands each into its payload
column alone: one MD5 check and one protobuf parse per aggregate, one bytes object per user
record (:func:`shardline.aggregation.aggregate_payloads`), instead of a full
:class:`~shardline.records.ConsumedRecord` with its position per
user record.  An aggregate whose MD5 or body is bad is read as one plain record (and so
skipped as not the bench's), as the consumers treat it.

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
from shardline.aggregation import MAGIC, DeaggregationPolicy, aggregate_payloads

__all__ = ["READER_DEAGGREGATION", "read_batch"]

READER_DEAGGREGATION = DeaggregationPolicy(deaggregate=False)
"""The bench readers' policy: aggregates arrive whole; :func:`read_batch` expands them."""

_ID_AND_TIME = struct.Struct(">4sQq")
_MAGIC_SIZE = len(MAGIC)


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

    ``records`` are the shard reader's (anything with ``data``), aggregates whole or already
    expanded.  ``reader`` names the reader kind when several read the same shard
    (``--consumer both``): its latency is then also kept apart; only the reader with
    ``counts`` adds to the consumed records.
    """
    payloads: list[bytes] = []
    for record in records:
        data = record.data
        if data[:_MAGIC_SIZE] == MAGIC:
            inner = aggregate_payloads(data)
            if inner is not None:
                payloads += inner
                continue
        payloads.append(data)
    unpack = _ID_AND_TIME.unpack_from
    try:  # the binary payloads: one struct unpack each, filtered in bulk
        headers = [unpack(data) for data in payloads]
    except struct.error:  # a record shorter than a header: not all binary
        headers = []
    if len(headers) == len(payloads) and all(header[0] == _MAGIC for header in headers):
        ids = [record_id for _, record_id, intended_ns in headers if intended_ns >= floor_ns]
        micros = [(now_ns - intended_ns) // 1000 for _, _, intended_ns in headers if intended_ns >= floor_ns]
    else:
        ids, micros = _read_mixed(payloads, now_ns, floor_ns)
    if ids:
        if reader is not None:
            recorder.on_read_by(reader, ids, micros)
        if counts:
            recorder.on_consumed_many(second, ids, micros)


def _read_mixed(payloads: list[bytes], now_ns: int, floor_ns: int) -> tuple[list[int], list[int]]:
    """Ids and end-to-end microseconds of binary and JSON payloads; others are skipped."""
    ids: list[int] = []
    micros: list[int] = []
    unpack = _ID_AND_TIME.unpack_from
    size = _ID_AND_TIME.size
    for data in payloads:
        if data[:4] == _MAGIC and len(data) >= size:
            _, record_id, intended_ns = unpack(data)
        else:
            payload = decode_payload(data)
            if payload is None:
                continue
            record_id, intended_ns = payload.record_id, payload.intended_ns
        if intended_ns >= floor_ns:
            ids.append(record_id)
            micros.append((now_ns - intended_ns) // 1000)
    return ids, micros
