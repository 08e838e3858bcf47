"""Local paths in URIs: RFC 8089 for file:, SQLAlchemy's slashes for sqlite:."""

from __future__ import annotations

import os

import pytest

from consumers.sinks.file import FileSink
from consumers.sinks.uri import dead_letter_from_uri, sink_from_uri
from shardline.errors import ConfigurationError
from shardline.uripaths import file_uri_path, is_file_uri, sqlite_uri_path


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("file:///var/data/readings.jsonl", "/var/data/readings.jsonl"),
        ("file:/var/data/readings.jsonl", "/var/data/readings.jsonl"),
        ("file://localhost/var/data/readings.jsonl", "/var/data/readings.jsonl"),
        ("file:readings.jsonl", "readings.jsonl"),
        ("file:out/readings%20x.jsonl", "out/readings x.jsonl"),
        ("readings.jsonl", "readings.jsonl"),
        ("./out/readings.jsonl", "./out/readings.jsonl"),
        ("/tmp/readings.jsonl", "/tmp/readings.jsonl"),
    ],
)
def test_file_uris_follow_rfc_8089(uri: str, path: str) -> None:
    assert is_file_uri(uri)
    assert file_uri_path(uri) == path


def test_home_directory_expands() -> None:
    assert file_uri_path("file:~/r.jsonl") == os.path.expanduser("~/r.jsonl")


@pytest.mark.parametrize(
    "uri", ["file://server/share/x.jsonl", "file:///var/data/", "file:", "file:///x?y=1"]
)
def test_bad_file_uris(uri: str) -> None:
    with pytest.raises(ConfigurationError):
        file_uri_path(uri)


def test_other_schemes_are_not_files() -> None:
    assert not is_file_uri("dynamodb://t") and not is_file_uri("s3://b/p")


@pytest.mark.parametrize(
    ("uri", "path"),
    [("sqlite:///leases.db", "leases.db"), ("sqlite:////var/lib/leases.db", "/var/lib/leases.db")],
)
def test_sqlite_follows_sqlalchemy(uri: str, path: str) -> None:
    assert sqlite_uri_path(uri) == path


def test_sinks_and_dead_letters_take_every_form(tmp_path: os.PathLike[str]) -> None:
    relative = sink_from_uri("file:readings.jsonl")
    assert isinstance(relative, FileSink) and str(relative.file.path) == "readings.jsonl"
    assert str(sink_from_uri(f"file://{tmp_path}/r.jsonl").file.path) == f"{tmp_path}/r.jsonl"  # type: ignore[attr-defined]
    assert repr(dead_letter_from_uri("dead.jsonl"))  # a plain path is a file
