"""Blocking twins of runtime helpers, for tests that inspect streams through boto3.

The runtime is asynchronous (aiobotocore); these drive the same protocol code from blocking
test code, so they live with the tests rather than in the installed package.
"""

from __future__ import annotations

from typing import Any

from shardline.shardmath import ShardInfo, _list_shards_pages

__all__ = ["list_shards_sync"]


def list_shards_sync(
    client: Any,
    stream_name: str | None = None,
    stream_arn: str | None = None,
    *,
    page_size: int | None = None,
) -> list[ShardInfo]:
    """Every shard of a stream through a boto3 Kinesis client, following NextToken."""
    pages = _list_shards_pages(stream_name, stream_arn, page_size)
    request = next(pages)
    while True:
        response = client.list_shards(**request)
        try:
            request = pages.send(response)
        except StopIteration as done:
            result: list[ShardInfo] = done.value
            return result
