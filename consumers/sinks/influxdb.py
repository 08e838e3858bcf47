"""Timestream for InfluxDB (and any InfluxDB) sink: line protocol over HTTP.

Each JSON-object payload becomes one point: the mapping's measure name is the
measurement, dimensions become tags, measures become fields, and the time is written in
nanoseconds with an explicit precision.  Every text of a line comes from the record and is
checked and escaped in one place (:func:`_escape`): what the line protocol cannot carry as
written (a line break, a backslash InfluxDB would read as an escape, a key named ``time``)
refuses the record alone, so no record can add a point or move one.  InfluxDB identifies a
point by measurement, tag set and timestamp and overwrites identical points, so writing the
same records again (a replay) leaves the same data.

Both HTTP APIs are spoken: v2 ``POST /api/v2/write?org=&bucket=&precision=ns`` with
``Authorization: Token ...`` (Timestream for InfluxDB, InfluxDB 2.x) and v1
``POST /write?db=&precision=n`` (InfluxDB 1.x).  Redirects are not followed: a 3xx stops
the run like a 404 (the URL does not reach the write API).  A 400/413/422 fails the call as a whole
(non-retriable: the pipeline bisects the batch so that only the points InfluxDB refuses are
dead-lettered); 429 and 5xx are retriable (the pipeline waits them out).  Response bodies
are never copied into errors: InfluxDB echoes the rejected line.
Tokens and URL credentials (``user:password@``) never appear in reprs or errors, and are
never sent in plaintext beyond the machine: a token or password with an ``http://`` URL to a
host that is not loopback is a :class:`~shardline.errors.ConfigurationError` naming the
URL (unless the deployment names the host in ``SHARDLINE_ALLOW_PLAINTEXT_HOSTS``).  TLS is
verified unless a session says otherwise.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from consumers.sinks.base import BatchingSink, ChunkLimits, EntryResult
from consumers.sinks.mapping import FieldMapping, decode_object
from shardline.endpoints import PLAINTEXT_HOSTS_ENV, plaintext_allowed, redact_url, warn_if_plaintext_remote
from shardline.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConfigurationError,
    ResourceNotFoundError,
    ServiceError,
    ThrottledError,
    TransientServiceError,
    ValidationError,
)
from shardline.limits import INT64_MAX, INT64_MIN
from shardline.records import ConsumedRecord

logger = logging.getLogger(__name__)

__all__ = ["InfluxDBSink", "escape_key", "escape_measurement", "field_value", "from_uri", "to_line"]

_MAX_LINES = 5000
_MAX_BYTES = 10 * 1024 * 1024


_AMBIGUOUS_BACKSLASH = re.compile(r"\\(?:$|[\\,= ])")
"""A backslash InfluxDB would take for an escape: last, or before a backslash, comma, equals
sign or space.  InfluxDB reads any other backslash as itself, but offers no spelling of these
that all its versions read back as written (1.x takes ``\\\\`` for two backslashes, the 2.x
documentation for one), and left as they are they escape the separator after them."""

_RESERVED_KEYS = frozenset({"time"})
"""Keys InfluxDB refuses in a point: the write fails as a whole (HTTP 400)."""

_TIME_MIN, _TIME_MAX = INT64_MIN + 2, INT64_MAX - 1
"""The nanoseconds InfluxDB stores: a line with a time outside fails its whole write (HTTP 400)."""

_SKIPPED_LEADS = ("\t", "\0")
"""What InfluxDB skips, unescaped, where a line and where its fields begin: a measurement or
a first field key opening with one is stored without it (``\\tv`` as ``v``, the field of
that name).  No escape keeps it, so a key that opens with one is refused wherever it falls."""


def _escape(text: str, what: str, specials: str) -> str:
    """The one place a text from a record becomes line protocol: checked, then escaped.

    Everything that would end the element early (a line break, an unescaped separator, a
    backslash read as an escape) is either escaped or refused here, so a record can neither
    write a second point nor move its own into another series or field.  Refusals name what
    was wrong, never the text.
    """
    if not text:
        raise ValidationError(f"{what} is empty")
    if "\n" in text or "\r" in text:
        raise ValidationError(f"{what} contains a line break")
    if _AMBIGUOUS_BACKSLASH.search(text):
        raise ValidationError(f"{what} has a backslash InfluxDB would read as an escape")
    for special in specials:
        text = text.replace(special, "\\" + special)
    return text


def escape_measurement(name: str) -> str:
    """Escape a measurement name (commas and spaces)."""
    if name.startswith(_SKIPPED_LEADS):
        raise ValidationError("measurement opens with a tab or NUL, which InfluxDB skips")
    return _escape(name, "measurement", ", ")


def escape_key(text: str, what: str = "tag or field") -> str:
    """Escape a tag key, tag value or field key (commas, equals signs, spaces)."""
    return _escape(text, what, ",= ")


def _key(text: str, what: str) -> str:
    if text in _RESERVED_KEYS:
        raise ValidationError(f"{what} is named {text!r}, which InfluxDB reserves")
    return escape_key(text, what)


def _field_key(text: str) -> str:
    """A field key, which InfluxDB reads more eagerly than a tag: it also takes a backslash
    before a double quote for an escape (``a\\"b`` is stored as ``a"b``), and skips a tab or
    NUL opening the first key.  Either way the value was stored under another field than the
    record's, replacing the record's own field of that name; both are refused."""
    if text.startswith(_SKIPPED_LEADS):
        raise ValidationError("field key opens with a tab or NUL, which InfluxDB skips")
    if '\\"' in text:
        raise ValidationError("field key has a backslash InfluxDB would read as an escape")
    return _key(text, "field key")


def field_value(value: Any) -> str:
    """A JSON value as a line-protocol field value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:  # InfluxDB refuses the whole write for it
            raise ValidationError("integer field value is outside int64")
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError("field value is not finite")
        return repr(value)
    if isinstance(value, str):
        # InfluxDB reads no escape for a line break in a string (``\\n`` stays two characters),
        # and the line protocol has no room for a raw one
        if "\n" in value or "\r" in value:
            raise ValidationError("string field value contains a line break")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise ValidationError(f"field of type {type(value).__name__} is not supported")


def to_line(record: ConsumedRecord, mapping: FieldMapping) -> bytes:
    """The record as one line-protocol point (nanosecond timestamp)."""
    payload = decode_object(record)
    tags = "".join(
        f",{_key(k, 'tag key')}={escape_key(v, 'tag value')}"
        for k, v in sorted(mapping.dimensions_of(payload).items())
    )
    measures = mapping.measures_of(payload)
    if not measures:
        raise ValidationError("payload has no field")
    fields = ",".join(f"{_field_key(k)}={field_value(v)}" for k, v in sorted(measures.items()))
    time_ns = mapping.time_ns(record, payload)
    if not _TIME_MIN <= time_ns <= _TIME_MAX:
        raise ValidationError("time is outside the nanoseconds InfluxDB stores (about 1677 to 2262)")
    return _utf8(f"{escape_measurement(mapping.measure_name)}{tags} {fields} {time_ns}\n")


class InfluxDBSink(BatchingSink[bytes]):
    """Writes points to InfluxDB over HTTP (v1 when ``database`` is set, v2 with org/bucket)."""

    name = "influxdb"
    limits = ChunkLimits(max_entries=_MAX_LINES, max_bytes=_MAX_BYTES)

    def __init__(
        self,
        url: str,
        *,
        database: str | None = None,
        org: str | None = None,
        bucket: str | None = None,
        token: str | None = None,
        mapping: FieldMapping | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError("InfluxDB URL must start with http:// or https://")
        _check_authority(url)
        if bool(database) == bool(bucket):
            raise ConfigurationError("give either database (v1 API) or org and bucket (v2 API)")
        if bucket and not org:
            raise ConfigurationError("the v2 API needs an org with the bucket")
        _refuse_plaintext_credentials(url, token)
        self.url = url.rstrip("/")
        self.database = database
        self.org = org
        self.bucket = bucket
        self._token = token
        self.mapping = mapping or FieldMapping()
        _check_mapping(self.mapping)
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:
        target = (
            f"database={self.database!r}" if self.database else f"org={self.org!r}, bucket={self.bucket!r}"
        )
        return f"InfluxDBSink({redact_url(self.url)!r}, {target})"

    def _endpoint(self) -> tuple[str, dict[str, str]]:
        if self.database:
            return f"{self.url}/write", {"db": self.database, "precision": "n"}
        return f"{self.url}/api/v2/write", {
            "org": self.org or "",
            "bucket": self.bucket or "",
            "precision": "ns",
        }

    def encode(self, record: ConsumedRecord) -> bytes:
        return to_line(record, self.mapping)

    def entry_size(self, entry: bytes) -> int:
        return len(entry)

    async def send(self, entries: Sequence[bytes]) -> Sequence[EntryResult]:
        return await self._send_lines(list(entries))

    async def _send_lines(self, lines: list[bytes]) -> list[EntryResult]:
        status = await self._post(b"".join(lines))
        if status < 300:
            return [EntryResult.written()] * len(lines)
        raise _status_error(status)

    async def _post(self, body: bytes) -> int:
        """POST the lines; the status only.  The response body is not read into any reason
        or error: InfluxDB echoes the rejected line, and that is payload."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url, params = self._endpoint()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._token:
            headers["Authorization"] = f"Token {self._token}"
        try:
            # allow_redirects=False: a redirect is not a write.  Followed, a POST answered 301
            # or 302 turned into a GET of the new address, whose 200 (a proxy's sign-in page)
            # counted the points as written; the token and the points went along with it.
            async with self._session.post(
                url, params=params, data=body, headers=headers, allow_redirects=False
            ) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientServiceError(
                f"{type(exc).__name__} talking to InfluxDB", service="influxdb"
            ) from exc

    async def release(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None


def _check_mapping(mapping: FieldMapping) -> None:
    """The mapping's own texts go into every line: one the line protocol cannot carry is a
    configuration error here, not a bad-record reason about the payload of every record."""
    texts = [(mapping.measure_name, "measurement")]
    texts += [(name, "tag key") for name in mapping.dimensions]
    texts += [(name, "field key") for name in mapping.measures]
    for text, what in texts:
        try:
            if what == "measurement":
                _utf8(escape_measurement(text))
            else:
                _utf8(_field_key(text) if what == "field key" else _key(text, what))
        except ValidationError as exc:
            raise ConfigurationError(f"InfluxDB mapping: {exc}") from None


def _utf8(line: str) -> bytes:
    try:
        return line.encode()
    except UnicodeEncodeError as exc:  # a JSON "\ud800" escape: no UTF-8 form, refused as input
        raise ValidationError(f"text has no UTF-8 form (character {exc.start} of the line)") from None


def _check_authority(url: str) -> None:
    """The URL must be a base address: a host, a numeric port if any, an optional path.

    A password holding ``/``, ``?`` or ``#`` that is not percent-encoded ends the authority
    early: ``http://admin:1234/pw@influx:8086`` reads as host ``admin``, port 1234 and a
    path.  Such a URL passed the plaintext check (no password was seen), its ``repr`` showed
    the password (no user info was seen either), and the points went in the clear to another
    host with the password in the request line.  An ``@`` after the host, a query or a
    fragment cannot belong to a base address (``/write`` is appended to it), so each is
    refused; the error shows only the scheme, since where the URL was cut is unknown.
    """
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a port that is not a number (or out of range); its text unsaid
        port_ok = False
    if not parts.hostname or not port_ok or "@" in parts.path or "?" in url or "#" in url:
        raise ConfigurationError(
            f"InfluxDB URL {parts.scheme}://... is not a base address HOST[:PORT][/PATH]: "
            "percent-encode a '/', '?', '#' or '@' in the user name or password (%2F, %3F, %23, %40)"
        )


def _refuse_plaintext_credentials(url: str, token: str | None) -> None:
    """A token or password must not cross the network in the clear."""
    parts = urlsplit(url)
    if parts.scheme != "http" or plaintext_allowed(parts.hostname):
        return
    if token or parts.password:
        what = "a token" if token else "a password"
        raise ConfigurationError(
            f"refusing to send {what} over plaintext http to {redact_url(url)}: the host is not "
            f"loopback; use https:// (influxdb+https:// on the command line), or name the host in "
            f"{PLAINTEXT_HOSTS_ENV} to allow it"
        )


def _status_error(status: int) -> ServiceError:
    code = f"HTTP{status}"
    if status == 401:
        return AuthenticationError("InfluxDB rejected the credentials", code=code, service="influxdb")
    if status == 403:
        return AccessDeniedError("InfluxDB refused the write", code=code, service="influxdb")
    if status == 404:
        return ResourceNotFoundError("InfluxDB: database or bucket not found", code=code, service="influxdb")
    if 300 <= status < 400:
        # the URL does not lead to the write API: stop, rather than bisect every point out
        return ResourceNotFoundError(
            f"InfluxDB answered a redirect (HTTP {status}): give the write API's own address",
            code=code,
            service="influxdb",
        )
    if status == 429:
        return ThrottledError("InfluxDB is throttling writes", code=code, service="influxdb")
    if status >= 500:
        return TransientServiceError(f"InfluxDB answered {status}", code=code, service="influxdb")
    # 400/413/422: some line of the call is refused (the pipeline bisects to find it)
    return ServiceError(f"InfluxDB refused the write with HTTP {status}", code=code, service="influxdb")


_QUERY_CREDENTIALS = frozenset({"u", "p", "password", "username", "user"})
"""Query options that can only be credentials (InfluxDB 1.x's own ``?u=&p=`` among them)."""


def from_uri(
    netloc: str, path: str, query: dict[str, str], uri: str, options: dict[str, Any]
) -> InfluxDBSink:
    """``influxdb://HOST:PORT/DB`` (v1), ``influxdb://HOST:PORT?org=O&bucket=B`` (v2).

    ``influxdb+https://`` (or ``influxdbs://``) uses TLS.  The v2 token comes from the ``token`` option or the
    ``INFLUX_TOKEN`` environment variable, never from the URI (it would end up in logs).
    """
    if not netloc:
        raise ConfigurationError(f"InfluxDB URI needs HOST:PORT: {redact_url(uri)!r}")
    if "token" in query:
        raise ConfigurationError("do not put the InfluxDB token in the URI; use INFLUX_TOKEN")
    if query.keys() & _QUERY_CREDENTIALS:
        # InfluxDB 1.x reads ?u=&p= itself, but this sink sends only org and bucket: the
        # password went nowhere useful, and into the plaintext warning with the whole URI
        raise ConfigurationError(
            "do not put InfluxDB credentials in the URI's query: give USER:PASSWORD@ before the host "
            "(influxdb+https://USER:PASSWORD@HOST:PORT/DB) or the INFLUX_TOKEN environment variable"
        )
    scheme = "https" if uri.lower().startswith(("influxdb+https://", "influxdbs://")) else "http"
    # The authority as written, still percent-encoded: ``netloc`` comes decoded, and a decoded
    # "%2F", "%3F" or "%23" in a password moved the host into the password (see _check_authority).
    netloc = urlsplit(uri).netloc
    if scheme == "http":
        shown = redact_url(uri).split("?", 1)[0].split("#", 1)[0]  # options are not logged
        warn_if_plaintext_remote(logger, f"InfluxDB sink {shown}", netloc)
    database = path.strip("/") or None
    options.setdefault("mapping", FieldMapping.from_options(query))
    options.setdefault("token", os.environ.get("INFLUX_TOKEN"))
    return InfluxDBSink(
        f"{scheme}://{netloc}", database=database, org=query.get("org"), bucket=query.get("bucket"), **options
    )
