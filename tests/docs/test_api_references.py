"""Every dotted name of Shardline's packages the docs mention in inline code resolves.

Python blocks are executed by test_code_samples; prose such as
"`consumers.replay.job.ReplayJob(reader, sink, store)` is the same job" is not, and a name
that moved (or never was importable from where the docs say) sends a reader to an
ImportError in their first minutes.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", ROOT / "deploy" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = ("shardline", "producers", "consumers", "benchmarks")
_REFERENCE = re.compile(r"`((?:" + "|".join(PACKAGES) + r")(?:\.[A-Za-z_]\w*)+)")


def unresolved(text: str) -> list[str]:
    """The dotted references in ``text`` that name no module or no attribute of one."""
    missing: list[str] = []
    for match in _REFERENCE.finditer(text):
        parts = match.group(1).split(".")
        for cut in range(len(parts), 0, -1):
            try:
                found: object = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError as error:
                if error.name is not None and error.name.split(".")[0] not in PACKAGES:
                    break  # an optional extra that is not installed here: nothing to check
                continue
            try:
                for part in parts[cut:]:
                    found = getattr(found, part)
            except AttributeError:
                line = text.count("\n", 0, match.start()) + 1
                missing.append(f"line {line}: {match.group(1)}")
            break
    return missing


def test_every_package_reference_resolves() -> None:
    missing = [
        f"{document.relative_to(ROOT)} {where}"
        for document in DOCUMENTS
        for where in unresolved(document.read_text(encoding="utf-8"))
    ]
    assert not missing, f"names the docs give that do not import: {missing}"


def test_the_check_catches_a_missing_name() -> None:
    assert unresolved("`consumers.replay.NoSuchJob(reader)`")
    assert not unresolved("`consumers.replay.job.ReplayJob(reader, sink, store)`")
