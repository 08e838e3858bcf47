"""Where a run ran: the target, its endpoint in words, the versions and the machine.

A run against kinesis-mock (which never throttles) must not read like one against AWS, so
every result says which endpoint it used and what kind it is: "local emulator" for a
loopback address, "AWS region R" for an ``amazonaws.com`` endpoint, "custom endpoint"
otherwise.  Versions and the machine make two results comparable (or show why they are not).
"""

from __future__ import annotations

import ipaddress
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

from shardline.endpoints import redact_url

__all__ = ["describe_endpoint", "environment"]

_DISTRIBUTIONS = ("shardline", "botocore", "aiobotocore", "confluent-kafka", "moto")


def _is_loopback(host: str) -> bool:
    if host in ("localhost",) or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def describe_endpoint(endpoint: str | None, region: str | None) -> str:
    """``"http://127.0.0.1:4567 (local emulator)"``, ``"AWS region eu-west-1"``..."""
    if endpoint is None:
        return f"AWS region {region}" if region else "AWS (region not known)"
    hosts = [urlsplit(part if "://" in part else f"//{part}").hostname or "" for part in endpoint.split(",")]
    if hosts and all(_is_loopback(host) for host in hosts):
        return f"{endpoint} (local emulator)"
    if hosts and all(host.endswith(".amazonaws.com") for host in hosts):
        return f"{endpoint} (AWS region {region})" if region else f"{endpoint} (AWS)"
    return f"{endpoint} (custom endpoint)"


def _versions() -> dict[str, str]:
    found = {}
    for name in _DISTRIBUTIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _without_user_info(address: str) -> str:
    """A URL or a ``host:port`` (a Kafka bootstrap entry) with any ``user:password@`` hidden."""
    if "://" in address:
        return redact_url(address)
    return "***@" + address.rpartition("@")[2] if "@" in address else address


def environment(target_kind: str, endpoint: str | None, region: str | None) -> dict[str, Any]:
    """The ``environment`` block of a result.

    The endpoint is kept without its user info: result files are shared and published, and an
    endpoint given as ``https://user:password@host`` put the password into every one of them.
    """
    endpoint = ",".join(_without_user_info(part) for part in endpoint.split(",")) if endpoint else endpoint
    return {
        "target_kind": target_kind,
        "endpoint": endpoint,
        "region": region,
        "where": describe_endpoint(endpoint, region),
        "versions": _versions(),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(terse=True),
        },
    }
