"""The garbage collector's settings for the measured part of a run.

With CPython's defaults (thresholds 700, 10, 10) a bench process at unbounded rate spends
a quarter of its CPU in the collector, nearly all of it in full collections: each walks every
object the process holds (botocore's loaded service models, the producer's buffer of up to
200,000 records in flight) and finds next to nothing, since what the run allocates is freed
by reference counting.  For the run, :func:`run_gc_settings` therefore

* collects once and freezes what setup left (``gc.freeze``): imported modules, clients and
  service models are never walked again;
* raises the youngest generation's threshold to ``young`` net allocations (cycles are still
  collected, in batches) and the oldest's to ``old`` collections of the middle one, so a
  full collection is rare instead of every few seconds.

Reference cycles the run makes are still collected; memory stays bounded by ``young``
objects of garbage between collections.  Everything is restored on exit, so a run made
inside a larger program (the tests) leaves its collector as it was.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["run_gc_settings"]

YOUNG_THRESHOLD = 50_000
OLD_THRESHOLD = 100


@contextmanager
def run_gc_settings(young: int = YOUNG_THRESHOLD, old: int = OLD_THRESHOLD) -> Iterator[None]:
    """Freeze setup's objects and collect rarely while the block runs (see the module docstring)."""
    previous = gc.get_threshold()
    # someone else's frozen objects stay frozen: only unfreeze what this block froze
    freeze = gc.get_freeze_count() == 0 and gc.isenabled()
    if freeze:
        gc.collect()
        gc.freeze()
    gc.set_threshold(young, previous[1], old)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        if freeze:
            gc.unfreeze()
