"""docs/errors.md documents every error class Shardline can raise, with its retriable flag."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

from shardline.errors import ShardlineError

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
_ROW = re.compile(r"^\| `(?P<name>\w+)` \| (?P<retriable>yes|no|depends) \|", re.MULTILINE)


def _all_error_classes() -> set[type[ShardlineError]]:
    for package in ("shardline", "producers", "consumers", "benchmarks"):
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            importlib.import_module(module.name)

    def walk(cls: type[ShardlineError]) -> Iterator[type[ShardlineError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from walk(sub)

    return {cls for cls in walk(ShardlineError) if not cls.__name__.startswith("_")}


def test_every_error_class_is_documented_with_its_retriable_flag() -> None:
    rows = {match["name"]: match["retriable"] for match in _ROW.finditer(DOC.read_text(encoding="utf-8"))}
    classes = _all_error_classes()
    assert len(classes) >= 25
    missing = sorted(cls.__name__ for cls in classes if cls.__name__ not in rows)
    assert not missing, f"undocumented errors: {missing}"
    for cls in classes:
        documented = rows[cls.__name__]
        if documented != "depends":
            assert (documented == "yes") == cls.retriable, f"{cls.__name__}: doc says {documented}"


def test_each_error_is_documented_once() -> None:
    names = [match["name"] for match in _ROW.finditer(DOC.read_text(encoding="utf-8"))]
    repeated = sorted({name for name in names if names.count(name) > 1})
    assert not repeated, f"documented twice: {repeated}"


_MARKER = re.compile(r"^(<{7}|>{7}|={7})( |$)", re.MULTILINE)


def test_no_merge_conflict_markers_are_left_in_the_docs() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    marked = [str(path) for path in docs.rglob("*.md") if _MARKER.search(path.read_text(encoding="utf-8"))]
    assert not marked, f"conflict markers in {marked}"
