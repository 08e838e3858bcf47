"""The InfluxDB sink against a real InfluxDB 1.x on loopback (v1 /write API)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from consumers.sinks.deadletter import MemoryDeadLetter
from consumers.sinks.influxdb import InfluxDBSink
from consumers.sinks.mapping import FieldMapping
from shardline.records import ConsumedRecord, KinesisPosition
from tests.faults.workflow import deliver

pytestmark = pytest.mark.integration

MAPPING = FieldMapping(dimensions=("device", "site"), measures=("temp", "note"), time_field="ts")


def record(i: int, payload: dict[str, Any] | bytes) -> ConsumedRecord:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return ConsumedRecord(data, "k", KinesisPosition("s", "shardId-000000000000", str(i)))


async def query(url: str, database: str, statement: str) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/query", params={"db": database, "q": statement, "epoch": "ns"}) as response,
    ):
        return await response.json()


async def test_replay_twice_leaves_the_same_points_and_escapes_special_characters(influxdb_url: str) -> None:
    database = f"db_{uuid.uuid4().hex[:10]}"
    await query(influxdb_url, database, f'CREATE DATABASE "{database}"')
    dead = MemoryDeadLetter()
    sink = InfluxDBSink(influxdb_url, database=database, mapping=MAPPING)
    batch = [
        record(
            i,
            {
                "device": f"dev {i % 3},x=y",
                "site": "a b",
                "temp": i * 0.5,
                "note": 'say "hi"',
                "ts": 1_700_000_000_000 + i,
            },
        )
        for i in range(1, 21)
    ]
    poison = record(99, b"not json")
    try:
        await deliver(sink, [*batch, poison], dead)
        once = await query(influxdb_url, database, "SELECT * FROM metrics")
        await deliver(sink, batch, dead)
        twice = await query(influxdb_url, database, "SELECT * FROM metrics")
    finally:
        await sink.close()
    digest = [hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest() for r in (once, twice)]
    assert digest[0] == digest[1]
    values = once["results"][0]["series"][0]["values"]
    assert len(values) == 20
    assert {tuple(row[1:]) for row in values} >= {("dev 1,x=y", 'say "hi"', "a b", 0.5)}
    assert list(dead.entries) == [poison.identity]


async def test_crafted_texts_neither_move_a_point_nor_fail_their_neighbours(influxdb_url: str) -> None:
    database = f"db_{uuid.uuid4().hex[:10]}"
    await query(influxdb_url, database, f'CREATE DATABASE "{database}"')
    dead = MemoryDeadLetter()
    mapping = FieldMapping(dimensions=("device", "site"), time_field="ts")
    sink = InfluxDBSink(influxdb_url, database=database, mapping=mapping)
    good = record(1, {"device": "C:\\dev", "site": "s", "temp": 1.5, "ts": 1})
    crafted = [
        record(2, {"device": "d\\", "site": "s", "temp": 2.5, "ts": 2}),  # took in the site tag
        record(3, {"device": "d", "site": "s", "k\\": 1, "temp": 3.5, "ts": 3}),  # fields merged
        record(4, {"device": "d", "site": "s", "time": 1, "ts": 4}),  # HTTP 400 for the call
        record(5, {"device": "d", "site": "s", "\ttemp": 9.5, "ts": 5}),  # stored as 'temp'
        record(6, {"device": "d", "site": "s", 'te\\"mp': 9.5, "ts": 6}),  # stored as 'te"mp'
        record(7, {"device": "d", "site": "s", "temp": 7.5, "ts": 10**20}),  # HTTP 400 for the call
    ]
    try:
        await deliver(sink, [good, *crafted], dead)
    finally:
        await sink.close()
    result = await query(influxdb_url, database, "SELECT * FROM metrics GROUP BY *")
    series = result["results"][0]["series"]
    assert [(s["tags"], s["values"]) for s in series] == [
        ({"device": "C:\\dev", "site": "s"}, [[1_000_000, 1.5]])
    ]
    assert sorted(dead.entries) == sorted(r.identity for r in crafted)
    assert {entry.error_type for entry in dead.entries.values()} == {"ValidationError"}
    assert sink.stats.failed_calls == 0  # each refused before the call, none bisected out


async def test_readings_of_one_request_timed_by_arrival_are_all_kept(influxdb_url: str) -> None:
    # plain Kinesis records of one PutRecords request share their arrival millisecond and
    # sub-sequence number 0: written at one time, InfluxDB kept the last reading only
    database = f"db_{uuid.uuid4().hex[:10]}"
    await query(influxdb_url, database, f'CREATE DATABASE "{database}"')
    arrival = datetime(2024, 5, 1, 12, tzinfo=UTC)
    batch = [
        ConsumedRecord(
            json.dumps({"device": "d1", "temp": 20.0 + i}).encode(),
            "d1",
            KinesisPosition(
                "s",
                "shardId-000000000000",
                str(49590338271490256608559692538361571095921575989136588898 + i * 2**64),
            ),
            arrival_time=arrival,
        )
        for i in range(50)
    ]
    sink = InfluxDBSink(influxdb_url, database=database, mapping=FieldMapping(dimensions=("device",)))
    try:
        await deliver(sink, batch, MemoryDeadLetter())
        await deliver(sink, batch, MemoryDeadLetter())  # a replay lands on the same points
    finally:
        await sink.close()
    result = await query(influxdb_url, database, "SELECT temp FROM metrics")
    values = result["results"][0]["series"][0]["values"]
    assert sorted(row[1] for row in values) == [20.0 + i for i in range(50)]
