"""Time a peer client spends in CPython's cyclic garbage collector during its timed span.

A client that hands the caller one object per record (a ``send()`` future) makes the
collector walk every object the caller keeps alive, again at each full collection (CPython
runs one whenever the objects that survived into the oldest generation grew by a quarter),
while a client that only counts acknowledgements allocates nothing the collector tracks.
That cost is billed to the client's CPU like any other, but a profile shows it only as
time "inside" whatever allocation happened to trigger the collection.  Reporting it per
client says what bound the client.

``gc.callbacks`` is the interpreter's own hook: it runs at the start and the end of every
collection, so the clock adds two calls per collection, nothing per record.
"""

from __future__ import annotations

import gc
import time
from typing import Any

__all__ = ["GcClock"]


class GcClock:
    """Seconds spent in collections since :meth:`start`: in all, and count and seconds by
    generation (a full collection is generation 2)."""

    __slots__ = ("_began", "_running", "collections", "seconds", "seconds_by_generation")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self.seconds_by_generation = [0.0, 0.0, 0.0]
        self._began = 0.0
        self._running = False

    def start(self) -> None:
        """Start counting (again from zero); idempotent while running."""
        if self._running:
            return
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self.seconds_by_generation = [0.0, 0.0, 0.0]
        self._running = True
        gc.callbacks.append(self._on_collection)

    def stop(self) -> None:
        """Stop counting; the figures stay readable."""
        if self._running:
            self._running = False
            gc.callbacks.remove(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            took = time.perf_counter() - self._began
            self.seconds += took
            self.collections[info["generation"]] += 1
            self.seconds_by_generation[info["generation"]] += took

    def report(self, count: int, unit: str) -> dict[str, Any]:
        """``gc_us_per_<unit>``, the part of it in full collections, and the collections by
        generation, for a result row."""
        per_unit = 1e6 / max(count, 1)
        return {
            f"gc_us_per_{unit}": round(self.seconds * per_unit, 2),
            f"full_gc_us_per_{unit}": round(self.seconds_by_generation[2] * per_unit, 2),
            "gc_collections": list(self.collections),
        }
