"""One crafted record must not overwrite a sink item: the Lambda handler into DynamoDB (moto).

The attack: anything that can put a record on the stream (a device behind an IoT rule)
writes bytes with the KPL magic, a valid MD5 and an ``event_id`` tag naming an item a
legitimate producer wrote.  Identity must come from the record's position unless the event
id's MAC verifies with the deployment's key.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import boto3
import pytest

from consumers.adapters.lambda_handler import make_handler
from consumers.sinks.dynamodb import DynamoDBSink
from shardline.aggregation import AggregateBuilder, DeaggregationPolicy
from shardline.eventid import EventIdKey

pytestmark = pytest.mark.timeout(60)

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/devices"
KEY = EventIdKey("k" * 40)


def _aggregate(payload: dict[str, Any], event_id: str, key: EventIdKey | None = None) -> bytes:
    builder = AggregateBuilder(event_id_key=key)
    assert builder.try_add("device-1", json.dumps(payload).encode(), None, event_id)
    return builder.encode()


def _event(sequence: str, data: bytes) -> dict[str, Any]:
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "device-1",
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(data).decode("ascii"),
                    "approximateArrivalTimestamp": 1545084650.987,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventName": "aws:kinesis:record",
                "eventSourceARN": ARN,
                "awsRegion": "us-east-1",
            }
        ]
    }


@pytest.fixture
def table(moto_endpoint: str) -> tuple[Any, str]:
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    name = f"trust-{uuid.uuid4().hex[:12]}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client, name


def _items(client: Any, name: str) -> dict[str, str]:
    items = client.scan(TableName=name)["Items"]
    return {item["pk"]["S"]: item["who"]["S"] for item in items}


def test_a_crafted_aggregate_cannot_overwrite_an_item_without_the_event_id_key(
    moto_endpoint: str, table: tuple[Any, str]
) -> None:
    client, name = table
    handler = make_handler(DynamoDBSink(name, endpoint_url=moto_endpoint))
    legit = _aggregate({"who": "legitimate"}, "victim-1")
    crafted = _aggregate({"who": "attacker"}, "victim-1")

    assert handler(_event("100", legit), None) == {"batchItemFailures": []}
    assert handler(_event("200", crafted), None) == {"batchItemFailures": []}

    items = _items(client, name)
    assert sorted(items.values()) == ["attacker", "legitimate"]  # nothing overwritten
    assert items["devices/shardId-000000000000/100/0"] == "legitimate"  # keyed by position


def test_with_the_key_a_signed_event_id_is_the_key_and_a_forged_one_is_not(
    moto_endpoint: str, table: tuple[Any, str]
) -> None:
    client, name = table
    handler = make_handler(
        DynamoDBSink(name, endpoint_url=moto_endpoint), deaggregation=DeaggregationPolicy(event_id_key=KEY)
    )
    legit = _aggregate({"who": "legitimate"}, "victim-1", KEY)
    forged = _aggregate({"who": "attacker"}, "victim-1", EventIdKey("x" * 40))
    unsigned = _aggregate({"who": "attacker-unsigned"}, "victim-1")

    for sequence, data in (("100", legit), ("200", forged), ("300", unsigned)):
        assert handler(_event(sequence, data), None) == {"batchItemFailures": []}

    items = _items(client, name)
    assert items["victim-1"] == "legitimate"  # the producer's id chose the key
    assert items["devices/shardId-000000000000/200/0"] == "attacker"
    assert items["devices/shardId-000000000000/300/0"] == "attacker-unsigned"


def test_the_event_id_key_comes_from_a_secrets_manager_secret(moto_endpoint: str) -> None:
    secrets = boto3.client("secretsmanager", endpoint_url=moto_endpoint)
    name = f"event-id-{uuid.uuid4().hex[:8]}"
    document = json.dumps({"current": "k" * 40, "previous": ["p" * 40]})
    arn = secrets.create_secret(Name=name, SecretString=document)["ARN"]
    key = EventIdKey.from_environment(
        {"SHARDLINE_EVENT_ID_KEY_SECRET_ARN": arn}, secrets_client=lambda: secrets
    )
    assert key is not None and key.mac("e", b"d") == KEY.mac("e", b"d")
    assert key.accepts("e", b"d", EventIdKey("p" * 40).mac("e", b"d"))  # rotation: previous accepted
