"""Sinks and dead-letter destinations addressed by URI, as on the command line.

=================================  ===========================================================
``file:///ABS/PATH.jsonl``         :class:`~consumers.sinks.file.FileSink` (sink) or
``file:REL/PATH.jsonl``, a path    :class:`~consumers.sinks.deadletter.FileDeadLetter`
``dynamodb://TABLE``               :class:`~consumers.sinks.dynamodb.DynamoDBSink`
``firehose://DELIVERY_STREAM``     :class:`~consumers.sinks.firehose.FirehoseSink`
``timestream://DB/TABLE``          :class:`~consumers.sinks.timestream.TimestreamSink`
``influxdb://HOST:PORT/DB``        :class:`~consumers.sinks.influxdb.InfluxDBSink` (v1 API;
                                   ``influxdb+https://`` or ``influxdbs://`` for TLS,
                                   ``?org=&bucket=`` for v2; a token or password
                                   is refused over plaintext to a non-loopback host,
                                   and credentials in the query always)
``s3://BUCKET/PREFIX``             :class:`~consumers.sinks.deadletter.S3DeadLetter`
                                   (``?expected_bucket_owner=ACCOUNT`` refuses a foreign bucket)
=================================  ===========================================================

Query parameters become options (e.g. ``dynamodb://T?guarded=true&key=device_id``);
keyword ``options`` given in code win over the query.  An option the scheme does not know, or
a flag that is neither true nor false, is refused: a misspelt ``?gaurded=true`` (or
``?guarded=ture``) used to be dropped, and the sink wrote unguarded.  Mapping options that a URI cannot
carry come from a mapping file (``?mapping=PATH``, see :mod:`consumers.sinks.mapping`).
AWS clients are built from the standard AWS configuration (profile, region,
``AWS_ENDPOINT_URL_<SERVICE>``) unless a ``client`` option is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from consumers.sinks.base import DeadLetter, Sink
from consumers.sinks.deadletter import FileDeadLetter
from consumers.sinks.file import FileSink
from shardline.endpoints import redact_url
from shardline.errors import ConfigurationError
from shardline.localfiles import refuse_parent_segments
from shardline.uripaths import file_uri_path, is_file_uri

__all__ = ["dead_letter_from_uri", "parse_uri", "sink_from_uri"]


def parse_uri(uri: str) -> tuple[str, str, str, dict[str, str]]:
    """Split a sink URI into (scheme, netloc, path, query options); validates the scheme."""
    if not isinstance(uri, str) or "://" not in uri:
        raise ConfigurationError(f"not a sink URI (expected scheme://...): {redact_url(uri)!r}")
    parts = urlsplit(uri)
    if not parts.scheme:
        raise ConfigurationError(f"sink URI without a scheme: {redact_url(uri)!r}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return parts.scheme.lower(), unquote(parts.netloc), unquote(parts.path), query


def _file_path(netloc: str, path: str, uri: str) -> str:
    if netloc not in ("", "localhost"):
        raise ConfigurationError(f"file URI must be file:///absolute/path, got {redact_url(uri)!r}")
    if not path or path.endswith("/"):
        raise ConfigurationError(f"file URI must name a file: {redact_url(uri)!r}")
    return os.path.expanduser(refuse_parent_segments(path, uri))


def _file_sink(netloc: str, path: str, query: dict[str, str], uri: str, options: dict[str, Any]) -> Sink:
    return FileSink(_file_path(netloc, path, uri), **options)


def _lazy(module: str, factory: str) -> Callable[[str, str, dict[str, str], str, dict[str, Any]], Sink]:
    """Import a sink module only when its scheme is used, so optional deps stay optional."""

    def build(netloc: str, path: str, query: dict[str, str], uri: str, options: dict[str, Any]) -> Sink:
        import importlib

        loaded = importlib.import_module(module)
        result: Sink = getattr(loaded, factory)(netloc, path, query, uri, options)
        return result

    return build


_MAPPING_OPTIONS = frozenset(
    {"mapping", "dimensions", "measures", "time", "time_field", "time_unit", "measurement"}
    | {"measure_name", "multi_measure", "key", "keys", "version", "version_field"}
)
"""The :class:`~consumers.sinks.mapping.FieldMapping` fields (and their short names) a query sets."""

# token and the credential names are read only to be refused with their own advice
# (consumers.sinks.influxdb): the token from the environment, a user and password before the host
_INFLUXDB_OPTIONS = _MAPPING_OPTIONS | {"org", "bucket", "token", "u", "p", "password", "username", "user"}
_OPTIONS: dict[str, frozenset[str]] = {
    "dynamodb": _MAPPING_OPTIONS | {"guarded", "key_attribute", "version_attribute", "endpoint_url"},
    "firehose": frozenset({"endpoint_url"}),
    "timestream": _MAPPING_OPTIONS | {"endpoint_url"},
    "influxdb": _INFLUXDB_OPTIONS,
    "influxdb+http": _INFLUXDB_OPTIONS,
    "influxdb+https": _INFLUXDB_OPTIONS,
    "influxdbs": _INFLUXDB_OPTIONS,
}
"""The query options each scheme reads; any other is a typo, refused before anything connects."""

_FLAGS = ("guarded", "multi_measure")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

_NAMED_BY_NETLOC = frozenset({"dynamodb", "firehose", "timestream"})
"""Schemes whose ``//`` part is a resource name, not a host: a ``user:password@`` in it is a
mistake, and was looked up (and echoed) as part of the name."""


def _check_options(scheme: str, query: dict[str, str]) -> None:
    """Refuse an option ``scheme`` does not read, and a flag that is neither true nor false."""
    known = _OPTIONS[scheme]
    unknown = sorted(set(query) - known)
    if unknown:
        raise ConfigurationError(
            f"unknown {scheme}:// sink option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    for name in _FLAGS:
        if name in query and query[name].lower() not in _TRUE | _FALSE:
            raise ConfigurationError(f"sink option {name!r} must be true or false")


_SINKS: dict[str, Callable[[str, str, dict[str, str], str, dict[str, Any]], Sink]] = {
    "file": _file_sink,
    "dynamodb": _lazy("consumers.sinks.dynamodb", "from_uri"),
    "firehose": _lazy("consumers.sinks.firehose", "from_uri"),
    "timestream": _lazy("consumers.sinks.timestream", "from_uri"),
    "influxdb": _lazy("consumers.sinks.influxdb", "from_uri"),
    "influxdb+http": _lazy("consumers.sinks.influxdb", "from_uri"),
    "influxdb+https": _lazy("consumers.sinks.influxdb", "from_uri"),
    "influxdbs": _lazy("consumers.sinks.influxdb", "from_uri"),
}


def sink_from_uri(uri: str, **options: Any) -> Sink:
    """Build the sink a URI names.  ``options`` (e.g. ``client=``, ``observer=``) win.

    Raises :class:`ConfigurationError` for an unknown scheme or a malformed URI, before any
    network call.  Files follow RFC 8089 (:mod:`shardline.uripaths`): ``file:///abs/x.jsonl``,
    ``file:relative.jsonl``, or a plain path.
    """
    if isinstance(uri, str) and is_file_uri(uri):
        return FileSink(file_uri_path(uri), **options)
    # a misspelt scheme is named as such, with or without "//" ("fle:out.jsonl" was reported as
    # "not a sink URI (expected scheme://...)", though file:out.jsonl needs none)
    written = urlsplit(uri).scheme.lower() if isinstance(uri, str) else ""
    if written and written not in _SINKS:
        raise ConfigurationError(f"unknown sink scheme {written!r}; known: {', '.join(sorted(_SINKS))}")
    scheme, netloc, path, query = parse_uri(uri)
    if scheme in _NAMED_BY_NETLOC and "@" in netloc:
        raise ConfigurationError(
            f"a {scheme}:// sink URI takes no user or password: {redact_url(uri)!r} "
            "(credentials come from the standard AWS configuration)"
        )
    _check_options(scheme, query)
    builder = _SINKS[scheme]
    return builder(netloc, path, query, uri, dict(options))


def dead_letter_from_uri(uri: str, **options: Any) -> DeadLetter:
    """Build a dead-letter destination: a file (as for sinks) or ``s3://BUCKET/PREFIX``."""
    if isinstance(uri, str) and is_file_uri(uri):
        return FileDeadLetter(file_uri_path(uri))
    scheme, netloc, path, query = parse_uri(uri)
    if scheme == "file":
        return FileDeadLetter(_file_path(netloc, path, uri))
    if scheme == "s3":
        from consumers.sinks.deadletter import s3_dead_letter

        if not netloc:
            raise ConfigurationError(f"s3 dead-letter URI needs a bucket: {redact_url(uri)!r}")
        if "@" in netloc:
            raise ConfigurationError(
                f"an s3:// dead-letter URI takes no user or password: {redact_url(uri)!r} "
                "(credentials come from the standard AWS configuration)"
            )
        unknown = sorted(set(query) - {"expected_bucket_owner"})
        if unknown:  # a misspelt ?expected_bucket_owner= left the owner check off
            raise ConfigurationError(
                f"unknown s3:// dead-letter option(s): {', '.join(unknown)} (known: expected_bucket_owner)"
            )
        if "expected_bucket_owner" in query:  # s3://BUCKET/PREFIX?expected_bucket_owner=ACCOUNT
            options.setdefault("expected_bucket_owner", query["expected_bucket_owner"])
        return s3_dead_letter(netloc, path, **options)
    raise ConfigurationError(f"unknown dead-letter scheme {scheme!r}; known: file, s3")
