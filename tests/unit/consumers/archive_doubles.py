"""An S3 bucket of Firehose archive objects, for the archive reader's unit tests.

It answers as S3 does where the reader cares: objects listed in key order, bodies streamed in
the chunks asked for (never whole), an MD5 ETag for each object's content, and NoSuchKey for a
key it does not hold.
"""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import ClientError

__all__ = ["ArchiveBucket", "ObjectBody"]


class ObjectBody:
    """A streamed object body; ``reads`` records each chunk size asked for."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads: list[int] = []
        self.offset = 0

    async def read(self, size: int = -1) -> bytes:
        assert size > 0, "the object must never be read whole"
        self.reads.append(size)
        chunk = self.data[self.offset : self.offset + size]
        self.offset += len(chunk)
        return chunk

    async def __aenter__(self) -> ObjectBody:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class ArchiveBucket:
    """``objects`` by key; replace or delete one to play a rewritten or vanished object."""

    def __init__(self, objects: dict[str, bytes] | None = None, *, etags: bool = True) -> None:
        self.objects: dict[str, bytes] = dict(objects or {})
        self.bodies: list[ObjectBody] = []
        self._etags = etags  # without: resume tokens are bare line counts (an S3 that sends none)

    async def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        return {"Contents": [{"Key": key, "Size": len(data)} for key, data in sorted(self.objects.items())]}

    async def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if Key not in self.objects:
            error = {"Error": {"Code": "NoSuchKey", "Message": "The specified key does not exist."}}
            raise ClientError(error, "GetObject")
        data = self.objects[Key]
        body = ObjectBody(data)
        self.bodies.append(body)
        if not self._etags:
            return {"Body": body}
        return {"Body": body, "ETag": f'"{hashlib.md5(data).hexdigest()}"'}  # S3's ETag: the MD5
