"""Any published sample event with up to three members replaced by other JSON values gives
records or a ValidationError: nothing else escapes the parser (before, an unhashable
eventSource raised TypeError and an arrival time past what a datetime holds OverflowError)."""

from __future__ import annotations

import contextlib
import copy
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.adapters.lambda_handler import parse_event
from shardline.aggregation import DeaggregationPolicy
from shardline.errors import ValidationError
from tests.json_values import json_values

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "lambda"
EVENTS = [
    json.loads(path.read_text())
    for path in sorted(FIXTURES.glob("*.json"))
    if "event" in path.name.lower() and "response" not in path.name
]

_VALUES = json_values(
    int_bound=2**70,
    text_size=20,
    max_leaves=5,
    extra_scalars=st.sampled_from(
        ["1e300", "-1", "AAAA", "", "99999999999999999999", "aws:kinesis", "aws:kafka"]
    ),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    members = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for name, inner in members:
        yield (*prefix, name)
        yield from _paths(inner, (*prefix, name))


def test_the_samples_are_there() -> None:
    assert len(EVENTS) >= 8


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=0), st.lists(_VALUES, min_size=1, max_size=3))
def test_a_mutated_sample_event_parses_or_is_a_validation_error(seed: int, values: list[Any]) -> None:
    chooser = random.Random(seed)
    event = copy.deepcopy(EVENTS[seed % len(EVENTS)])
    for value in values:
        paths = list(_paths(event))
        if not paths:
            break
        *parents, last = chooser.choice(paths)
        target = event
        for name in parents:
            target = target[name]
        target[last] = value
    with contextlib.suppress(ValidationError):  # a typed refusal is a fine outcome
        parse_event(event, DeaggregationPolicy())
