"""Where a client connects, said safely: loopback or not, and URLs without their credentials.

Tokens and passwords must never travel in plaintext beyond the machine, and never show up in
a ``repr`` or a log line.  These helpers are the one place that decides what "loopback"
means, which other hosts a deployment lets credentials reach over plain ``http://``
(:data:`PLAINTEXT_HOSTS_ENV`), and how a URL is shown, so sinks and CLIs agree.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from typing import Final
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "PLAINTEXT_HOSTS_ENV",
    "is_loopback_host",
    "plaintext_allowed",
    "redact_url",
    "redact_urls_in",
    "warn_if_plaintext_remote",
]

_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

PLAINTEXT_HOSTS_ENV: Final = "SHARDLINE_ALLOW_PLAINTEXT_HOSTS"
"""Comma-separated host names (no ports) that may receive credentials over plain ``http://``
besides loopback: an emulator in a container network (``localstack``), a test InfluxDB.
Each host is named on purpose; there is no wildcard."""


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


def _normalised_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def plaintext_allowed(host: str | None) -> bool:
    """True when credentials may go to ``host`` over plain ``http://``: a loopback host, or
    one the deployment lists in ``$SHARDLINE_ALLOW_PLAINTEXT_HOSTS`` (read at each call)."""
    if is_loopback_host(host):
        return True
    if not host:
        return False
    listed = {_normalised_host(name) for name in os.environ.get(PLAINTEXT_HOSTS_ENV, "").split(",")}
    return _normalised_host(host) in listed - {""}


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


_USERINFO_IN_TEXT: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s@]*@")
"""``scheme://`` and everything up to the last ``@`` before a blank: the user info of any
URL in a text, however its password is (mis)encoded (an unencoded ``/`` included)."""


def redact_urls_in(text: str) -> str:
    """``text`` with the user info of every URL in it replaced by ``***@``: for messages that
    quote a URL they were given (botocore's "Invalid endpoint: ..."), where :func:`redact_url`
    cannot be applied to the URL alone.  An ``@`` later in a URL's path hides the path as well."""
    return _USERINFO_IN_TEXT.sub(r"\1***@", text)


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
