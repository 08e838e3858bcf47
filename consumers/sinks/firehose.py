"""Firehose sink: PutRecordBatch of newline-delimited JSON with a deterministic event id.

Firehose is at-least-once (a retried batch may deliver a record twice), so each line
embeds ``event_id`` (the producer's id, or a digest of the record position) for downstream
deduplication, along with the position and the base64 payload
(:func:`consumers.sinks.encoding.record_to_dict`).  The same layout is what
``shardline replay`` reads back when backfilling from Firehose's S3 archive.

Limits enforced here (moto accepts more): <= 500 records and <= 4 MiB per call, <= 1000 KiB
per record (larger records are reported rejected).  Entries reported in ``FailedPutCount``
are reported throttled or failed per entry; the pipeline resends only those.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from consumers.sinks.awsclient import LazyClient
from consumers.sinks.awserrors import EntryVerdict, classify_code
from consumers.sinks.base import BatchingSink, ChunkLimits, EntryResult
from consumers.sinks.encoding import record_to_dict
from shardline.endpoints import redact_url
from shardline.errormap import map_aws_errors
from shardline.errors import ConfigurationError
from shardline.limits import FIREHOSE_BATCH_MAX_BYTES, FIREHOSE_BATCH_MAX_RECORDS, FIREHOSE_RECORD_MAX_BYTES
from shardline.records import ConsumedRecord

__all__ = ["FirehoseSink", "encode_line", "from_uri"]


def encode_line(record: ConsumedRecord) -> bytes:
    """The newline-terminated JSON line Firehose receives for a record."""
    return json.dumps(record_to_dict(record), separators=(",", ":"), sort_keys=True).encode() + b"\n"


class FirehoseSink(BatchingSink[bytes]):
    """Sends records to a Firehose delivery stream."""

    name = "firehose"
    limits = ChunkLimits(
        max_entries=FIREHOSE_BATCH_MAX_RECORDS,
        max_bytes=FIREHOSE_BATCH_MAX_BYTES,
        max_entry_bytes=FIREHOSE_RECORD_MAX_BYTES,
    )

    def __init__(
        self,
        delivery_stream: str,
        *,
        client: Any | None = None,
        session: Any | None = None,
        endpoint_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not delivery_stream:
            raise ConfigurationError("Firehose sink needs a delivery stream name")
        self.delivery_stream = delivery_stream
        self.client = LazyClient("firehose", client=client, session=session, endpoint_url=endpoint_url)

    def __repr__(self) -> str:
        return f"FirehoseSink({self.delivery_stream!r})"

    def encode(self, record: ConsumedRecord) -> bytes:
        return encode_line(record)

    def entry_size(self, entry: bytes) -> int:
        return len(entry)

    async def send(self, entries: Sequence[bytes]) -> Sequence[EntryResult]:
        client = await self.client.get()
        with map_aws_errors("firehose"):
            response = await client.put_record_batch(
                DeliveryStreamName=self.delivery_stream, Records=[{"Data": entry} for entry in entries]
            )
        if not response.get("FailedPutCount"):
            return [EntryResult.written()] * len(entries)
        results: list[EntryResult] = []
        for answer in response.get("RequestResponses", []):
            code = answer.get("ErrorCode")
            if not code:
                results.append(EntryResult.written())
                continue
            kind = classify_code(code, "firehose")
            reason = str(answer.get("ErrorMessage") or code)
            if kind is EntryVerdict.THROTTLED:
                results.append(EntryResult.throttled(reason, code))
            elif kind is EntryVerdict.RETRY:
                results.append(EntryResult.retry(reason, code))
            else:
                results.append(EntryResult.rejected(reason, code))
        return results

    async def release(self) -> None:
        await self.client.close()


def from_uri(
    netloc: str, path: str, query: dict[str, str], uri: str, options: dict[str, Any]
) -> FirehoseSink:
    """``firehose://DELIVERY_STREAM``."""
    if not netloc or path.strip("/"):
        raise ConfigurationError(f"Firehose URI must be firehose://DELIVERY_STREAM: {redact_url(uri)!r}")
    if "endpoint_url" in query:
        options.setdefault("endpoint_url", query["endpoint_url"])
    return FirehoseSink(netloc, **options)
