"""docs/configuration.md lists every environment variable of Shardline's own that the code reads
or hands on (the ``SHARDLINE_*`` and ``INFLUX_*`` names), and names none the code does not know."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
PACKAGES = ("shardline", "producers", "consumers", "benchmarks")
_NAME = re.compile(r"\b(?:SHARDLINE|INFLUX)_[A-Z0-9_]*[A-Z0-9]\b")


def _in_code() -> set[str]:
    names: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if path.suffix in {".py", ".js"}:
                names.update(_NAME.findall(path.read_text(encoding="utf-8")))
    return names


def _in_the_table() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Environment variables") :]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in _NAME.findall(row)}


def test_every_variable_the_code_uses_is_documented() -> None:
    missing = sorted(_in_code() - _in_the_table())
    assert not missing, f"not in docs/configuration.md's environment table: {missing}"


def test_every_documented_variable_is_used() -> None:
    unknown = sorted(_in_the_table() - _in_code())
    assert not unknown, f"documented but read nowhere: {unknown}"
