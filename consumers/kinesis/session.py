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
lenient decoding, so what is decoded never differs.  A session or client passed in is used as
it is.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pybase64
from botocore.utils import parse_timestamp

__all__ = ["blob", "reader_session", "utc_timestamp"]


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


def reader_session() -> Any:
    """A new aiobotocore session whose clients parse timestamps with :func:`utc_timestamp` and
    blobs with :func:`blob`."""
    from aiobotocore.session import get_session

    session = get_session()
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=utc_timestamp, blob_parser=blob
    )
    return session
