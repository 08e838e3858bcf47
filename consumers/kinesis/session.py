"""The aiobotocore session a :class:`~consumers.kinesis.KinesisSource` builds when given none.

botocore turns every timestamp of a response into a ``datetime`` in ``dateutil``'s local time
zone, building a new ``tzlocal()`` for each value.  In GetRecords that is every record's
``ApproximateArrivalTimestamp``: on a stream of plain (not aggregated) 100-byte records it was
about half of the reader's CPU (~8 us per record in a py-spy profile).  Kinesis sends these
timestamps as epoch seconds, so the source's own session turns numbers straight into UTC
``datetime`` values (the same instant; UTC is also what the Lambda and KCL adapters give) and
leaves every other form to botocore.

Every record's ``Data`` arrives base64-encoded in the JSON body, and botocore decodes it with
the standard library at about 3.8 ns a byte (192 us for a 50 KiB aggregate; about 1.3 us per
256-byte record read).  The source's own session decodes it with ``pybase64`` (SIMD), strictly
(3.7 us for the same aggregate); a value that is not strict base64 falls back to botocore's
lenient decoding, so what is decoded never differs.

Even so, botocore's walk over each record's members costs a handler call per member: the
session's clients parse a successful GetRecords body with :func:`parse_get_records` instead
(:mod:`shardline.response_bodies`), which leaves anything it does not fully recognise to
botocore.  A session or client passed in is used as it is.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pybase64
from botocore.utils import parse_timestamp

from shardline.response_bodies import install_body_parser

__all__ = ["blob", "parse_get_records", "reader_session", "utc_timestamp"]

_RESPONSE_MEMBERS = frozenset({"Records", "NextShardIterator", "MillisBehindLatest"})
_RECORD_MEMBERS = frozenset({"SequenceNumber", "ApproximateArrivalTimestamp", "Data", "PartitionKey"})
_RECORD_MEMBERS_ENCRYPTED = _RECORD_MEMBERS | {"EncryptionType"}


def utc_timestamp(value: Any) -> datetime:
    """A response timestamp as an aware ``datetime``: epoch seconds in UTC, else botocore's parse."""
    if type(value) is float or type(value) is int:
        return datetime.fromtimestamp(value, UTC)
    parsed: datetime = parse_timestamp(value)
    return parsed


def blob(value: str) -> bytes:
    """A response blob's bytes: strict base64 decoded with SIMD, anything else as botocore does."""
    try:
        return pybase64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error: not strict base64 (botocore's decoding is lenient)
        return base64.b64decode(value)


def parse_get_records(body: bytes) -> dict[str, Any] | None:
    """A GetRecords response's members as this session's botocore parser would give them.

    Each record's ``Data`` is decoded by :func:`blob` and its arrival time by
    :func:`utc_timestamp`, as the session's parser defaults do.  ``None`` (botocore parses the
    body) unless every member is one the API defines, with its type: records with exactly their
    four members, or five with ``EncryptionType``; ``ChildShards``, which only the end of a
    shard carries, is left to botocore too.  A null member is left out, as botocore leaves it
    out (kinesis-mock writes ``"ChildShards": null``).
    """
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if type(parsed) is not dict:
        return None
    if None in parsed.values():  # a null member is left out, as botocore leaves it out
        parsed = {name: value for name, value in parsed.items() if value is not None}
    if not parsed.keys() <= _RESPONSE_MEMBERS:
        return None
    records = parsed.get("Records")
    iterator = parsed.get("NextShardIterator", "")
    behind = parsed.get("MillisBehindLatest", 0)
    if type(records) is not list or type(iterator) is not str or type(behind) is not int:
        return None
    try:
        return parsed if _convert_records(records) else None
    except (ValueError, OverflowError, OSError):  # not base64, or a time out of range
        return None  # botocore's parse raises its own error for it


def _convert_records(records: list[Any]) -> bool:
    """Check each record's members and decode its data and arrival time in place."""
    plain, encrypted = _RECORD_MEMBERS, _RECORD_MEMBERS_ENCRYPTED
    for record in records:
        if type(record) is not dict:
            return False
        members = record.keys()
        if members != plain:
            if members != encrypted:
                return False
            encryption = record["EncryptionType"]
            if encryption is None:
                del record["EncryptionType"]
            elif type(encryption) is not str:
                return False
        data = record["Data"]
        arrival = record["ApproximateArrivalTimestamp"]
        if (
            type(data) is not str
            or type(record["SequenceNumber"]) is not str
            or type(record["PartitionKey"]) is not str
            or (type(arrival) is not float and type(arrival) is not int)
        ):
            return False
        record["Data"] = blob(data)
        record["ApproximateArrivalTimestamp"] = datetime.fromtimestamp(arrival, UTC)
    return True


def reader_session() -> Any:
    """A new aiobotocore session whose clients parse timestamps with :func:`utc_timestamp`, blobs
    with :func:`blob` and successful GetRecords bodies with :func:`parse_get_records`."""
    from aiobotocore.session import get_session

    session = get_session()
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=utc_timestamp, blob_parser=blob
    )
    install_body_parser(session, "GetRecords", parse_get_records)
    return session
