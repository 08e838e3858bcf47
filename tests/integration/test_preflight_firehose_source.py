"""The consumer's start-up check of a Firehose sink, over moto's wire: a delivery stream that
reads its own source (a Kinesis stream) is refused before anything is read.

Firehose answers every PutRecordBatch to such a stream with InvalidArgumentException ("This
operation is not permitted on KinesisStreamAsSource delivery stream type"), the same for
every record, so a run bisected each batch down to single records and dead-lettered the whole
stream while its checkpoints moved on.  moto takes the puts, so the check is what is tested.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.session import get_session

from consumers.preflight import run_checks, sink_check
from shardline.errors import ConfigurationError
from tests.integration.sink_readback import new_delivery_stream

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/firehose"


@pytest.fixture
async def aws(moto_endpoint: str) -> AsyncIterator[dict[str, Any]]:
    session = get_session()
    async with (
        session.create_client("s3", endpoint_url=moto_endpoint) as s3,
        session.create_client("firehose", endpoint_url=moto_endpoint) as firehose,
        session.create_client("kinesis", endpoint_url=moto_endpoint) as kinesis,
    ):
        bucket = f"fh-{uuid.uuid4().hex[:12]}"
        await s3.create_bucket(Bucket=bucket)
        yield {"firehose": firehose, "kinesis": kinesis, "bucket": bucket}


async def test_a_delivery_stream_reading_a_kinesis_stream_is_refused_at_start(
    moto_endpoint: str, aws: dict[str, Any]
) -> None:
    name = f"from-kinesis-{uuid.uuid4().hex[:12]}"
    await aws["kinesis"].create_stream(StreamName=name, ShardCount=1)
    summary = await aws["kinesis"].describe_stream_summary(StreamName=name)
    await aws["firehose"].create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={
            "KinesisStreamARN": summary["StreamDescriptionSummary"]["StreamARN"],
            "RoleARN": ROLE,
        },
        ExtendedS3DestinationConfiguration={"RoleARN": ROLE, "BucketARN": f"arn:aws:s3:::{aws['bucket']}"},
    )
    check = sink_check(f"firehose://{name}?endpoint_url={moto_endpoint}")
    assert check is not None
    with pytest.raises(
        ConfigurationError, match=f"'{name}' reads its records itself \\(KinesisStreamAsSource\\)"
    ):
        await run_checks([check])


async def test_a_direct_put_delivery_stream_passes(moto_endpoint: str, aws: dict[str, Any]) -> None:
    name = await new_delivery_stream(aws["firehose"], aws["bucket"])
    check = sink_check(f"firehose://{name}?endpoint_url={moto_endpoint}")
    assert check is not None
    await run_checks([check])
