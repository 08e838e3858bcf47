"""Kinesis client errors as Shardline errors, through the one shared mapping."""

from __future__ import annotations

from shardline.errormap import translate
from shardline.errors import ShardlineError

__all__ = ["service_error"]


def service_error(exc: Exception) -> ShardlineError:
    """The Shardline error for what a Kinesis call raised; programming errors are re-raised untouched."""
    mapped = translate(exc, service="kinesis")
    if mapped is None:
        raise exc
    return mapped
