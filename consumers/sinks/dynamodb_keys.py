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

__all__ = ["DEFAULT_KEY_ATTRIBUTE", "check_key_schema", "key_attributes", "key_attributes_of_query"]

DEFAULT_KEY_ATTRIBUTE = "pk"
"""The attribute that takes the record identity when the mapping names no key fields."""


def key_attributes(mapping: FieldMapping, key_attribute: str) -> tuple[str, ...]:
    """The mapping's key fields, or else the one attribute that takes the record identity."""
    return mapping.keys or (key_attribute,)


def key_attributes_of_query(query: Mapping[str, str]) -> tuple[str, ...]:
    """The key attributes a ``dynamodb://`` URI's options give its sink (as its ``from_uri``)."""
    return key_attributes(FieldMapping.from_options(query), query.get("key_attribute", DEFAULT_KEY_ATTRIBUTE))


def check_key_schema(table: str, description: Mapping[str, Any], keys: Sequence[str]) -> None:
    """Refuse a table (its DescribeTable answer) keyed by other attributes than the items carry.

    DynamoDB refuses every item without the table's key attributes (ValidationException,
    "Missing the key"), the same for every record: each batch was bisected down to single
    records and the whole stream dead-lettered, its checkpoints moving on.  Key attributes the
    table does not key by are refused too: the sink would tell items apart by them, and two
    writes of one item in one BatchWriteItem call fail the call.
    """
    schema = (description.get("Table") or {}).get("KeySchema") or ()
    table_keys = tuple(str(element.get("AttributeName")) for element in schema)
    if table_keys and set(table_keys) != set(keys):
        raise ConfigurationError(
            f"DynamoDB table {table!r} is keyed by {', '.join(table_keys)} but the sink's items by "
            f"{', '.join(keys)}: name the table's key attributes with ?key= (payload fields) or "
            "?key_attribute= (the attribute that takes the record identity)"
        )
