"""Read a sink's destination back over the wire and hash it, for the replay-twice checks.

Each function returns ``(digest, contents)`` where ``digest`` is a SHA-256 of the
destination's state in a canonical order, so "the same state as one run" is one equality.

- DynamoDB: every item of the table (scan).
- Firehose: the lines of every object under the destination prefix.  Firehose is
  at-least-once, so the state is the set of lines deduplicated by their embedded
  ``event_id``, which is what a downstream consumer keeps.
- Timestream: moto accepts and appends every record, so the records it received are read
  through moto's model dump (``/moto-api/data.json``) and reduced with Timestream's own
  rule: one point per (dimensions, measure name, time), the highest ``Version`` wins.
- S3 dead letters: the JSON lines of every object under the prefix, by key.

Also the delivery streams the Firehose tests write through.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import aiohttp


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


async def dynamodb_state(client: Any, table: str) -> tuple[str, list[dict[str, Any]]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = await client.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    items.sort(key=lambda item: json.dumps(item, sort_keys=True))
    return digest(items), items


async def s3_objects(client: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    objects: dict[str, bytes] = {}
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = await client.list_objects_v2(**kwargs)
        for item in page.get("Contents", []):
            response = await client.get_object(Bucket=bucket, Key=item["Key"])
            async with response["Body"] as body:
                objects[item["Key"]] = await body.read()
        if not page.get("IsTruncated"):
            return objects
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


async def firehose_state(client: Any, bucket: str, prefix: str = "") -> tuple[str, dict[str, dict[str, Any]]]:
    """Lines delivered under ``prefix`` by event id (every line must be JSON ending in a newline)."""
    by_event: dict[str, dict[str, Any]] = {}
    for body in (await s3_objects(client, bucket, prefix)).values():
        assert body.endswith(b"\n"), "Firehose objects are newline-delimited"
        for line in body.splitlines():
            entry = json.loads(line)
            by_event[entry["event_id"]] = entry
    return digest(sorted(by_event.items())), by_event


async def dead_letter_state(client: Any, bucket: str, prefix: str = "") -> tuple[str, list[dict[str, Any]]]:
    entries = [
        json.loads(line)
        for body in (await s3_objects(client, bucket, prefix)).values()
        for line in body.splitlines()
    ]
    entries.sort(key=lambda entry: str(entry["id"]))
    return digest(entries), entries


async def timestream_received(moto_endpoint: str, database: str, table: str) -> list[dict[str, Any]]:
    """Every record moto's Timestream table received, in arrival order."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{moto_endpoint}/moto-api/data.json") as response,
    ):
        data = json.loads(await response.text())
    for model in data.get("timestreamwrite", {}).get("TimestreamTable", []):
        if model.get("name") == table and model.get("db_name") == database:
            records: list[dict[str, Any]] = model["records"]
            return records
    raise AssertionError(f"no Timestream table {database}.{table} in moto")


def timestream_points(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Timestream's upsert rule over what was received: the highest Version per point wins."""
    points: dict[str, dict[str, Any]] = {}
    for record in records:
        dimensions = sorted((d["Name"], d["Value"]) for d in record.get("Dimensions", []))
        key = json.dumps([dimensions, record.get("MeasureName", ""), record["Time"]])
        held = points.get(key)
        if held is None or int(record.get("Version", 0)) >= int(held.get("Version", 0)):
            points[key] = record
    return points


async def timestream_state(
    moto_endpoint: str, database: str, table: str
) -> tuple[str, dict[str, dict[str, Any]]]:
    points = timestream_points(await timestream_received(moto_endpoint, database, table))
    return digest(sorted(points.items())), points


async def new_delivery_stream(
    firehose: Any, bucket: str, prefix: str = "raw/", *, compression: str | None = None
) -> str:
    """A DirectPut delivery stream into ``bucket`` under ``prefix`` (moto writes each batch at once)."""
    name = f"archive-{uuid.uuid4().hex[:12]}"
    destination: dict[str, Any] = {
        "RoleARN": "arn:aws:iam::123456789012:role/firehose",
        "BucketARN": f"arn:aws:s3:::{bucket}",
        "Prefix": prefix,
    }
    if compression is not None:
        destination["CompressionFormat"] = compression
    await firehose.create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration=destination,
    )
    return name
