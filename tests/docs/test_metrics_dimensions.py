"""docs/metrics.md gives each event the dimensions it is exported under; every emitter agrees.

The table is rendered from the catalogue, and the dashboard and alarms are checked against the
catalogue's dimensions, so an emitter that reports an event under an exported dimension the
catalogue does not list (or leaves out) puts it in CloudWatch under another dimension set than
the one operators were told to watch: a widget or alarm on it shows nothing.
"""

from __future__ import annotations

import ast

from shardline.metrics_events import CATALOGUE
from tests.child_scan import scan_in_child
from tests.emitter_scan import CONSTANTS, violations_in_packages


def dimension_violations(source: str, filename: str = "<source>") -> list[str]:
    """``on_event(events.X, ..., dim=...)`` calls whose exported dimensions are not X's."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "on_event" or not node.args:
            continue
        event = node.args[0]
        if not (isinstance(event, ast.Attribute) and event.attr in CONSTANTS):
            continue
        if any(keyword.arg is None for keyword in node.keywords):
            continue  # **dimensions built elsewhere
        name = CONSTANTS[event.attr]
        reported = {keyword.arg for keyword in node.keywords if keyword.arg is not None}
        listed = set(CATALOGUE[name].dimensions)
        if not reported <= listed:
            found.append(
                f"{filename}:{node.lineno}: {name} is reported with {sorted(reported - listed)}, "
                f"the catalogue lists {sorted(listed)}"
            )
    return found


def _violations_in_the_tree() -> list[str]:
    return violations_in_packages(dimension_violations)


def test_every_emitter_reports_the_catalogued_dimensions() -> None:
    found = scan_in_child(__file__, "_violations_in_the_tree")
    assert found == [], "\n".join(found)


def test_the_check_catches_an_unlisted_exported_dimension() -> None:
    assert dimension_violations("observer.on_event(events.RECORDS_SENT, 1, shard='s')")
    assert not dimension_violations("observer.on_event(events.RECORDS_SENT, 1, stream='s')")


def test_the_check_catches_a_dimension_the_catalogue_does_not_name() -> None:
    """Not exported by default, but an exporter may be given any dimension to export: one the
    catalogue does not name is one no operator knows to ask for."""
    assert dimension_violations("observer.on_event(events.RECORDS_SENT, 1, stream='s', other=1)")
