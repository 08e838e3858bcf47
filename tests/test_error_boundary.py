"""Service errors are mapped at one kind of boundary: the context managers of shardline.errormap.

A call site wraps a client call in ``with map_aws_errors(service):`` (or ``map_kafka_errors()``)
and catches Shardline errors.  Mapping by hand inside an ``except`` block is what this test
refuses, because each hand-written copy drifts (one style turned programming errors into
non-retriable service errors):

* calling ``from_botocore`` / ``translate`` in an ``except`` block (AWS errors have a boundary);
* ``raise from_kafka_error(...)`` in an ``except`` block (re-raise through the boundary instead);
* catching botocore's exception classes outside the error map.

Translating an error *value* (a delivery report's ``KafkaError``, a per-entry ``ErrorCode``)
is not an exception boundary and stays allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.child_scan import scan_in_child

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shardline", "producers", "consumers", "benchmarks")
THE_BOUNDARY = ROOT / "shardline" / "errormap.py"
AWS_TRANSLATORS = {"from_botocore", "translate"}
RAISE_TRANSLATORS = AWS_TRANSLATORS | {"from_kafka_error"}


def _called_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
    return None


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Every place in ``source`` that maps service errors by hand, as ``file:line: why``."""
    tree = ast.parse(source, filename)
    botocore_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("botocore"):
            botocore_names.update(alias.asname or alias.name for alias in node.names)
    found: list[str] = []
    for handler in (n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler)):
        if handler.type is not None:
            for name in ast.walk(handler.type):
                if isinstance(name, ast.Name) and name.id in botocore_names:
                    found.append(f"{filename}:{handler.lineno}: catches botocore's {name.id}")
        for statement in handler.body:
            for node in ast.walk(statement):
                called = _called_name(node)
                if called in AWS_TRANSLATORS:
                    found.append(f"{filename}:{node.lineno}: calls {called}() in an except block")
                if isinstance(node, ast.Raise) and _called_name(node.exc or ast.Pass()) in RAISE_TRANSLATORS:
                    found.append(f"{filename}:{node.lineno}: raises {_called_name(node.exc)}() by hand")
    return found


def _modules() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path != THE_BOUNDARY and ".venv" not in path.parts
    )


def _violations_in_the_tree() -> list[str]:
    return [v for path in _modules() for v in violations(path.read_text(), str(path.relative_to(ROOT)))]


def test_no_call_site_maps_service_errors_by_hand() -> None:
    found = scan_in_child(__file__, "_violations_in_the_tree")
    assert found == [], "map errors with shardline.errormap.map_aws_errors/map_kafka_errors:\n" + "\n".join(
        found
    )


@pytest.mark.parametrize(
    "snippet",
    [
        "try:\n    call()\nexcept Exception as exc:\n    raise from_botocore(exc) from exc\n",
        "try:\n    call()\nexcept Exception as exc:\n    mapped = errormap.translate(exc)\n"
        "    if mapped is None:\n        raise\n    raise mapped from exc\n",
        "try:\n    call()\nexcept KafkaException as exc:\n    raise from_kafka_error(exc) from None\n",
        "from botocore.exceptions import ClientError\ntry:\n    call()\nexcept ClientError:\n    pass\n",
    ],
)
def test_the_check_catches_each_hand_written_style(snippet: str) -> None:
    assert violations(snippet)


def test_the_boundary_itself_passes_the_check() -> None:
    snippet = (
        "try:\n    with map_aws_errors('kinesis'):\n        call()\nexcept ThrottledError:\n    pass\n"
        "mapped = from_kafka_error(report)\n"
    )
    assert violations(snippet) == []
