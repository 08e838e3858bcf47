"""Where a Kinesis read starts: the five iterator types of GetShardIterator and SubscribeToShard.

One value type serves both APIs so a reader can switch from polling to fan-out, or recover an
expired iterator, without translating positions by hand.  Sequence numbers are validated here,
before any network call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeGuard

from shardline.errors import InvalidRequestError, TransientServiceError, ValidationError
from shardline.validation import is_decimal

__all__ = [
    "AFTER_SEQUENCE_NUMBER",
    "AT_SEQUENCE_NUMBER",
    "AT_TIMESTAMP",
    "CLOCK_SKEW_TOLERANCE",
    "LATEST",
    "SEQUENCE_NUMBER_DIGITS_MAX",
    "TRIM_HORIZON",
    "StartKind",
    "StartPosition",
    "is_sequence_number",
    "may_be_ahead_of_service",
    "start_refusals",
]

SEQUENCE_NUMBER_DIGITS_MAX = 128
"""The most decimal digits a sequence number may have, from a caller or from the service."""

CLOCK_SKEW_TOLERANCE = timedelta(minutes=5)
"""How far this machine's clock may run ahead of the service's: SigV4 refuses requests signed
by a clock further off, so within it a request still goes out and is answered."""


def may_be_ahead_of_service(timestamp: datetime, now: datetime) -> bool:
    """Whether the service may take ``timestamp`` for a time in the future although it is not.

    Kinesis refuses an AT_TIMESTAMP iterator "in the future" by its own clock
    (InvalidArgumentException). A timestamp taken from this machine's clock a moment ago (a
    window that has just begun, a range ending "now") is in the future to a service whose clock
    runs a little behind; that refusal passes as the service's clock does, and is not bad input.
    """
    return timestamp > now - CLOCK_SKEW_TOLERANCE


@contextlib.contextmanager
def start_refusals(position: StartPosition, asked_at: datetime, call: str) -> Iterator[None]:
    """Around a call that starts a read at ``position`` (GetShardIterator, SubscribeToShard,
    its errors already mapped): what the service refusing it as a bad request means.

    At a time the service may only take for the future (:func:`may_be_ahead_of_service`), the
    refusal passes with time: re-raised as a :class:`TransientServiceError`, asked again with
    back-off by the one retry engine, at the same position (a moved one would skip or repeat
    records). Otherwise it is the bad request it says it is, raised as it is.
    """
    try:
        yield
    except InvalidRequestError as refused:
        stamp = position.timestamp
        if stamp is None or not may_be_ahead_of_service(stamp, asked_at):
            raise
        raise TransientServiceError(
            f"{call}: Kinesis took the start time {stamp.isoformat()} for a time in the future "
            "(its clock is behind this machine's)",
            code=refused.code,
            service="kinesis",
        ) from refused


class StartKind(StrEnum):
    """The iterator types Kinesis understands (the value is the API's own spelling)."""

    TRIM_HORIZON = "TRIM_HORIZON"
    LATEST = "LATEST"
    AT_TIMESTAMP = "AT_TIMESTAMP"
    AT_SEQUENCE_NUMBER = "AT_SEQUENCE_NUMBER"
    AFTER_SEQUENCE_NUMBER = "AFTER_SEQUENCE_NUMBER"


@dataclass(frozen=True, slots=True)
class StartPosition:
    """A starting position in one shard.

    Build it with :data:`TRIM_HORIZON`, :data:`LATEST`, :func:`AT_TIMESTAMP`,
    :func:`AT_SEQUENCE_NUMBER` or :func:`AFTER_SEQUENCE_NUMBER`.
    ``skip_through_sub_sequence`` (only with ``AT_SEQUENCE_NUMBER``) drops the de-aggregated
    records of the starting aggregate up to and including that sub-sequence number: this is how
    a reader resumes inside a KPL aggregate that was only partly checkpointed.
    """

    kind: StartKind
    sequence_number: str | None = None
    timestamp: datetime | None = None
    skip_through_sub_sequence: int | None = None

    def __post_init__(self) -> None:
        needs_sequence = self.kind in (StartKind.AT_SEQUENCE_NUMBER, StartKind.AFTER_SEQUENCE_NUMBER)
        if needs_sequence:
            _check_sequence_number(self.sequence_number)
        elif self.sequence_number is not None:
            raise ValidationError(f"{self.kind.value} takes no sequence number")
        if self.kind is StartKind.AT_TIMESTAMP:
            if not isinstance(self.timestamp, datetime):
                raise ValidationError("AT_TIMESTAMP needs a datetime")
            if self.timestamp.tzinfo is None:
                raise ValidationError("AT_TIMESTAMP needs a timezone-aware datetime")
        elif self.timestamp is not None:
            raise ValidationError(f"{self.kind.value} takes no timestamp")
        if self.skip_through_sub_sequence is not None:
            if self.kind is not StartKind.AT_SEQUENCE_NUMBER:
                raise ValidationError("skip_through_sub_sequence needs AT_SEQUENCE_NUMBER")
            if self.skip_through_sub_sequence < 0:
                raise ValidationError("skip_through_sub_sequence must be >= 0")

    @property
    def is_sequence_based(self) -> bool:
        return self.sequence_number is not None

    def iterator_args(self) -> dict[str, Any]:
        """Keyword arguments for GetShardIterator (besides StreamName/ShardId)."""
        args: dict[str, Any] = {"ShardIteratorType": self.kind.value}
        if self.sequence_number is not None:
            args["StartingSequenceNumber"] = self.sequence_number
        if self.timestamp is not None:
            args["Timestamp"] = self.timestamp
        return args

    def starting_position(self) -> dict[str, Any]:
        """The ``StartingPosition`` structure of SubscribeToShard."""
        position: dict[str, Any] = {"Type": self.kind.value}
        if self.sequence_number is not None:
            position["SequenceNumber"] = self.sequence_number
        if self.timestamp is not None:
            position["Timestamp"] = self.timestamp
        return position

    def skips(self, sequence_number: str, sub_sequence_number: int) -> bool:
        """Whether a de-aggregated record at this position was already processed."""
        if self.skip_through_sub_sequence is None or self.sequence_number is None:
            return False
        return (int(sequence_number), sub_sequence_number) <= (
            int(self.sequence_number),
            self.skip_through_sub_sequence,
        )

    def first_kept_sub_sequence(self, sequence_number: str) -> int:
        """How many leading sub-records of the record ``sequence_number`` were already processed.

        The count :meth:`skips` implies for a whole aggregate at once: 0 when none, a number
        larger than any aggregate holds when all.
        """
        if self.skip_through_sub_sequence is None or self.sequence_number is None:
            return 0
        sequence, start = int(sequence_number), int(self.sequence_number)
        if sequence < start:
            return _ALL_SUB_RECORDS
        if sequence == start:
            return self.skip_through_sub_sequence + 1
        return 0

    def __str__(self) -> str:
        if self.sequence_number is not None:
            return f"{self.kind.value}({self.sequence_number})"
        if self.timestamp is not None:
            return f"{self.kind.value}({self.timestamp.isoformat()})"
        return self.kind.value


_ALL_SUB_RECORDS = 1 << 62


def is_sequence_number(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a string of 1 to 128 ASCII digits, as every sequence number is."""
    return is_decimal(value) and len(value) <= SEQUENCE_NUMBER_DIGITS_MAX


def _check_sequence_number(value: object) -> None:
    if not is_sequence_number(value):
        raise ValidationError("a sequence number is a string of up to 128 decimal digits")


TRIM_HORIZON = StartPosition(StartKind.TRIM_HORIZON)
"""The oldest record still retained in the shard."""

LATEST = StartPosition(StartKind.LATEST)
"""Just after the most recent record: only records written from now on."""


def AT_TIMESTAMP(timestamp: datetime) -> StartPosition:
    """The first record whose approximate arrival time is at or after ``timestamp``."""
    if isinstance(timestamp, datetime) and timestamp.tzinfo is None:
        raise ValidationError("AT_TIMESTAMP needs a timezone-aware datetime")
    return StartPosition(StartKind.AT_TIMESTAMP, timestamp=timestamp)


def AT_SEQUENCE_NUMBER(
    sequence_number: str, *, skip_through_sub_sequence: int | None = None
) -> StartPosition:
    """The record with this sequence number (optionally skipping the first sub-records of an aggregate)."""
    return StartPosition(
        StartKind.AT_SEQUENCE_NUMBER,
        sequence_number=sequence_number,
        skip_through_sub_sequence=skip_through_sub_sequence,
    )


def AFTER_SEQUENCE_NUMBER(sequence_number: str) -> StartPosition:
    """The record just after this sequence number."""
    return StartPosition(StartKind.AFTER_SEQUENCE_NUMBER, sequence_number=sequence_number)
