"""The sinks' single door to :mod:`shardline.errormap`, plus the one question sinks ask of it.

All translation of AWS errors is done by :mod:`shardline.errormap` (whole-call exceptions
through its ``map_aws_errors`` boundary around each client call); this module keeps no
table of its own.  It adds only what every sink needs on top: for a per-entry error code
(Firehose ``ErrorCode``, DynamoDB reasons), whether the workflow should resend the entry as
throttled, retry it, or dead-letter it.
"""

from __future__ import annotations

from enum import Enum

from shardline.errormap import from_error_code
from shardline.errors import ThrottledError

__all__ = ["EntryVerdict", "classify_code"]


class EntryVerdict(Enum):
    """What the sink workflow does with one failed entry."""

    THROTTLED = "throttled"
    RETRY = "retry"
    REJECTED = "rejected"


def classify_code(code: str, service: str) -> EntryVerdict:
    """The verdict for a per-entry error code, decided by the shared error map."""
    error = from_error_code(code, service=service)
    if isinstance(error, ThrottledError):
        return EntryVerdict.THROTTLED
    return EntryVerdict.RETRY if error.retriable else EntryVerdict.REJECTED
