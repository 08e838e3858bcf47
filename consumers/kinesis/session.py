"""The aiobotocore session a :class:`~consumers.kinesis.KinesisSource` builds when given none.

botocore turns every timestamp of a response into a ``datetime`` in ``dateutil``'s local time
zone, building a new ``tzlocal()`` for each value.  In GetRecords that is every record's
``ApproximateArrivalTimestamp``: on a stream of plain (not aggregated) 100-byte records it was
about half of the reader's CPU (~8 us per record in a py-spy profile).  Kinesis sends these
timestamps as epoch seconds, so the source's own session turns numbers straight into UTC
``datetime`` values (the same instant; UTC is also what the Lambda and KCL adapters give) and
leaves every other form to botocore.  A session or client passed in is used as it is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.utils import parse_timestamp

__all__ = ["reader_session", "utc_timestamp"]


def utc_timestamp(value: Any) -> datetime:
    """A response timestamp as an aware ``datetime``: epoch seconds in UTC, else botocore's parse."""
    if type(value) is float or type(value) is int:
        return datetime.fromtimestamp(value, UTC)
    parsed: datetime = parse_timestamp(value)
    return parsed


def reader_session() -> Any:
    """A new aiobotocore session whose clients parse timestamps with :func:`utc_timestamp`."""
    from aiobotocore.session import get_session

    session = get_session()
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=utc_timestamp)
    return session
