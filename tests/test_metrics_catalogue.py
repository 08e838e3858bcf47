"""The metrics catalogue is the one source of event names, kinds and units.

* every ``on_event(...)`` call in the packages names a catalogue constant (no string literals);
* the table in docs/metrics.md is the one the catalogue renders;
* every sink outcome has its event.
"""

from __future__ import annotations

import ast

import pytest

from shardline import metrics_events
from shardline.metrics_events import CATALOGUE, MetricKind, Unit, markdown_table
from tests.child_scan import scan_in_child
from tests.emitter_scan import CONSTANTS, ROOT, violations_in_packages


def emit_violations(source: str, filename: str = "<source>") -> list[str]:
    """``on_event`` calls whose event is not ``events.<CATALOGUED_CONSTANT>``."""
    found: list[str] = []
    forwarders: set[int] = set()
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "on_event":
            forwarders.update(id(inner) for inner in ast.walk(node))  # observers passing `name` on
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "on_event" or id(node) in forwarders or not node.args:
            continue
        event = node.args[0]
        if isinstance(event, ast.Attribute) and event.attr in CONSTANTS:
            continue
        if (
            isinstance(event, ast.Call)
            and isinstance(event.func, ast.Attribute)
            and event.func.attr == "sink_records"
        ):
            continue
        found.append(f"{filename}:{node.lineno}: on_event({ast.unparse(event)}) is not a catalogue constant")
    return found


def _violations_in_the_tree() -> list[str]:
    return violations_in_packages(emit_violations)


def test_every_emitter_uses_a_catalogue_constant() -> None:
    found = scan_in_child(__file__, "_violations_in_the_tree")
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(
    "snippet",
    ['observer.on_event("records_sent", 1)', 'observer.on_event(f"sink_{x}", 1)', "o.on_event(events.NOPE)"],
)
def test_the_emitter_check_catches_literals_and_unknown_names(snippet: str) -> None:
    assert emit_violations(snippet)


def test_every_constant_is_catalogued_and_every_entry_has_a_constant() -> None:
    assert set(CONSTANTS.values()) == set(CATALOGUE)
    for name, event in CATALOGUE.items():
        assert event.name == name
        assert isinstance(event.kind, MetricKind) and isinstance(event.unit, Unit)
        assert all(isinstance(d, str) and d for d in event.dimensions)


def test_docs_table_is_generated_from_the_catalogue() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    start = text.index("<!-- metrics-table:start -->\n") + len("<!-- metrics-table:start -->\n")
    end = text.index("\n<!-- metrics-table:end -->")
    assert text[start:end] == markdown_table(), (
        "regenerate the table: python -c 'from shardline.metrics_events import markdown_table; "
        "print(markdown_table())'"
    )


def test_every_sink_outcome_has_an_event() -> None:
    from consumers.sinks.base import Outcome

    for outcome in Outcome:
        assert metrics_events.sink_records(outcome.value) in CATALOGUE


def test_latency_and_lag_events_keep_their_units() -> None:
    assert CATALOGUE["send_to_ack_latency"].unit is Unit.SECONDS
    assert CATALOGUE["send_to_ack_latency"].kind is MetricKind.DISTRIBUTION
    assert CATALOGUE["millis_behind_latest"].unit is Unit.MILLISECONDS
    assert CATALOGUE["millis_behind_latest"].cloudwatch_name == "IteratorAgeMilliseconds"
