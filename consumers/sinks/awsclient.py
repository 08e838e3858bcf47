"""An AWS client handed to a sink, or built on first use from the standard AWS configuration.

aiobotocore clients are async context managers, so they cannot be built in a constructor
(nor from a synchronous URI parser).  Sinks hold a :class:`LazyClient` instead: an injected
client is used as is and never closed by the sink; otherwise one is created on the first
call (profile, region and ``AWS_ENDPOINT_URL_<SERVICE>`` are honoured by botocore itself)
and closed with the sink.
"""

from __future__ import annotations

import asyncio
from typing import Any

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
        return f"LazyClient({self.service!r}, endpoint_url={self._endpoint_url!r})"

    async def get(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                from aiobotocore.session import get_session

                session = self._session or get_session()
                kwargs: dict[str, Any] = {}
                if self._endpoint_url:
                    kwargs["endpoint_url"] = self._endpoint_url
                if self._region_name:
                    kwargs["region_name"] = self._region_name
                self._context = session.create_client(self.service, **kwargs)
                self._client = await self._context.__aenter__()
        return self._client

    async def close(self) -> None:
        """Close the client only when this object created it."""
        if self._context is not None:
            context, self._context, self._client = self._context, None, None
            await context.__aexit__(None, None, None)
