"""A DynamoDB client that takes every BatchWriteItem whole, for the DynamoDB sink's unit tests."""

from __future__ import annotations

from typing import Any

__all__ = ["AcceptingDynamoDB"]


class AcceptingDynamoDB:
    """Keeps the items of every BatchWriteItem call, in order; nothing is left unprocessed."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    async def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        for requests in kwargs["RequestItems"].values():
            self.items.extend(request["PutRequest"]["Item"] for request in requests)
        return {}
