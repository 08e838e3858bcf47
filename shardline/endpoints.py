"""Where a client connects, said safely: loopback or not, and URLs without their credentials.

Tokens and passwords must never travel in plaintext beyond the machine, and never show up in
a ``repr`` or a log line.  These helpers are the one place that decides what "loopback"
means and how a URL is shown, so sinks and CLIs agree.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Final
from urllib.parse import SplitResult, urlsplit

__all__ = ["is_loopback_host", "redact_url", "warn_if_plaintext_remote"]

_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); names are not resolved."""
    if not host:
        return False
    name = host.strip().strip("[]").rstrip(".").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_of_netloc(netloc: str) -> str:
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):
        return hostport[1 : hostport.find("]")] if "]" in hostport else hostport
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``: safe for reprs and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url
    netloc = "***@" + parts.netloc.rpartition("@")[2]
    return SplitResult(parts.scheme, netloc, parts.path, parts.query, parts.fragment).geturl()


def warn_if_plaintext_remote(logger: logging.Logger, what: str, hosts: str) -> bool:
    """Warn (once per call) when a plaintext connection goes to a host that is not loopback.

    ``hosts`` is a comma-separated list of ``host[:port]`` (a Kafka bootstrap list or a
    URL's netloc).  Returns whether it warned.
    """
    parts = (part.strip() for part in hosts.split(","))
    remote = [h for h in parts if h and not is_loopback_host(_host_of_netloc(h))]
    if not remote:
        return False
    logger.warning(
        "%s connects in plaintext to a host that is not loopback: traffic (and any credentials) "
        "can be read on the network; use TLS",
        what,
        extra={"hosts": ",".join(_host_of_netloc(h) for h in remote)},
    )
    return True
