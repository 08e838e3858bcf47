"""Checkpoint store URIs: each scheme builds its store; bad URIs fail before any I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.checkpoint import (
    DynamoDBCheckpointStore,
    MemoryCheckpointStore,
    SQLiteCheckpointStore,
    open_checkpoint_store,
)
from shardline.errors import ConfigurationError, ValidationError


def test_memory_uri() -> None:
    store = open_checkpoint_store("memory://")
    assert isinstance(store, MemoryCheckpointStore)


def test_sqlite_uri_relative_and_absolute(tmp_path: Path) -> None:
    relative = open_checkpoint_store("sqlite:///state/checkpoints.db")
    assert isinstance(relative, SQLiteCheckpointStore)
    assert relative.path == "state/checkpoints.db"
    absolute = open_checkpoint_store(f"sqlite:///{tmp_path}/c.db?namespace=replay-1")
    assert isinstance(absolute, SQLiteCheckpointStore)
    assert absolute.path == f"{tmp_path}/c.db"
    assert absolute.namespace == "replay-1"


def test_dynamodb_uri_options_and_namespace_table() -> None:
    store = open_checkpoint_store("dynamodb://my-app?create_table=true&region_name=eu-west-1")
    assert isinstance(store, DynamoDBCheckpointStore)
    assert store.table_name == "my-app"
    replay = open_checkpoint_store("dynamodb://my-app", namespace="replay")
    assert isinstance(replay, DynamoDBCheckpointStore)
    assert replay.table_name == "my-app-replay"


@pytest.mark.parametrize(
    "uri",
    [
        "checkpoints.db",
        "redis://host/0",
        "sqlite://",
        "sqlite://remotehost/x.db",
        "dynamodb://",
        "dynamodb://table/extra",
        "dynamodb://t1?create_table=maybe",
        "memory://?bogus=1",
    ],
)
def test_bad_uris_are_configuration_errors(uri: str) -> None:
    with pytest.raises(ConfigurationError):
        open_checkpoint_store(uri)


def test_bad_namespace_is_rejected() -> None:
    with pytest.raises(ValidationError):
        open_checkpoint_store("memory://", namespace="has space")


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("sqlite:/x.db", "got 'sqlite:/x.db'"),  # one slash: what was given, so the typo shows
        ("dynamodb://leases?create=true", "known: namespace, and for dynamodb:// region_name"),
    ],
)
def test_a_refused_checkpoint_uri_says_what_was_given_and_what_is_known(uri: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        open_checkpoint_store(uri)
    assert says in str(refused.value)
