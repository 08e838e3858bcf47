"""DynamoDB sink: BatchWriteItem, or guarded conditional puts that never regress an item.

Default mapping: a JSON-object payload becomes the item's attributes and the item key is
the record identity (attribute ``pk``) unless key attributes are named in the mapping.
Every item also carries a version attribute (from the record position, or the mapping's
``version_field``).

- Plain mode: BatchWriteItem, <= 25 items and <= 16 MB per call (enforced here: moto
  accepts 26); ``UnprocessedItems`` are reported throttled (the pipeline resends them).  A
  replay writes the same items again, which leaves the same state.
- Guarded mode (``guarded=True``): one conditional PutItem per item with
  ``attribute_not_exists(#pk) OR attribute_not_exists(#version) OR #version < :version``,
  so an older replayed record never overwrites a newer one (a backfill overlapping live
  traffic is safe), and an item another writer made without a version is taken over.
  ``ConditionalCheckFailed`` means the table already holds this version or a newer one:
  counted as a duplicate, i.e. success.  A version taken from a real Kinesis arrival time
  (milliseconds) ties for records that arrived in the same millisecond, the newer as well
  as a replay: such items also carry ``<version attribute>_position`` (the sequence and
  sub-sequence numbers as fixed-width text) and the condition adds
  ``OR (#version = :version AND #position < :position)``.  Before, the newer of two
  readings of one device sent in one PutRecords request was dropped as a duplicate and the
  table kept the older one.  Items written without the attribute compare as before.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeSerializer
from botocore.exceptions import ClientError

from consumers.sinks.awsclient import LazyClient
from consumers.sinks.base import BatchingSink, ChunkLimits, EntryResult
from consumers.sinks.dynamodb_keys import DEFAULT_KEY_ATTRIBUTE, key_attributes
from consumers.sinks.mapping import FieldMapping, decode_object
from consumers.sinks.versioning import position_tiebreak, record_version
from shardline.endpoints import redact_url
from shardline.errormap import map_aws_errors
from shardline.errors import (
    ConditionalCheckFailedError,
    ConfigurationError,
    SerializationError,
    ServiceError,
    ShardlineError,
    ThrottledError,
    ValidationError,
)
from shardline.limits import (
    DYNAMODB_BATCH_WRITE_MAX_BYTES,
    DYNAMODB_BATCH_WRITE_MAX_ITEMS,
    DYNAMODB_ITEM_MAX_BYTES,
    DYNAMODB_KEY_VALUE_MAX_BYTES,
)
from shardline.records import ConsumedRecord

__all__ = ["DynamoDBEntry", "DynamoDBSink", "from_uri"]

_serializer = TypeSerializer()


@dataclass(frozen=True, slots=True)
class DynamoDBEntry:
    """One item in DynamoDB's attribute-value form, with its key and an estimate of its size."""

    item: dict[str, Any] = field(repr=False)
    key: tuple[tuple[str, str], ...]
    size: int
    version: int
    tiebreak: str | None = None
    """Orders entries whose versions tie (guarded mode; see the module documentation)."""


class DynamoDBSink(BatchingSink[DynamoDBEntry]):
    """Writes JSON-object payloads as DynamoDB items, idempotently."""

    name = "dynamodb"
    limits = ChunkLimits(
        max_entries=DYNAMODB_BATCH_WRITE_MAX_ITEMS,
        max_bytes=DYNAMODB_BATCH_WRITE_MAX_BYTES,
        max_entry_bytes=DYNAMODB_ITEM_MAX_BYTES,
    )

    def __init__(
        self,
        table: str,
        *,
        mapping: FieldMapping | None = None,
        guarded: bool = False,
        key_attribute: str = DEFAULT_KEY_ATTRIBUTE,
        version_attribute: str = "shardline_version",
        concurrency: int = 8,
        client: Any | None = None,
        session: Any | None = None,
        endpoint_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not table:
            raise ConfigurationError("DynamoDB sink needs a table name")
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        self.table = table
        self.mapping = mapping or FieldMapping()
        self.guarded = guarded
        self.key_attributes = key_attributes(self.mapping, key_attribute)
        self.version_attribute = version_attribute
        self.position_attribute = f"{version_attribute}_position"
        _check_attribute_names(self.key_attributes, version_attribute, self.position_attribute)
        self._identity_key = not self.mapping.keys
        self._concurrency = asyncio.Semaphore(concurrency)
        self.client = LazyClient("dynamodb", client=client, session=session, endpoint_url=endpoint_url)

    def __repr__(self) -> str:
        return f"DynamoDBSink(table={self.table!r}, guarded={self.guarded})"

    # --- primitives -------------------------------------------------------------------------

    def encode(self, record: ConsumedRecord) -> DynamoDBEntry:
        payload = decode_object(record, parse_float=Decimal, parse_int=_parse_int)
        if "" in payload:
            # DynamoDB refuses the whole BatchWriteItem call over it, which bisected the batch
            raise SerializationError("payload cannot be a DynamoDB item: a field with an empty name")
        version = record_version(record, payload, self.mapping.version_field)
        if self._identity_key:
            payload[self.key_attributes[0]] = record.identity
        self._check_keys(payload)
        payload[self.version_attribute] = version
        # The sink's own attributes are the sink's: a payload's value for the position
        # attribute stayed in the item whenever no tiebreak replaced it, and a later newer
        # write of the item compared against it.
        payload.pop(self.position_attribute, None)
        tiebreak = None
        if self.guarded and self.mapping.version_field is None:
            tiebreak = position_tiebreak(record)
            if tiebreak is not None:
                payload[self.position_attribute] = tiebreak
        fault = _document_fault(payload)
        if fault is not None:
            raise SerializationError(f"payload cannot be a DynamoDB item: {fault}")
        try:
            item = {name: _serializer.serialize(value) for name, value in payload.items()}
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            # ArithmeticError: decimal's Overflow, Underflow, Inexact and Rounded, for numbers
            # past DynamoDB's 38 digits of precision (its range is checked above).
            # RecursionError: the serializer recurses several frames a level; the nesting
            # check above stops a payload long before, this stays as the last guard.
            raise SerializationError(f"payload cannot be a DynamoDB item: {type(exc).__name__}") from exc
        key = self._key_of(item)
        size = sum(_utf8_size(name) + _value_size(value) for name, value in item.items())
        return DynamoDBEntry(item=item, key=key, size=size, version=version, tiebreak=tiebreak)

    def _check_keys(self, payload: Mapping[str, Any]) -> None:
        """Key values DynamoDB takes, checked before the call: it refuses a whole
        BatchWriteItem over one empty string or over-long value in a key attribute, and the
        pipeline then bisected healthy neighbours to find the record.  Reasons name the
        attribute, never its value."""
        for name in self.key_attributes:
            value = payload.get(name)
            if not isinstance(value, str | int | Decimal) or isinstance(value, bool):
                raise ValidationError(f"key attribute {name!r} missing or not a string/number")
            if isinstance(value, str):
                if not value:
                    raise ValidationError(f"key attribute {name!r} is an empty string")
                if _utf8_size(value) > DYNAMODB_KEY_VALUE_MAX_BYTES:
                    raise ValidationError(
                        f"key attribute {name!r} is over {DYNAMODB_KEY_VALUE_MAX_BYTES} bytes"
                    )

    def entry_size(self, entry: DynamoDBEntry) -> int:
        return entry.size

    def entry_key(self, entry: DynamoDBEntry) -> Hashable:
        return entry.key

    async def send(self, entries: Sequence[DynamoDBEntry]) -> Sequence[EntryResult]:
        if self.guarded:
            return await self._send_guarded(entries)
        return await self._send_batch(entries)

    async def release(self) -> None:
        await self.client.close()

    # --- plain: BatchWriteItem --------------------------------------------------------------

    async def _send_batch(self, entries: Sequence[DynamoDBEntry]) -> list[EntryResult]:
        client = await self.client.get()
        request = {self.table: [{"PutRequest": {"Item": entry.item}} for entry in entries]}
        with map_aws_errors("dynamodb"):
            response = await client.batch_write_item(RequestItems=request)
        # The request names one table, so every unprocessed request is one of ours, whatever
        # spelling of the table (a name, an ARN) the answer keys it by.
        left = {
            self._key_of(request["PutRequest"]["Item"])
            for requests in response.get("UnprocessedItems", {}).values()
            for request in requests
            if "PutRequest" in request
        }
        return [
            EntryResult.throttled("unprocessed item", "UnprocessedItems")
            if entry.key in left
            else EntryResult.written()
            for entry in entries
        ]

    def _key_of(self, item: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        """The item's key as DynamoDB compares it: a number key by its value, not its spelling
        (``1.0`` and ``1`` are one item), so an unprocessed item is matched however the answer
        spells it and two records of one item never share a BatchWriteItem call."""
        return tuple((name, _key_text(item.get(name))) for name in self.key_attributes)

    # --- guarded: conditional PutItem -------------------------------------------------------

    async def _send_guarded(self, entries: Sequence[DynamoDBEntry]) -> list[EntryResult]:
        client = await self.client.get()
        outcomes = await asyncio.gather(*(self._put_guarded(client, entry) for entry in entries))
        unreachable = [error for _, error in outcomes if error is not None]
        if unreachable and len(unreachable) == len(entries):
            raise unreachable[0]  # no put got an answer: the table is unreachable, not the items
        return [result for result, _ in outcomes]

    async def _put_guarded(self, client: Any, entry: DynamoDBEntry) -> tuple[EntryResult, Any]:
        names = {f"#k{i}": name for i, name in enumerate(self.key_attributes)}
        absent = " AND ".join(f"attribute_not_exists({alias})" for alias in names)
        names["#v"] = self.version_attribute
        values = {":v": {"N": str(entry.version)}}
        # attribute_not_exists(#v): an item some other writer made (no version) is taken over;
        # "#v < :v" is false on a missing attribute, so its key's records counted as duplicates
        condition = f"({absent}) OR attribute_not_exists(#v) OR #v < :v"
        if entry.tiebreak is not None:
            names["#p"] = self.position_attribute
            values[":p"] = {"S": entry.tiebreak}
            condition += " OR (#v = :v AND #p < :p)"
        async with self._concurrency:
            try:
                with map_aws_errors("dynamodb"):
                    await client.put_item(
                        TableName=self.table,
                        Item=entry.item,
                        ConditionExpression=condition,
                        ExpressionAttributeNames=names,
                        ExpressionAttributeValues=values,
                    )
            except ShardlineError as error:
                if isinstance(error, ConditionalCheckFailedError):
                    return EntryResult.duplicate(), None
                reason = type(error).__name__
                code = error.code if isinstance(error, ServiceError) else reason
                if not isinstance(error.__cause__, ClientError):  # no answer (refused, timed out)
                    return EntryResult.call_error(error), error
                if isinstance(error, ThrottledError):
                    return EntryResult.throttled(code, code), None
                if error.retriable:
                    return EntryResult.retry(code, code), None
                if isinstance(error, ValidationError):  # ValidationException: this item is refused
                    return EntryResult.rejected(str(error) or code, code), None
                # Access denied, expired credentials, a missing table or KMS key: the table's
                # fault, not the item's.  As a failed call the pipeline stops on these instead
                # of dead-lettering every item; anything else is bisected to its item.
                return EntryResult.call_error(error), None
        return EntryResult.written(), None


def _check_attribute_names(keys: Sequence[str], version: str, position: str) -> None:
    """Refuse attribute names that would spoil every item, at construction.

    An empty name (``?version_attribute=`` from a template whose variable was unset) is an
    attribute DynamoDB refuses, in every item: each call failed, was bisected down to single
    records and the whole stream dead-lettered.  A key attribute that is also the version
    attribute (or its ``_position`` companion) had its value replaced by the version after
    the key was checked: records whose versions tie landed on one item and overwrote each
    other, and a number went where the table keys a string.
    """
    if not version:
        raise ConfigurationError("DynamoDB sink needs a non-empty version attribute name")
    if not all(keys):
        raise ConfigurationError("DynamoDB sink key attribute names must not be empty")
    clash = sorted({version, position} & set(keys))
    if clash:
        raise ConfigurationError(
            f"DynamoDB sink attribute {clash[0]!r} cannot be both a key attribute and the sink's "
            "version attribute: choose another version_attribute"
        )


_MAX_LEVELS = 32
"""DynamoDB's nesting limit, a top-level attribute being level 1: it stores a value under 31
maps or lists, and refuses one under 32 (ValidationException, "Nesting Levels have exceeded
supported limits") for the whole BatchWriteItem call."""

_MIN_EXPONENT = -130
_MAX_EXPONENT = 125
"""The adjusted exponents of the numbers DynamoDB stores: magnitudes from 1E-130 to
9.9999999999999999999999999999999999999E+125 (and zero).  boto3's serializer checks a wider
range (its context's ``Emin=-128``, ``Emax=126`` and the subnormals below ``Emin``), so
``1E+126`` and ``1E-131`` reached the call, and DynamoDB refused the whole BatchWriteItem
("Number overflow" / "Number underflow")."""


def _document_fault(payload: Mapping[str, Any]) -> str | None:
    """What DynamoDB cannot take in the item, found before the call; ``None``: nothing.

    Both faults failed the whole BatchWriteItem call of the record's neighbours, which the
    pipeline then bisected to find the record, or never let it end:

    - nesting past :data:`_MAX_LEVELS` (DynamoDB refuses the call; moto takes it);
    - a number outside DynamoDB's range (:data:`_MAX_EXPONENT`) that boto3's serializer
      lets through;
    - a text with no UTF-8 form, a lone surrogate (a JSON ``"\\ud800"`` escape), in a value or
      an attribute name at any depth.  DynamoDB keeps strings as UTF-8, so it can only refuse
      the call or keep a text the payload did not hold; moto answers HTTP 500, which the
      pipeline waits out as an outage until it gives up, the batch unwritten.

    The reason names the fault, never the text.  Iterative: no nesting exhausts the stack.
    """
    stack: list[tuple[Any, int]] = [(payload, 0)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, str):
            if not _has_utf8(value):
                return "a text with no UTF-8 form (a lone surrogate)"
        elif isinstance(value, Decimal):
            if value.is_finite() and value and not _MIN_EXPONENT <= value.adjusted() <= _MAX_EXPONENT:
                return "a number outside DynamoDB's range (1E-130 to 9.9E+125 in magnitude)"
        elif isinstance(value, dict | list) and value:
            if level + 1 > _MAX_LEVELS:
                return f"nested deeper than DynamoDB's {_MAX_LEVELS} levels"
            if isinstance(value, dict):
                if not all(_has_utf8(name) for name in value):
                    return "an attribute name with no UTF-8 form (a lone surrogate)"
                stack.extend((member, level + 1) for member in value.values())
            else:
                stack.extend((member, level + 1) for member in value)
    return None


_INT_DIGITS = 38
"""DynamoDB's precision: a JSON integer of up to this many digits is stored as it is."""


def _parse_int(text: str) -> int | Decimal:
    """A JSON integer as DynamoDB counts it: by its significant digits.

    DynamoDB trims trailing zeros, so ``1`` followed by 41 zeros is one digit of precision and
    stored; boto3's serializer counts every digit of a Python int and refused it (decimal's
    Rounded), dead-lettering a number the table takes.  A longer integer becomes the exact
    ``Decimal`` without its trailing zeros (``1E+41``); one with more than 38 significant
    digits is still refused, and one past DynamoDB's range too (:func:`_document_fault`).
    """
    digits = len(text.lstrip("-"))
    if digits <= _INT_DIGITS:
        return int(text)
    number = Decimal(text)
    if digits > _MAX_EXPONENT + 1:
        return number  # past 9.9E+125 whatever its zeros (JSON has no leading ones): refused
    return number.normalize(Context(prec=digits))


def _has_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _key_text(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"N"}:
        number = Decimal(value["N"])
        if not number:
            # DynamoDB has one zero: "-0.0" (JSON's negative zero, read as a Decimal) and "0"
            # are one item, and both in one BatchWriteItem failed the call as duplicate keys
            return "N:0"
        # DynamoDB's own context: 38 digits, as exact as the numbers it stores
        return "N:" + str(number.normalize(DYNAMODB_CONTEXT))
    return json.dumps(value, sort_keys=True)


def _utf8_size(text: str) -> int:
    # surrogatepass: a JSON "\ud800" escape has no UTF-8 form; count it, DynamoDB judges it
    return len(text.encode("utf-8", "surrogatepass"))


def _value_size(value: Mapping[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value, by its published sizing rules.

    Strings count their UTF-8 bytes, not their JSON spelling: ``json.dumps`` escapes every
    non-ASCII character as ``\\uXXXX`` (six bytes for a three-byte CJK character, twelve for
    a four-byte emoji), which made items well under 400 KB look too large and dead-lettered
    them without ever sending them.  Numbers take about one byte per two significant digits
    plus overhead, lists and maps 3 bytes plus one per element.  Each estimate errs on the
    large side by a few bytes at most; an item DynamoDB still finds too large fails its call
    and is bisected out.
    """
    ((kind, inner),) = value.items()
    if kind == "S":
        return _utf8_size(inner)
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(_utf8_size(member) for member in inner)
    if kind == "NS":
        return sum(_number_size(member) for member in inner)
    if kind == "BS":
        return sum(len(member) for member in inner)
    if kind == "L":
        return 3 + sum(1 + _value_size(member) for member in inner)
    if kind == "M":
        return 3 + sum(1 + _utf8_size(name) + _value_size(member) for name, member in inner.items())
    return len(json.dumps(value))  # pragma: no cover - TypeSerializer emits only the kinds above


def _number_size(text: str) -> int:
    mantissa = text.lower().split("e", 1)[0].lstrip("+-").replace(".", "")
    digits = len(mantissa.strip("0")) or 1
    return 2 + (digits + 1) // 2 + (1 if text.startswith("-") else 0)


def from_uri(
    netloc: str, path: str, query: dict[str, str], uri: str, options: dict[str, Any]
) -> DynamoDBSink:
    """``dynamodb://TABLE?guarded=true&key=a,b&version=field&mapping=PATH``."""
    if not netloc or path.strip("/"):
        raise ConfigurationError(f"DynamoDB URI must be dynamodb://TABLE: {redact_url(uri)!r}")
    options.setdefault("mapping", FieldMapping.from_options(query))
    if "guarded" in query:
        options.setdefault("guarded", query["guarded"].lower() in ("1", "true", "yes", "on"))
    for name in ("key_attribute", "version_attribute", "endpoint_url"):
        if name in query:
            options.setdefault(name, query[name])
    return DynamoDBSink(netloc, **options)
