"""Imports flow one way: benchmarks -> producers | consumers -> shardline.

Two independent checks: import-linter's contracts from pyproject.toml, and a direct AST scan
of every import statement (including function-local and TYPE_CHECKING imports), which also
enforces that sinks import only the sink package and shardline.  The scanner is itself
tested on a deliberately wrong tree, so a broken scanner cannot pass silently.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.child_scan import scan_in_child

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shardline", "producers", "consumers", "benchmarks")

# package -> project packages it must never import
FORBIDDEN: dict[str, frozenset[str]] = {
    "shardline": frozenset({"producers", "consumers", "benchmarks"}),
    "producers": frozenset({"consumers", "benchmarks"}),
    "consumers": frozenset({"producers", "benchmarks"}),
    "benchmarks": frozenset(),
}


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(root: Path, path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in ``path``, relative imports resolved."""
    module = _module_name(root, path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base = ".".join(base_parts[: len(base_parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                # `from consumers import checkpoint` imports the submodule consumers.checkpoint
                yield node.lineno, f"{target}.{alias.name}" if alias.name != "*" else target


def violations(root: Path) -> list[str]:
    """Every import that breaks the layering or the sink rule, as ``path:line -> module``."""
    found: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            importer = _module_name(root, path)
            in_sinks = importer == "consumers.sinks" or importer.startswith("consumers.sinks.")
            for line, imported in _imports(root, path):
                top = imported.split(".")[0]
                where = f"{path.relative_to(root)}:{line} -> {imported}"
                sink_reaching_out = (
                    in_sinks
                    and top in PACKAGES
                    and top != "shardline"
                    and not (imported == "consumers.sinks" or imported.startswith("consumers.sinks."))
                )
                if top in FORBIDDEN[package] or sink_reaching_out:
                    found.append(where)
    return found


def _violations_in_the_tree() -> list[str]:
    return violations(ROOT)


def test_packages_import_in_one_direction() -> None:
    assert scan_in_child(__file__, "_violations_in_the_tree") == []


def test_scanner_finds_violations(tmp_path: Path) -> None:
    files = {
        "shardline/__init__.py": "",
        "shardline/core.py": "def f():\n    from producers import kinesis\n",
        "producers/__init__.py": "from consumers.pipeline import Pipeline\n",
        "consumers/__init__.py": "",
        "consumers/sinks/__init__.py": "",
        "consumers/sinks/bad.py": (
            "from ..checkpoint import base\nfrom . import good\nimport shardline.errors\n"
        ),
        "consumers/sinks/good.py": "from consumers.sinks.base import Sink\n",
        "benchmarks/__init__.py": "import producers, consumers, shardline\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert violations(tmp_path) == [
        "shardline/core.py:2 -> producers.kinesis",
        "producers/__init__.py:1 -> consumers.pipeline.Pipeline",
        "consumers/sinks/bad.py:1 -> consumers.checkpoint.base",
    ]


def test_import_linter_contracts_hold() -> None:
    # In a child process: import-linter reconfigures the logging module of the process it runs in,
    # which would silence later tests' log capture.
    program = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
