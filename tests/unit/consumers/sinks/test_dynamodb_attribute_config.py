"""Attribute names that would spoil every item are refused when the sink is built.

An empty version attribute is a name DynamoDB refuses in every item (the whole stream was
bisected into the dead letter); a key attribute that is also the version attribute had its
value replaced by the version, so records whose versions tie overwrote each other's item.
"""

from __future__ import annotations

from typing import Any

import pytest

from consumers.sinks.dynamodb import DynamoDBSink
from consumers.sinks.dynamodb import from_uri as dynamodb_from_uri
from consumers.sinks.mapping import FieldMapping
from shardline.errors import ConfigurationError


@pytest.mark.parametrize(
    "options",
    [
        {"version_attribute": ""},
        {"key_attribute": ""},
        {"key_attribute": "shardline_version"},
        {"key_attribute": "v", "version_attribute": "v"},
        {"key_attribute": "v_position", "version_attribute": "v"},
        {"mapping": FieldMapping(keys=("device", "shardline_version"))},
        {"mapping": FieldMapping(keys=("device", "shardline_version_position"))},
    ],
)
def test_attribute_names_that_spoil_every_item_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="DynamoDB sink"):
        DynamoDBSink("table", client=object(), **options)


def test_an_empty_version_attribute_in_the_uri_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="version attribute"):
        dynamodb_from_uri("table", "", {"version_attribute": ""}, "dynamodb://table?version_attribute=", {})


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"key_attribute": "id", "version_attribute": "v"},
        {"mapping": FieldMapping(keys=("device", "ts"), version_field="shardline_version")},
    ],
)
def test_distinct_names_are_taken(options: dict[str, Any]) -> None:
    DynamoDBSink("table", client=object(), **options)
