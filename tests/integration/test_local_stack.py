"""Real round trips through every local server the fixtures start."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration

_CONFIG = Config(retries={"total_max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)


def _client(service: str, endpoint: str) -> Any:
    return boto3.session.Session().client(service, endpoint_url=endpoint, config=_CONFIG)  # type: ignore[call-overload]


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _kinesis_round_trip(endpoint: str) -> None:
    kinesis = _client("kinesis", endpoint)
    stream = _unique("stream")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    payloads = [f"payload-{index}".encode() for index in range(5)]
    response = kinesis.put_records(
        StreamName=stream,
        Records=[{"Data": data, "PartitionKey": f"key-{index}"} for index, data in enumerate(payloads)],
    )
    assert response["FailedRecordCount"] == 0
    shard_id = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=100)["Records"]
    assert [record["Data"] for record in records] == payloads
    assert [record["PartitionKey"] for record in records] == [f"key-{index}" for index in range(5)]
    kinesis.delete_stream(StreamName=stream)


def test_kinesis_mock_put_and_get(kinesis_endpoint: str) -> None:
    _kinesis_round_trip(kinesis_endpoint)


def test_moto_kinesis_put_and_get(moto_endpoint: str) -> None:
    _kinesis_round_trip(moto_endpoint)


def test_kinesalite_put_and_get(kinesalite_endpoint: str) -> None:
    _kinesis_round_trip(kinesalite_endpoint)


def test_dynamodb_conditional_write_succeeds_once_then_fails(moto_endpoint: str) -> None:
    dynamodb = _client("dynamodb", moto_endpoint)
    table = _unique("table")
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    item = {"id": {"S": "event-1"}, "value": {"N": "1"}}
    dynamodb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(id)")
    with pytest.raises(ClientError) as raised:
        dynamodb.put_item(
            TableName=table,
            Item={**item, "value": {"N": "2"}},
            ConditionExpression="attribute_not_exists(id)",
        )
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    stored = dynamodb.get_item(TableName=table, Key={"id": {"S": "event-1"}}, ConsistentRead=True)["Item"]
    assert stored["value"] == {"N": "1"}


def test_firehose_batch_lands_in_s3(moto_endpoint: str) -> None:
    s3 = _client("s3", moto_endpoint)
    firehose = _client("firehose", moto_endpoint)
    bucket, delivery = _unique("bucket"), _unique("delivery")
    s3.create_bucket(Bucket=bucket)
    firehose.create_delivery_stream(
        DeliveryStreamName=delivery,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "landing/",
        },
    )
    lines = [json.dumps({"n": index}).encode() + b"\n" for index in range(3)]
    response = firehose.put_record_batch(
        DeliveryStreamName=delivery, Records=[{"Data": line} for line in lines]
    )
    assert response["FailedPutCount"] == 0
    objects = s3.list_objects_v2(Bucket=bucket, Prefix="landing/").get("Contents", [])
    assert objects, "the batch did not land in S3"
    landed = b"".join(s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read() for entry in objects)
    assert landed == b"".join(lines)


def test_tansu_produce_and_consume(kafka_bootstrap: str) -> None:
    from confluent_kafka import Consumer, KafkaException, Producer
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    topic = _unique("topic")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)

    delivered: list[str] = []
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    sent = [f"message-{index}".encode() for index in range(5)]
    for value in sent:
        producer.produce(
            topic,
            value=value,
            key=b"device-1",
            on_delivery=lambda err, msg: delivered.append("ok" if err is None else str(err)),
        )
    assert producer.flush(30) == 0
    assert delivered == ["ok"] * len(sent)

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": _unique("group"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    received: list[bytes] = []
    try:
        consumer.subscribe([topic])
        for _ in range(120):  # bounded: each poll waits up to 1 s for the broker
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            payload = message.value()
            assert payload is not None
            received.append(payload)
            if len(received) == len(sent):
                break
    finally:
        consumer.close()
    assert received == sent


def test_influxdb_write_and_query(influxdb_url: str) -> None:
    database = _unique("db").replace("-", "_")

    def post(path: str, params: dict[str, str], body: bytes = b"") -> bytes:
        url = f"{influxdb_url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, data=body, method="POST")
        with urllib.request.urlopen(request, timeout=30) as reply:
            return bytes(reply.read())

    post("/query", {"q": f'CREATE DATABASE "{database}"'})
    post("/write", {"db": database, "precision": "s"}, b"temperature,device=d1 value=21.5 1700000000\n")
    answer = json.loads(post("/query", {"db": database, "q": 'SELECT "value" FROM "temperature"'}))
    series = answer["results"][0]["series"][0]
    assert series["values"] == [["2023-11-14T22:13:20Z", 21.5]]


def _shardline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shardline.cli", "local", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _exports(stdout: str) -> dict[str, str]:
    exported: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            exported[name] = shlex.split(value)[0]
    return exported


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"  # exited, waiting to be reaped by init


@pytest.mark.parametrize(
    ("services", "engine"),
    [("kinesis,aws,kafka", "kinesis-mock"), ("kinesis,aws", "moto")],
)
def test_local_up_then_down_leaves_no_process(tmp_path: Path, services: str, engine: str) -> None:
    env = {**os.environ, "SHARDLINE_LOCAL_STATE": str(tmp_path / "state.json")}
    started = _shardline(
        "up",
        "--services",
        services,
        "--kinesis-engine",
        engine,
        "--env-file",
        str(tmp_path / "env.sh"),
        env=env,
    )
    assert started.returncode == 0, started.stderr
    exported = _exports(started.stdout)
    assert (tmp_path / "env.sh").read_text().splitlines() == started.stdout.splitlines()
    state = json.loads((tmp_path / "state.json").read_text())
    pids = [server["pid"] for server in state["servers"]]
    try:
        assert len(pids) == (3 if engine == "kinesis-mock" else 1)
        assert exported["AWS_SECRET_ACCESS_KEY"] == "testing"
        assert exported["AWS_ENDPOINT_URL_TIMESTREAM_WRITE"] == exported["AWS_ENDPOINT_URL_DYNAMODB"]
        if engine == "moto":
            assert exported["AWS_ENDPOINT_URL_KINESIS"] == exported["AWS_ENDPOINT_URL_DYNAMODB"]
        # The exported endpoint serves real requests after `up` itself has exited.
        kinesis = _client("kinesis", exported["AWS_ENDPOINT_URL_KINESIS"])
        assert "StreamNames" in kinesis.list_streams()
        status = _shardline("status", env=env)
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("running") == len(pids)
        again = _shardline("env", env=env)  # a second terminal gets the same exports
        assert again.returncode == 0 and again.stdout == started.stdout, again.stderr
    finally:
        stopped = _shardline("down", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.count("stopped ") == len(pids)
    assert [pid for pid in pids if not _gone(pid)] == []
    assert not (tmp_path / "state.json").exists()
    assert _shardline("status", env=env).returncode == 1
    gone = _shardline("env", env=env)
    assert gone.returncode == 1 and "shardline local up" in gone.stderr and not gone.stdout
