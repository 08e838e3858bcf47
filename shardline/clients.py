"""AWS client factories: an injected client wins, else one is built from the standard config.

Everything else about where a client connects and as whom is left to botocore, which
already honours ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, the shared config and credentials
files, ``AWS_CA_BUNDLE`` and ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` (how the
local stack is reached).  The one addition is ``AWS_REGION``, the variable the other AWS SDKs
read, used when botocore finds no region of its own.

Clients built here do not retry inside botocore (``total_max_attempts=1``): Shardline retries
with :class:`shardline.retry.RetryPolicy`, and a second, hidden retry loop underneath would
multiply attempts and hide throttling from the producer's rate limiter.

Sessions built here share one botocore data loader (:func:`new_aiobotocore_session`), so the
JSON botocore reads (service models, ``endpoints.json``, partitions, SDK defaults) is loaded
once per process instead of once per client.

A client whose endpoint is plain ``http://`` to a host that is not loopback (an
``AWS_ENDPOINT_URL`` pointing at a remote emulator or proxy) is refused with a
:class:`ConfigurationError`: its signed requests, session token included, and the records
would travel readable on the network, as an InfluxDB token over plaintext is refused.  A
deployment that means it (an emulator in a container network) names the host in
``SHARDLINE_ALLOW_PLAINTEXT_HOSTS`` (:data:`shardline.endpoints.PLAINTEXT_HOSTS_ENV`); such
an endpoint is still warned about once.

Their ``User-Agent`` is one fixed string (:data:`USER_AGENT`), set through botocore's
``Config.user_agent``.  botocore otherwise assembles its "UA 2.1" header twice for every call,
sanitizing each component character by character (29 us a time here): about 8% of the CPU of
an empty GetRecords call, paid 40 times a second by eight shard readers.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Final
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.loaders import Loader, create_loader

from shardline import __version__
from shardline.endpoints import PLAINTEXT_HOSTS_ENV, plaintext_allowed, warn_if_plaintext_remote
from shardline.errormap import map_client_creation_errors
from shardline.errors import ConfigurationError

__all__ = [
    "DEFAULT_CLIENT_CONFIG",
    "USER_AGENT",
    "aiobotocore_client",
    "boto3_client",
    "client_config",
    "default_region",
    "new_aiobotocore_session",
    "refuse_plaintext_endpoint",
]

USER_AGENT: Final = (
    f"Shardline/{__version__} Python/{platform.python_version()} {platform.system()}/{platform.release()}"
)
"""What every client built here sends as ``User-Agent``, before the session's own additions
(boto3 and aiobotocore append their versions); a caller's ``config`` may replace it."""

DEFAULT_CLIENT_CONFIG: Final = Config(
    retries={"total_max_attempts": 1, "mode": "standard"},
    connect_timeout=5,
    # Long enough for a SubscribeToShard stream between events; short enough that a hung
    # PutRecords is noticed and resent.
    read_timeout=30,
    max_pool_connections=32,
    tcp_keepalive=True,
    user_agent=USER_AGENT,
)
"""botocore settings for every client built here; a caller's ``config`` is merged over them."""


_log = logging.getLogger(__name__)
_PLAINTEXT_WARNED: set[str] = set()
_PLAINTEXT_LOCK = threading.Lock()


def refuse_plaintext_endpoint(service: str, url: str | None) -> None:
    """:class:`ConfigurationError` when ``url`` is plain ``http://`` to a host that is neither
    loopback nor named in ``SHARDLINE_ALLOW_PLAINTEXT_HOSTS``; for an endpoint handed to a
    client not built here (stream-bench's peer libraries).  The error names the endpoint by
    scheme, host and port only."""
    if not url or not url.lower().startswith("http://"):
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    if plaintext_allowed(host):
        return
    shown = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    variable = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
    raise ConfigurationError(
        f"refusing plaintext http to http://{shown}{port} for the {service} client: the host is "
        "not loopback, and its signed requests (session token included) and the records would "
        f"be readable on the network; use https:// (check {variable}, AWS_ENDPOINT_URL and "
        f"endpoint_url), or name the host in {PLAINTEXT_HOSTS_ENV} to allow it"
    )


def _check_plaintext(service: str, client: Any) -> None:
    """Refuse ``client`` when it speaks plain HTTP to a host neither loopback nor allowed
    (:func:`refuse_plaintext_endpoint`); warn once per endpoint about an allowed one.

    The endpoint is read from the client built, so every source botocore honours (argument,
    ``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_ENDPOINT_URL``, the shared config file) is checked.
    """
    url = str(getattr(client.meta, "endpoint_url", "") or "")
    if not url.lower().startswith("http://"):
        return
    refuse_plaintext_endpoint(service, url)
    with _PLAINTEXT_LOCK:
        if url in _PLAINTEXT_WARNED:
            return
        _PLAINTEXT_WARNED.add(url)
    warn_if_plaintext_remote(_log, f"the {service} client (http://)", urlsplit(url).netloc)


_SHARED_LOADERS: dict[str | None, Loader] = {}
"""One botocore data loader per ``AWS_DATA_PATH`` value, shared by the sessions made here."""


def new_aiobotocore_session() -> Any:
    """A new aiobotocore session whose botocore data loader is shared with every session made here.

    Each botocore session otherwise loads and keeps its own copy of the JSON it reads: about
    25,000-30,000 objects per client, so a process that builds several (a pipeline's source,
    sinks and checkpoint store; a bench's producer and readers; several producers) holds them
    all, every full garbage collection walks them, and each client takes ~30 ms to create.
    The loader only reads botocore's data files, which do not change while the process runs,
    and holds no credentials or settings (boto/botocore#3078 describes the waste and this
    remedy).  Sessions are still one per client, so credentials, region and event handlers
    stay each client's own; a different ``AWS_DATA_PATH`` gets its own loader.
    """
    from aiobotocore.session import get_session

    session = get_session()
    data_path = session.get_config_variable("data_path")
    loader = _SHARED_LOADERS.get(data_path)
    if loader is None:
        loader = _SHARED_LOADERS[data_path] = create_loader(data_path)
    session.register_component("data_loader", loader)
    return session


def client_config(config: Config | None = None) -> Config:
    """:data:`DEFAULT_CLIENT_CONFIG` with ``config``'s explicitly set options taking precedence."""
    return DEFAULT_CLIENT_CONFIG if config is None else DEFAULT_CLIENT_CONFIG.merge(config)


def _session_region(session: Any) -> str | None:
    region = getattr(session, "region_name", None)  # boto3.Session
    if region is None and hasattr(session, "get_config_variable"):  # botocore / aiobotocore session
        region = session.get_config_variable("region")
    return str(region) if region else None


def default_region(session: Any | None = None) -> str:
    """The region a client would use: the session's (profile, ``AWS_DEFAULT_REGION``), else
    ``AWS_REGION``; :class:`ConfigurationError` saying how to set one when there is none."""
    region = _session_region(session if session is not None else boto3.Session())
    region = region or os.environ.get("AWS_REGION")
    if not region:
        raise ConfigurationError(
            "no AWS region configured: set AWS_REGION or AWS_DEFAULT_REGION, a region in the "
            "AWS_PROFILE's config (from code: region_name=...)"
        )
    return region


def boto3_client(
    service: str,
    *,
    session: boto3.Session | None = None,
    client: Any | None = None,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    config: Config | None = None,
) -> Any:
    """A blocking boto3 client for ``service``; ``client`` is returned as it is when given.

    The caller owns the client it gets (boto3 clients need no closing).
    """
    if client is not None:
        return client
    with map_client_creation_errors(service):
        session = session if session is not None else boto3.Session()
        created = session.client(
            service,  # type: ignore[call-overload]
            region_name=region_name or default_region(session),
            endpoint_url=endpoint_url,
            config=client_config(config),
        )
    _check_plaintext(service, created)
    return created


def aiobotocore_client(
    service: str,
    *,
    session: Any | None = None,
    client: Any | None = None,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    config: Config | None = None,
) -> AbstractAsyncContextManager[Any]:
    """``async with aiobotocore_client("kinesis") as kinesis:`` — closes the client it built.

    ``session`` is an ``aiobotocore.session.AioSession`` (by default a new one from
    :func:`new_aiobotocore_session`; a given session keeps its own loader).
    An injected ``client`` is yielded as it is and left open: whoever made it closes it.
    """
    return _aiobotocore_client(service, session, client, region_name, endpoint_url, config)


@asynccontextmanager
async def _aiobotocore_client(
    service: str,
    session: Any | None,
    client: Any | None,
    region_name: str | None,
    endpoint_url: str | None,
    config: Config | None,
) -> AsyncIterator[Any]:
    if client is not None:
        yield client
        return
    async with AsyncExitStack() as stack:
        # Only the building is mapped: errors of the caller's block pass through as they are.
        with map_client_creation_errors(service):
            if session is None:
                session = new_aiobotocore_session()
            created = await stack.enter_async_context(
                session.create_client(
                    service,
                    region_name=region_name or default_region(session),
                    endpoint_url=endpoint_url,
                    config=client_config(config),
                )
            )
        _check_plaintext(service, created)
        yield created
