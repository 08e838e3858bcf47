"""An observer that raises is contained: logged once, counted, never propagated."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from shardline.metrics import CompositeObserver, GuardedObserver, NullObserver, guard_observer


class _Raising:
    def __init__(self) -> None:
        self.calls = 0

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")


class _Recording:
    def __init__(self) -> None:
        self.events: list[tuple[str, float, dict[str, Any]]] = []

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        self.events.append((name, value, dimensions))


def test_failures_are_logged_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    raising = _Raising()
    guarded = guard_observer(raising)
    assert isinstance(guarded, GuardedObserver)
    with caplog.at_level(logging.WARNING, logger="shardline.metrics"):
        for _ in range(5):
            guarded.on_event("records_sent", 3, stream="s")
    assert raising.calls == 5
    assert guarded.failures == 5
    warnings = [r for r in caplog.records if r.name == "shardline.metrics"]
    assert len(warnings) == 1
    assert "_Raising" in warnings[0].getMessage()


def test_events_pass_through_unchanged() -> None:
    recording = _Recording()
    guard_observer(recording).on_event("records_sent", 2.0, stream="s", shard="shardId-0")
    assert recording.events == [("records_sent", 2.0, {"stream": "s", "shard": "shardId-0"})]


def test_null_and_guarded_observers_are_not_wrapped_again() -> None:
    null = NullObserver()
    assert guard_observer(null) is null
    assert isinstance(guard_observer(None), NullObserver)
    guarded = guard_observer(_Recording())
    assert guard_observer(guarded) is guarded


def test_composite_keeps_feeding_the_others_when_one_raises() -> None:
    recording = _Recording()
    CompositeObserver(_Raising(), recording).on_event("batches", 1)
    assert recording.events == [("batches", 1, {})]


def test_failures_counted_from_several_threads() -> None:
    guarded = guard_observer(_Raising())
    assert isinstance(guarded, GuardedObserver)

    def emit() -> None:
        for _ in range(200):
            guarded.on_event("records_delivered", 1)

    threads = [threading.Thread(target=emit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert guarded.failures == 800


class _Throttles:
    shardline_events = frozenset({"throttles"})

    def on_event(self, name: str, value: float = 1.0, **dimensions: Any) -> None:
        return None


def test_an_observer_takes_every_event_unless_it_lists_the_ones_it_takes() -> None:
    from shardline.metrics import takes_event

    recording = _Recording()  # its own ``events`` list is not a list of events it takes
    assert takes_event(recording, "send_to_ack_latency")
    assert takes_event(guard_observer(recording), "send_to_ack_latency")
    assert takes_event(_Throttles(), "throttles") and not takes_event(_Throttles(), "shard_records")
    assert not takes_event(guard_observer(_Throttles()), "shard_records")
    assert not takes_event(guard_observer(None), "throttles")  # the null default takes none
    both = CompositeObserver(_Throttles(), NullObserver())
    assert takes_event(both, "throttles") and not takes_event(both, "shard_records")
    assert takes_event(CompositeObserver(_Throttles(), recording), "shard_records")
