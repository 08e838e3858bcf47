"""Local paths in URIs, read the way people already know them.

* ``file:`` follows RFC 8089: ``file:///var/data/x.jsonl`` and ``file:/var/data/x.jsonl`` are
  absolute, ``file://localhost/...`` too; ``file:x.jsonl`` (no slashes) is relative to the
  working directory.  A plain path without a scheme is a path.  A host other than
  ``localhost`` is refused (a remote file is not written through a local path).
* ``sqlite:`` follows SQLAlchemy: ``sqlite:///leases.db`` (three slashes) is relative,
  ``sqlite:////var/lib/leases.db`` (four) absolute.

Both are percent-decoded, and ``~`` expands to the home directory.  A ``..`` segment in a
URI (also percent-encoded) is refused: a URI never climbs out of the directory it names.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

from shardline.errors import ConfigurationError
from shardline.localfiles import refuse_parent_segments

__all__ = ["file_uri_path", "is_file_uri", "sqlite_uri_path"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def is_file_uri(text: str) -> bool:
    """Whether ``text`` names a local file: a ``file:`` URI or a path without any scheme."""
    return text.lower().startswith("file:") or not _SCHEME.match(text)


def file_uri_path(text: str) -> str:
    """The local path a ``file:`` URI (RFC 8089) or a plain path names."""
    if not text.lower().startswith("file:"):
        if _SCHEME.match(text):
            raise ConfigurationError(f"not a file: URI or a path: {text!r}")
        path = text
    else:
        rest = text[len("file:") :]
        if rest.startswith("//"):
            parts = urlsplit(text)
            if parts.netloc not in ("", "localhost"):
                host = parts.netloc.rpartition("@")[2]  # a user:password@ in it is never echoed
                raise ConfigurationError(
                    f"file URI names host {host!r}: use file:///absolute/path or file:relative/path"
                )
            if parts.query or parts.fragment:
                raise ConfigurationError(f"file URI takes no query or fragment: {text!r}")
            path = unquote(parts.path)
        else:
            path = unquote(rest)
        refuse_parent_segments(path, text)  # a URI must not climb out, even percent-encoded
    if not path or path.endswith("/"):
        raise ConfigurationError(f"file URI must name a file: {text!r}")
    return os.path.expanduser(path)


def sqlite_uri_path(text: str) -> str:
    """``sqlite:///relative.db`` -> ``relative.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    parts = urlsplit(text)
    if parts.scheme.lower() != "sqlite" or not text[len("sqlite:") :].startswith("//"):
        raise ConfigurationError(f"SQLite URI must be sqlite:///PATH, got {text!r}")
    if parts.netloc not in ("", "localhost"):
        raise ConfigurationError(f"SQLite URI must be sqlite:///PATH, got {text!r}")
    path = unquote(parts.path)[1:] if parts.path.startswith("/") else unquote(parts.path)
    refuse_parent_segments(path, text)
    if not path:
        raise ConfigurationError("SQLite URI needs a database path: sqlite:///PATH")
    return os.path.expanduser(path)
