"""What the metrics checks walk: every module of the packages, and the catalogue's constants.

Two checks read every ``on_event(...)`` call of the source tree (tests/test_metrics_catalogue.py:
the event is a catalogue constant; tests/docs/test_metrics_dimensions.py: its exported
dimensions are the catalogue's); both walk the same modules with the same constants.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shardline import metrics_events

__all__ = ["CONSTANTS", "PACKAGES", "ROOT", "violations_in_packages"]

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shardline", "producers", "consumers", "benchmarks")
CONSTANTS = {
    name: value
    for name, value in vars(metrics_events).items()
    if name.isupper() and not name.startswith("_") and isinstance(value, str)
}
"""The catalogue's event-name constants, by constant name."""


def violations_in_packages(check: Callable[[str, str], list[str]]) -> list[str]:
    """``check(source, filename)`` over every module of :data:`PACKAGES`, in path order."""
    return [
        violation
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for violation in check(path.read_text(), str(path.relative_to(ROOT)))
    ]
