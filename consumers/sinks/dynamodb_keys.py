"""Which attributes key the DynamoDB sink's items, and whether a table is keyed by them.

Kept apart from :mod:`consumers.sinks.dynamodb` (which writes) so the start-up check
(:mod:`consumers.preflight`) can ask it without importing the writer: what a command may call
is read from the modules it imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from consumers.sinks.mapping import FieldMapping
from shardline.errors import ConfigurationError

__all__ = [
    "DEFAULT_KEY_ATTRIBUTE",
    "check_key_schema",
    "identity_keyed_query",
    "key_attributes",
    "key_attributes_of_query",
]

DEFAULT_KEY_ATTRIBUTE = "pk"
"""The attribute that takes the record identity when the mapping names no key fields."""


def key_attributes(mapping: FieldMapping, key_attribute: str) -> tuple[str, ...]:
    """The mapping's key fields, or else the one attribute that takes the record identity."""
    return mapping.keys or (key_attribute,)


def key_attributes_of_query(query: Mapping[str, str]) -> tuple[str, ...]:
    """The key attributes a ``dynamodb://`` URI's options give its sink (as its ``from_uri``)."""
    return key_attributes(FieldMapping.from_options(query), query.get("key_attribute", DEFAULT_KEY_ATTRIBUTE))


def identity_keyed_query(query: Mapping[str, str]) -> bool:
    """Whether a ``dynamodb://`` URI's sink keys its items by the record identity (a string)."""
    return not FieldMapping.from_options(query).keys


_TYPE_NAMES = {"S": "string", "N": "number", "B": "binary"}


def check_key_schema(
    table: str, description: Mapping[str, Any], keys: Sequence[str], *, identity_key: bool = False
) -> None:
    """Refuse a table (its DescribeTable answer) keyed by other attributes than the items carry.

    DynamoDB refuses every item without the table's key attributes (ValidationException,
    "Missing the key"), the same for every record: each batch was bisected down to single
    records and the whole stream dead-lettered, its checkpoints moving on.  Key attributes the
    table does not key by are refused too: the sink would tell items apart by them, and two
    writes of one item in one BatchWriteItem call fail the call.

    ``identity_key``: the items' one key attribute takes the record identity, always a string.
    A table keying that attribute by a number or binary refused every item the same way
    ("Type mismatch for key"); it is refused here too.  Keys taken from payload fields have
    whatever type each payload gives, so a mismatch there is the record's own fault.
    """
    described = description.get("Table") or {}
    schema = described.get("KeySchema") or ()
    table_keys = tuple(str(element.get("AttributeName")) for element in schema)
    if table_keys and set(table_keys) != set(keys):
        raise ConfigurationError(
            f"DynamoDB table {table!r} is keyed by {', '.join(table_keys)} but the sink's items by "
            f"{', '.join(keys)}: name the table's key attributes with ?key= (payload fields) or "
            "?key_attribute= (the attribute that takes the record identity)"
        )
    if not identity_key or not table_keys:
        return
    types = {
        str(definition.get("AttributeName")): str(definition.get("AttributeType"))
        for definition in described.get("AttributeDefinitions") or ()
    }
    kind = types.get(keys[0])
    if kind is not None and kind != "S":
        raise ConfigurationError(
            f"DynamoDB table {table!r} keys {keys[0]!r} by {_TYPE_NAMES.get(kind, kind)} but the sink "
            "writes the record identity there, a string: use a table whose key attribute is a "
            "string, or name payload fields with ?key="
        )
