"""Drain-rate admission: how many bytes a producer may hold so that they leave within a deadline.

A producer's buffer caps bound memory, not time: a 64 MiB buffer in front of an endpoint that
takes 1 MB/s holds a minute of work, and every record whose turn comes after its time to live
fails.  :class:`DrainRate` measures how fast the buffer actually empties and
:meth:`DrainRate.limit` turns that into a byte limit: what the measured rate delivers within
a fraction of the record TTL.  A record is accepted only while the bytes ahead of it, plus its
own, stay within that limit; otherwise ``send()`` waits, as it does at the buffer caps.

What is measured: user bytes acknowledged per second of *backlogged* time, i.e. time during
which the producer had more to send than it could (its buffer held at least one request's
worth, or a ``send()`` was kept waiting).  Time when the producer simply had little to send
(a trickle load: the buffer nearly empty between sends) is not counted, so a quiet producer
does not mistake its own idleness for a slow endpoint.  Everything that slows delivery counts:
endpoint latency, throttled entries and their back-off, per-shard pacing, one request at a
time in ``ordered`` mode.

Why this converges to the right limit (Little's law): while backlogged, the bytes buffered
``B`` equal the throughput ``X`` times the time a byte spends buffered ``T``.  The estimate
is ``X = B / T``, so the limit ``X * window`` equals ``B * window / T``: above what is held
while bytes leave within ``window`` (the limit is then no constraint and grows), below it
when they take longer (admission tightens until ``T`` is back at ``window``).  An estimate
that is low because the endpoint was never pushed (a fast endpoint, a brief backlog) is
harmless for the same reason: it still puts the limit at ``window / T`` times what is held.

The smoothing is an exponentially weighted ratio of bytes to backlogged seconds, with a time
constant of ``horizon`` backlogged seconds: recent behaviour dominates (the limit follows an
endpoint that slows down or recovers within about one horizon), yet one odd request (a single
throttled call) moves it only by its share of the horizon.
"""

from __future__ import annotations

import math

__all__ = ["DrainRate"]


class DrainRate:
    """Bytes delivered per second of backlogged time, smoothed over ``horizon`` seconds of it.

    ``window`` is how long buffered bytes may take to be delivered (the record TTL times the
    configured fraction); ``floor`` and ``ceiling`` bound :meth:`limit`: the floor is the least
    the producer always accepts (one full request: the sender's unit of work, below which a
    slow endpoint could not even be fed one request at a time), the ceiling the buffer cap.
    Times come from the caller's clock; nothing here reads one.
    """

    __slots__ = ("_bytes", "_seconds", "ceiling", "floor", "horizon", "window")

    def __init__(self, *, window: float, horizon: float, floor: int, ceiling: int) -> None:
        if window <= 0 or horizon <= 0:
            raise ValueError("window and horizon must be positive")
        self.window = window
        self.horizon = horizon
        self.floor = min(floor, ceiling)
        self.ceiling = ceiling
        self._bytes = 0.0
        self._seconds = 0.0

    def add(self, nbytes: int, seconds: float) -> None:
        """Count ``nbytes`` delivered over ``seconds`` of backlogged time (older counts fade)."""
        if seconds > 0:
            keep = math.exp(-seconds / self.horizon)
            self._bytes *= keep
            self._seconds *= keep
            self._seconds += seconds
        self._bytes += nbytes

    @property
    def rate(self) -> float | None:
        """Bytes per backlogged second, or ``None`` before any backlogged time was measured."""
        if self._seconds <= 0:
            return None
        return self._bytes / self._seconds

    def limit(self) -> int:
        """The bytes that may be buffered: ``rate * window`` within [floor, ceiling].

        The floor before anything was measured: a producer fed far more than its endpoint
        takes usually learns so at once, in a burst right after it starts, and what it
        accepts before the first request answers can only be delivered at a rate it does
        not know yet.  Holding one request's worth until then costs a burst one round trip
        once; a producer that never holds more than that is never limited.
        """
        rate = self.rate
        if rate is None:
            return self.floor
        wanted = rate * self.window
        if wanted >= self.ceiling:
            return self.ceiling
        return max(self.floor, int(wanted))
