"""Check, before a command starts, that every resource its arguments name exists.

A consumer started against a missing sink table used to read records, fail every write
with a ``ResourceNotFoundException`` that names no table, and bisect its batches looking
for a poison record.  The CLIs now look each named resource up once (one cheap describe
call each) and refuse to start with one line naming the resource and the option that named
it: :class:`~shardline.errors.MissingResourceError`, exit status 2.

Each check is a :class:`ResourceCheck`: what to call the resource in a message, the option
that named it, and an awaitable that raises :class:`~shardline.errors.ResourceNotFoundError`
when it is missing.  Resources that cannot be checked without side effects (files that are
created on first write, InfluxDB databases) are not checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shardline.clients import aiobotocore_client
from shardline.errormap import map_aws_errors, map_kafka_errors
from shardline.errors import ConfigurationError, MissingResourceError, ResourceNotFoundError
from shardline.uripaths import is_file_uri

__all__ = [
    "MissingResourceError",
    "ResourceCheck",
    "dead_letter_check",
    "dynamodb_table_check",
    "kafka_topics_check",
    "kinesis_stream_check",
    "run_checks",
    "s3_bucket_check",
    "sink_check",
]


@dataclass(frozen=True, slots=True)
class ResourceCheck:
    """One resource to look up: ``probe`` raises ResourceNotFoundError when it is missing."""

    kind: str
    name: str
    option: str
    service: str
    probe: Callable[[], Awaitable[Any]]


async def run_checks(checks: Sequence[ResourceCheck]) -> None:
    """Run every check (concurrently); raise :class:`MissingResourceError` for the first missing one.

    Other service errors (access denied, no credentials) are translated to the error tree and
    raised as they are: the command would meet them anyway, and they are not "missing".
    """

    async def one(check: ResourceCheck) -> None:
        try:
            with map_aws_errors(check.service):
                await check.probe()
        except ResourceNotFoundError as exc:
            raise MissingResourceError(check.kind, check.name, check.option, service=check.service) from exc

    results = await asyncio.gather(*(one(check) for check in checks), return_exceptions=True)
    for result in results:  # in the order of the arguments, missing resources first
        if isinstance(result, MissingResourceError):
            raise result
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _aws_probe(
    service: str, call: str, *, endpoint_url: str | None = None, **kwargs: Any
) -> Callable[[], Awaitable[Any]]:
    async def probe() -> Any:
        async with aiobotocore_client(service, endpoint_url=endpoint_url) as client:
            return await getattr(client, call)(**kwargs)

    return probe


def kinesis_stream_check(stream: str, option: str) -> ResourceCheck:
    """The Kinesis stream ``stream`` (DescribeStreamSummary)."""
    return ResourceCheck(
        "Kinesis stream",
        stream,
        option,
        "kinesis",
        _aws_probe("kinesis", "describe_stream_summary", StreamName=stream),
    )


def dynamodb_table_check(table: str, option: str) -> ResourceCheck:
    """The DynamoDB table ``table`` (DescribeTable)."""
    return ResourceCheck(
        "DynamoDB table", table, option, "dynamodb", _aws_probe("dynamodb", "describe_table", TableName=table)
    )


def _s3_bucket_check(bucket: str, option: str) -> ResourceCheck:
    async def probe() -> Any:
        async with aiobotocore_client("s3") as client:
            try:
                return await client.head_bucket(Bucket=bucket)
            except Exception as exc:  # HeadBucket answers a bare 404 without an error code
                status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 404:
                    raise ResourceNotFoundError("no such bucket", code="NoSuchBucket", service="s3") from exc
                raise

    return ResourceCheck("S3 bucket", bucket, option, "s3", probe)


def kafka_topics_check(topics: Sequence[str], option: str, config: Any) -> ResourceCheck:
    """The Kafka ``topics`` on the cluster ``config`` (a KafkaClientConfig) names.

    Lists the cluster's topics rather than asking for these ones, so a broker with
    ``auto.create.topics.enable`` does not create a misspelt topic just by being asked.
    """
    missing_holder: list[str] = []

    def lookup() -> None:
        from confluent_kafka.admin import AdminClient

        # A broker that cannot be reached raises KafkaException: translated here, so the
        # command ends with its one-line error instead of a traceback.
        admin = config.new_client(AdminClient)
        with map_kafka_errors():
            metadata = admin.list_topics(timeout=10)
        missing_holder.extend(topic for topic in topics if topic not in metadata.topics)
        if missing_holder:
            raise ResourceNotFoundError("unknown topic", code="UNKNOWN_TOPIC_OR_PART", service="kafka")

    async def probe() -> None:
        await asyncio.to_thread(lookup)

    return ResourceCheck("Kafka topic", ",".join(topics), option, "kafka", probe)


def sink_check(uri: str, option: str = "--sink") -> ResourceCheck | None:
    """The destination a sink URI names, or ``None`` when nothing can be checked up front."""
    from consumers.sinks.uri import parse_uri

    if is_file_uri(uri):
        return None
    scheme, netloc, path, query = parse_uri(uri)
    endpoint_url = query.get("endpoint_url")
    if scheme == "dynamodb" and netloc:
        return ResourceCheck(
            "DynamoDB table",
            netloc,
            option,
            "dynamodb",
            _keyed_like_the_sink(
                _aws_probe("dynamodb", "describe_table", endpoint_url=endpoint_url, TableName=netloc),
                uri,
            ),
        )
    if scheme == "firehose" and netloc:
        return ResourceCheck(
            "Firehose delivery stream",
            netloc,
            option,
            "firehose",
            _put_into(
                _aws_probe(
                    "firehose",
                    "describe_delivery_stream",
                    endpoint_url=endpoint_url,
                    DeliveryStreamName=netloc,
                ),
                netloc,
            ),
        )
    if scheme == "timestream" and netloc and path.strip("/"):
        table = path.strip("/")
        return ResourceCheck(
            "Timestream table",
            f"{netloc}/{table}",
            option,
            "timestream",
            _aws_probe("timestream-write", "describe_table", DatabaseName=netloc, TableName=table),
        )
    return None


def _keyed_like_the_sink(describe: Callable[[], Awaitable[Any]], uri: str) -> Callable[[], Awaitable[Any]]:
    """The DynamoDB sink table's lookup, which also refuses a table keyed by other attributes
    than the sink's items carry, or keying the record identity by a number or binary
    (:func:`consumers.sinks.dynamodb_keys.check_key_schema`)."""

    async def probe() -> Any:
        from consumers.sinks.dynamodb_keys import (
            check_key_schema,
            identity_keyed_query,
            key_attributes_of_query,
        )
        from consumers.sinks.uri import parse_uri

        answer = await describe()
        _scheme, netloc, _path, query = parse_uri(uri)
        check_key_schema(
            netloc, answer, key_attributes_of_query(query), identity_key=identity_keyed_query(query)
        )
        return answer

    return probe


def _put_into(describe: Callable[[], Awaitable[Any]], name: str) -> Callable[[], Awaitable[Any]]:
    """The Firehose sink's delivery stream lookup, which also refuses a stream that takes no
    PutRecordBatch: one reading a Kinesis stream or an MSK topic (``DeliveryStreamType`` other
    than ``DirectPut``).  Firehose answers every put to it with InvalidArgumentException ("not
    permitted on KinesisStreamAsSource delivery stream type"), the same for every record: each
    batch was bisected down to single records and the whole stream dead-lettered while the
    checkpoints moved on."""

    async def probe() -> Any:
        answer = await describe()
        kind = ((answer or {}).get("DeliveryStreamDescription") or {}).get("DeliveryStreamType")
        if kind is not None and kind != "DirectPut":
            raise ConfigurationError(
                f"Firehose delivery stream {name!r} reads its records itself ({kind}) and refuses "
                "every put: give the sink a delivery stream whose source is Direct PUT"
            )
        return answer

    return probe


def dead_letter_check(uri: str, option: str = "--dead-letter") -> ResourceCheck | None:
    """The bucket an ``s3://`` dead-letter URI names (files are created on first write)."""
    from consumers.sinks.uri import parse_uri

    if is_file_uri(uri):
        return None
    scheme, netloc, _path, _query = parse_uri(uri)
    if scheme == "s3" and netloc:
        return _s3_bucket_check(netloc, option)
    return None


def s3_bucket_check(bucket: str, option: str) -> ResourceCheck:
    """The S3 bucket ``bucket`` (HeadBucket)."""
    return _s3_bucket_check(bucket, option)
