"""collector_paused: the collector is off inside the block and back as it was after it."""

from __future__ import annotations

import gc
import weakref

import pytest

from shardline import gcpause
from shardline.gcpause import collector_paused


@pytest.mark.usefixtures("collector_enabled")
def test_paused_inside_and_restored_after() -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_enabled")
def test_restored_when_the_block_raises() -> None:
    with pytest.raises(ZeroDivisionError), collector_paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_enabled")
def test_an_application_that_disabled_the_collector_keeps_it_disabled() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def _in_generation(obj: object, generation: int) -> bool:
    return any(candidate is obj for candidate in gc.get_objects(generation))


class _Node:
    """A tracked object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: object = None


@pytest.mark.usefixtures("collector_enabled")
def test_promote_hands_what_the_block_built_to_the_oldest_generation() -> None:
    with collector_paused(promote=True):
        assert not gc.isenabled()
        built = [_Node() for _ in range(3)]
    assert gc.isenabled()
    assert all(_in_generation(node, 2) for node in built)
    assert not any(_in_generation(node, 0) for node in built)


@pytest.mark.usefixtures("collector_enabled")
def test_without_promote_the_block_built_objects_stay_young() -> None:
    gc.collect()
    with collector_paused():
        built = _Node()
    assert not _in_generation(built, 2)


@pytest.mark.usefixtures("collector_enabled")
def test_promote_collects_the_applications_young_garbage_first() -> None:
    # a young reference cycle made before the block is collected, not promoted with the batch
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    watch = weakref.ref(first)
    del first, second
    assert watch() is not None
    with collector_paused(promote=True):
        pass
    assert watch() is None


@pytest.mark.usefixtures("collector_enabled")
def test_promote_leaves_an_applications_frozen_objects_frozen() -> None:
    with collector_paused(promote=True):  # an unfrozen heap is asked about every time...
        pass
    gc.freeze()  # ...so a freeze after it is seen by the next block
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with collector_paused(promote=True):
            built = _Node()
        assert gc.get_freeze_count() == frozen
        assert not _in_generation(built, 2)
    finally:
        gc.unfreeze()


@pytest.mark.usefixtures("collector_enabled")
def test_promote_restores_the_collector_when_the_block_raises() -> None:
    with pytest.raises(ZeroDivisionError), collector_paused(promote=True):
        1 / 0  # noqa: B018
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_promote_with_the_collector_disabled_by_the_application_changes_nothing() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        with collector_paused(promote=True):
            built = _Node()
        assert not gc.isenabled()
        assert not _in_generation(built, 2)
    finally:
        if was:
            gc.enable()


@pytest.mark.usefixtures("collector_enabled")
def test_a_frozen_heap_is_counted_once_per_recheck_window(monkeypatch: pytest.MonkeyPatch) -> None:
    # counting frozen objects walks the whole frozen list: a frozen heap is not counted per block
    calls: list[int] = []

    def counting() -> int:
        calls.append(1)
        return 5

    monkeypatch.setattr(gc, "get_freeze_count", counting)
    for _ in range(gcpause.FROZEN_RECHECK_EVERY):
        with collector_paused(promote=True):
            pass
    assert len(calls) == 1
    with collector_paused(promote=True):
        pass
    assert len(calls) == 2
