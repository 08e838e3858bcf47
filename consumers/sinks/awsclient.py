"""An AWS client handed to a sink, or built on first use from the standard AWS configuration.

aiobotocore clients are async context managers, so they cannot be built in a constructor
(nor from a synchronous URI parser).  Sinks hold a :class:`LazyClient` instead: an injected
client is used as is and never closed by the sink; otherwise one is created on the first
call by :func:`shardline.clients.aiobotocore_client` (the settings every Shardline client
has: no retry loop inside botocore under Shardline's own, the fixed ``User-Agent``; profile,
region and ``AWS_ENDPOINT_URL_<SERVICE>`` are honoured by botocore itself) and closed with
the sink.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shardline.clients import aiobotocore_client
from shardline.endpoints import redact_url

__all__ = ["LazyClient"]


class LazyClient:
    """The aiobotocore client of one service, injected or created when first needed."""

    def __init__(
        self,
        service: str,
        *,
        client: Any | None = None,
        session: Any | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        self.service = service
        self._client = client
        self._session = session
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._context: Any | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        shown = redact_url(self._endpoint_url) if self._endpoint_url else self._endpoint_url
        return f"LazyClient({self.service!r}, endpoint_url={shown!r})"

    async def get(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                context = aiobotocore_client(
                    self.service,
                    session=self._session,
                    endpoint_url=self._endpoint_url or None,
                    region_name=self._region_name or None,
                )
                self._client = await context.__aenter__()
                self._context = context
        return self._client

    async def close(self) -> None:
        """Close the client only when this object created it."""
        if self._context is not None:
            context, self._context, self._client = self._context, None, None
            await context.__aexit__(None, None, None)
