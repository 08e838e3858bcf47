"""Checkpoint stores addressed by URI, as on the command line.

===========================  ==========================================================
``memory://``                :class:`~consumers.checkpoint.memory.MemoryCheckpointStore`
``sqlite:///PATH``           :class:`~consumers.checkpoint.sqlite.SQLiteCheckpointStore`
                             (``sqlite:///relative.db`` is relative to the working
                             directory, ``sqlite:////abs/path.db`` absolute)
``dynamodb://TABLE``         :class:`~consumers.checkpoint.dynamodb.DynamoDBCheckpointStore`
                             (``?create_table=true`` creates the lease table if missing)
===========================  ==========================================================

``?namespace=NAME`` (or the ``namespace`` argument, which wins) selects the checkpoint
namespace; replay jobs use their own so they never move a live consumer's checkpoints.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from consumers.checkpoint.base import CheckpointStore
from consumers.checkpoint.memory import MemoryCheckpointStore
from consumers.checkpoint.sqlite import SQLiteCheckpointStore
from shardline.endpoints import redact_url
from shardline.errors import ConfigurationError
from shardline.localfiles import refuse_parent_segments

__all__ = ["open_checkpoint_store"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"checkpoint URI option {name!r} must be true or false")


def open_checkpoint_store(uri: str, *, namespace: str | None = None, **options: Any) -> CheckpointStore:
    """Build the checkpoint store ``uri`` names; no I/O happens until it is first used.

    Keyword ``options`` go to the store's constructor (e.g. ``client=`` for DynamoDB).
    """
    if not isinstance(uri, str) or "://" not in uri:
        given = f", got {redact_url(uri)[:80]!r}" if isinstance(uri, str) else f", got a {type(uri).__name__}"
        raise ConfigurationError(
            f"checkpoint store must be a URI: memory://, sqlite:///PATH or dynamodb://TABLE{given}"
        )
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:
        # no store takes a user or password in its URI: refused, and never echoed (the error
        # is logged, and a DynamoDB table named "user:password@table" was looked up and named)
        raise ConfigurationError(
            f"a checkpoint URI takes no user or password: {redact_url(uri)!r} "
            "(credentials come from the standard AWS configuration)"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    chosen_namespace = namespace if namespace is not None else query.pop("namespace", None)
    if chosen_namespace is not None:
        options["namespace"] = chosen_namespace
    if scheme == "dynamodb":
        for name in ("region_name", "endpoint_url"):
            if name in query:
                options.setdefault(name, query.pop(name))
        if "create_table" in query:
            options.setdefault("create_table", _flag(query.pop("create_table"), "create_table"))
    if query:
        known = "namespace, and for dynamodb:// region_name, endpoint_url, create_table"
        raise ConfigurationError(
            f"unknown checkpoint URI option(s): {', '.join(sorted(query))} (known: {known})"
        )
    if scheme == "memory":
        return MemoryCheckpointStore(**options)
    if scheme == "sqlite":
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(f"SQLite checkpoint URI must be sqlite:///PATH, got {redact_url(uri)!r}")
        path = unquote(parts.path)[1:] if parts.path.startswith("/") else unquote(parts.path)
        refuse_parent_segments(path, uri)
        if not path:
            raise ConfigurationError("SQLite checkpoint URI needs a database path: sqlite:///PATH")
        return SQLiteCheckpointStore(path, **options)
    if scheme == "dynamodb":
        table = unquote(parts.netloc)
        if not table or parts.path not in ("", "/"):
            raise ConfigurationError(
                f"DynamoDB checkpoint URI must be dynamodb://TABLE, got {redact_url(uri)!r}"
            )
        from consumers.checkpoint.dynamodb import DynamoDBCheckpointStore

        return DynamoDBCheckpointStore(table, **options)
    raise ConfigurationError(f"unknown checkpoint store scheme {scheme!r}: use memory, sqlite or dynamodb")
