"""Timestream for LiveAnalytics sink: WriteRecords with a position-derived ``Version``.

Note: Timestream for LiveAnalytics closed to new customers in 2025; new deployments should
use Timestream for InfluxDB through :class:`consumers.sinks.influxdb.InfluxDBSink` with the
same :class:`~consumers.sinks.mapping.FieldMapping`.

A JSON-object payload becomes one MULTI-measure record (or one record per measure when
``multi_measure`` is off): dimensions and measures from the mapping, the time from the
mapping's time field or the record's arrival time (nanoseconds), and ``Version`` from the
record position (:mod:`consumers.sinks.versioning`), so writing the same record again is an
upsert of the same version instead of a rejection.  The measure name and time unit go in
``CommonAttributes``.  <= 100 Timestream records per call.

``RejectedRecordsException`` is handled per record: a rejection whose ``ExistingVersion``
is above ours means the table holds a newer write of the point (a duplicate, i.e. success);
other rejections are dead-lettered with Timestream's reason.  That includes an
``ExistingVersion`` equal to ours: Timestream takes the same values again at the same version
(a replay is accepted), so it refuses one only when the point holds *different* values at
that version, written by another record whose version tied with this one (plain Kinesis
records that arrived in the same millisecond share a version).  Counted as a duplicate, that
record was acknowledged and never written.  Throttling and internal errors of the whole call
are raised as retriable errors (the pipeline waits them out).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.sinks.awsclient import LazyClient
from consumers.sinks.base import BatchingSink, ChunkLimits, EntryResult, Outcome
from consumers.sinks.mapping import FieldMapping, decode_object
from consumers.sinks.timestream_values import (
    check_mapping,
    dimensions,
    measure_name,
    measure_value,
    time_text,
)
from consumers.sinks.versioning import record_version
from shardline.endpoints import redact_url
from shardline.errormap import map_aws_errors
from shardline.errors import ConfigurationError, InvalidRequestError, ValidationError
from shardline.limits import TIMESTREAM_WRITE_MAX_RECORDS
from shardline.records import ConsumedRecord

__all__ = ["TimestreamEntry", "TimestreamSink", "from_uri", "measure_value"]


@dataclass(frozen=True, slots=True)
class TimestreamEntry:
    """The Timestream records one consumed record becomes (one, or one per measure)."""

    records: tuple[dict[str, Any], ...] = field(repr=False)
    version: int
    size: int


class TimestreamSink(BatchingSink[TimestreamEntry]):
    """Writes JSON-object payloads to a Timestream table, upserting by version."""

    name = "timestream"
    limits = ChunkLimits(max_entries=TIMESTREAM_WRITE_MAX_RECORDS)

    def __init__(
        self,
        database: str,
        table: str,
        *,
        mapping: FieldMapping | None = None,
        client: Any | None = None,
        session: Any | None = None,
        endpoint_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not database or not table:
            raise ConfigurationError("Timestream sink needs a database and a table")
        self.database = database
        self.table = table
        self.mapping = mapping or FieldMapping()
        check_mapping(self.mapping)
        self.client = LazyClient(
            "timestream-write", client=client, session=session, endpoint_url=endpoint_url
        )

    def __repr__(self) -> str:
        return f"TimestreamSink({self.database!r}, {self.table!r})"

    def common_attributes(self) -> dict[str, Any]:
        common: dict[str, Any] = {"TimeUnit": "NANOSECONDS"}
        if self.mapping.multi_measure:
            common.update(MeasureName=self.mapping.measure_name, MeasureValueType="MULTI")
        return common

    def encode(self, record: ConsumedRecord) -> TimestreamEntry:
        payload = decode_object(record)
        time = time_text(self.mapping.time_ns(record, payload))
        version = record_version(record, payload, self.mapping.version_field)
        measures = self.mapping.measures_of(payload)
        if not measures:
            raise ValidationError("payload has no measure")
        base = {
            "Dimensions": dimensions(self.mapping.dimensions_of(payload)),
            "Time": time,
            "Version": version,
        }
        if self.mapping.multi_measure:
            values = []
            for name, raw in measures.items():
                value, kind = measure_value(raw)
                values.append({"Name": measure_name(name, column=True), "Value": value, "Type": kind})
            records: tuple[dict[str, Any], ...] = ({**base, "MeasureValues": values},)
        else:
            if len(measures) > TIMESTREAM_WRITE_MAX_RECORDS:
                # each measure is a record of the call, and botocore refuses a call of more
                # than 100: sent, the record failed a call of its own and held its neighbours
                raise ValidationError(
                    f"payload has {len(measures)} measures; a single-measure write takes at most "
                    f"{TIMESTREAM_WRITE_MAX_RECORDS} (the records of one call)"
                )
            single = []
            for name, raw in measures.items():
                value, kind = measure_value(raw)
                single.append(
                    {
                        **base,
                        "MeasureName": measure_name(name, column=False),
                        "MeasureValue": value,
                        "MeasureValueType": kind,
                    }
                )
            records = tuple(single)
        return TimestreamEntry(records=records, version=version, size=len(json.dumps(records)))

    def entry_size(self, entry: TimestreamEntry) -> int:
        return entry.size

    def entry_count(self, entry: TimestreamEntry) -> int:
        return len(entry.records)

    async def send(self, entries: Sequence[TimestreamEntry]) -> Sequence[EntryResult]:
        client = await self.client.get()
        flat: list[dict[str, Any]] = []
        owner: list[int] = []
        for index, entry in enumerate(entries):
            flat.extend(entry.records)
            owner.extend([index] * len(entry.records))
        try:
            with map_aws_errors("timestream"):
                await client.write_records(
                    DatabaseName=self.database,
                    TableName=self.table,
                    CommonAttributes=self.common_attributes(),
                    Records=flat,
                )
        except InvalidRequestError as error:
            rejected = _rejected_records(error.__cause__)
            if rejected is None:
                raise
            return self._per_entry(entries, owner, rejected)
        return [EntryResult.written()] * len(entries)

    def _per_entry(
        self, entries: Sequence[TimestreamEntry], owner: list[int], rejected: list[dict[str, Any]]
    ) -> list[EntryResult]:
        results = [EntryResult.written()] * len(entries)
        for rejection in rejected:
            index = int(rejection.get("RecordIndex", -1))
            if not 0 <= index < len(owner):
                continue
            entry_index = owner[index]
            existing = rejection.get("ExistingVersion")
            reason = str(rejection.get("Reason", "rejected"))
            # Strictly above: at an equal version the point holds another record's values
            if existing is not None and int(existing) > entries[entry_index].version:
                if results[entry_index].outcome is Outcome.WRITTEN:
                    results[entry_index] = EntryResult.duplicate()
            else:
                results[entry_index] = EntryResult.rejected(reason, "RejectedRecordsException")
        return results

    async def release(self) -> None:
        await self.client.close()


def _rejected_records(exc: BaseException | None) -> list[dict[str, Any]] | None:
    """The per-record rejections of a RejectedRecordsException (``None`` for other errors).

    Timestream writes every record of the call except the rejected ones, and lists those
    with their index, reason and (for version conflicts) the version the table holds.
    """
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    rejected = response.get("RejectedRecords")
    return list(rejected) if isinstance(rejected, list) else None


def from_uri(
    netloc: str, path: str, query: dict[str, str], uri: str, options: dict[str, Any]
) -> TimestreamSink:
    """``timestream://DATABASE/TABLE?dimensions=a,b&measures=x,y&time=ts&time_unit=ms``."""
    table = path.strip("/")
    if not netloc or not table or "/" in table:
        raise ConfigurationError(f"Timestream URI must be timestream://DATABASE/TABLE: {redact_url(uri)!r}")
    options.setdefault("mapping", FieldMapping.from_options(query))
    if "endpoint_url" in query:
        options.setdefault("endpoint_url", query["endpoint_url"])
    return TimestreamSink(netloc, table, **options)
