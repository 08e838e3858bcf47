"""Fixtures shared by the unit tests."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from shardline import gcpause


@pytest.fixture
def collector_enabled() -> Iterator[None]:
    """The cyclic collector on and nothing frozen, as a fresh interpreter has it; restored after.

    Tests of code that hands objects to the collector's generations must not depend on what
    earlier tests in the same process left behind (a disabled collector, a frozen heap).
    """
    was_enabled, was_frozen = gc.isenabled(), gc.get_freeze_count() > 0
    gc.unfreeze()
    gc.enable()
    gcpause.forget_frozen_heap()
    yield
    gcpause.forget_frozen_heap()
    if was_enabled:
        gc.enable()  # a test may have disabled it
    else:
        gc.disable()
    if was_frozen:
        gc.freeze()
