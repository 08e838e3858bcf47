"""Readiness probes: one real API call per service.

"The port answers" is not readiness: another process may hold the port, or the server may
accept connections before it can serve.  Each probe makes a real request and raises on
anything but a proper answer.
"""

from __future__ import annotations

import http.client
import os
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.config import Config

__all__ = [
    "DUMMY_ACCESS_KEY_ID",
    "DUMMY_REGION",
    "DUMMY_SECRET_ACCESS_KEY",
    "aws_probe",
    "http_ping_probe",
    "kafka_probe",
]

DUMMY_REGION = "us-east-1"
DUMMY_ACCESS_KEY_ID = "testing"
# Emulators accept any credentials; these dummy values are public and never reach AWS.
DUMMY_SECRET_ACCESS_KEY = "testing"  # noqa: S105  # nosec B105

# proxies={}: the probe goes straight to the loopback server, never through an HTTP(S)_PROXY
# of the caller's environment (which cannot reach this machine's 127.0.0.1).
_PROBE_CONFIG = Config(
    connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 1}, tcp_keepalive=False, proxies={}
)


def _session_without_shared_config() -> botocore.session.Session:
    """A botocore session that reads no AWS profile and no shared config or credentials file.

    The probe talks to a local emulator with dummy credentials; the caller's AWS setup has
    nothing to say about it.  With the environment's, an ``AWS_PROFILE`` naming a profile
    this machine lacks, or a config file that does not parse, made ``shardline local up``
    fail with botocore's traceback before any server started.
    """
    # (name in a config file, environment variable, default, converter): neither is consulted
    ignored = {
        "profile": (None, None, None, None),
        "config_file": (None, None, os.devnull, None),
        "credentials_file": (None, None, os.devnull, None),
    }
    return botocore.session.Session(session_vars=ignored)


def aws_probe(service: str, endpoint: str) -> Callable[[], object]:
    """A probe listing streams (Kinesis) or tables (DynamoDB) at ``endpoint``."""
    client = boto3.session.Session(
        aws_access_key_id=DUMMY_ACCESS_KEY_ID,
        aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
        region_name=DUMMY_REGION,
        botocore_session=_session_without_shared_config(),
    ).client(
        service,
        endpoint_url=endpoint,
        config=_PROBE_CONFIG,  # type: ignore[call-overload]
    )
    if service == "kinesis":
        return lambda: client.list_streams(Limit=1)
    if service == "dynamodb":
        return lambda: client.list_tables(Limit=1)
    raise ValueError(f"no probe for AWS service {service!r}")


def kafka_probe(bootstrap: str) -> Callable[[], object]:
    """A probe asking the broker for cluster metadata through confluent-kafka's AdminClient."""
    host, _, port = bootstrap.rpartition(":")

    def probe() -> object:
        # A plain connect first keeps librdkafka from logging refused connections while
        # the broker is still starting.
        with socket.create_connection((host, int(port)), timeout=2):
            pass
        from confluent_kafka.admin import AdminClient  # the kafka extra; imported on use

        admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000})
        return admin.list_topics(timeout=3)

    return probe


def http_ping_probe(url: str, path: str = "/ping") -> Callable[[], object]:
    """A probe expecting a 2xx answer to ``GET path`` (InfluxDB's /ping answers 204)."""
    parts = urlsplit(url)

    def probe() -> object:
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=3)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        if not 200 <= response.status < 300:
            raise ConnectionError(f"GET {path} answered {response.status}")
        return response.status

    return probe
