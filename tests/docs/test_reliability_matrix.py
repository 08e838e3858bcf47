"""Every test docs/reliability.md names for a fault-matrix row exists.

The table maps each reliability row to the tests that cover it; a renamed or deleted test
would leave a row looking covered when it is not.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "docs" / "reliability.md"
_TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
_ROW = re.compile(r"^\| (\d+(?:, \d+)*) \|", re.MULTILINE)


def defined_tests(path: Path) -> set[str]:
    """Names of the module-level test functions (sync or async) defined in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    }


def missing_tests(text: str) -> list[str]:
    """The ``file::function`` references in ``text`` whose file or function does not exist."""
    missing: list[str] = []
    for match in _TEST_REFERENCE.finditer(text):
        path, function = ROOT / match.group(1), match.group(2)
        if not path.is_file() or function not in defined_tests(path):
            missing.append(f"{match.group(1)}::{function}")
    return missing


def test_every_named_test_exists() -> None:
    assert missing_tests(MATRIX.read_text(encoding="utf-8")) == []


def test_every_row_of_the_matrix_names_a_test() -> None:
    text = MATRIX.read_text(encoding="utf-8")
    rows = [
        (match.group(1), text[match.end() : text.find("\n", match.end())]) for match in _ROW.finditer(text)
    ]
    covered = {number for numbers, _ in rows for number in numbers.split(", ")}
    assert covered == {str(row) for row in range(1, 26)}
    assert [numbers for numbers, line in rows if not _TEST_REFERENCE.search(line)] == []


def test_the_check_catches_a_renamed_test() -> None:
    assert missing_tests("`tests/docs/test_reliability_matrix.py::test_no_such_test`")
    assert missing_tests("`tests/no_such_file.py::test_every_named_test_exists`")
    assert not missing_tests("`tests/docs/test_reliability_matrix.py::test_every_named_test_exists`")
