"""Latency histograms: HdrHistogram in microseconds, reported as the bench's quantiles.

HdrHistogram keeps a fixed relative error (3 significant digits here) at any magnitude with
constant memory, so a 20-second run and a 2-hour run cost the same to record.

Recording one value through the ``hdrh`` package costs a few microseconds of Python, more
than the bench may spend per record, so values are recorded in bulk: a batch of latencies
is rounded down to the histogram's own resolution (what ``record_value`` does to each value
anyway), counted with ``collections.Counter`` and recorded once per distinct bucket.  The
quantiles are the same as recording each value on its own.  The mean comes from a running
sum kept here: ``hdrh``'s own mean walks every bucket in Python (hundreds of milliseconds per
call), which once made the live progress line the costliest thing in the bench.
"""

from __future__ import annotations

import base64
import binascii
import re
import weakref
import zlib
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from itertools import accumulate
from typing import Any

from hdrh.codec import (  # type: ignore[import-untyped]
    V2_COMPRESSION_COOKIE_BASE,
    V2_ENCODING_COOKIE_BASE,
    ExternalHeader,
    HdrCookieException,
    HdrLengthException,
    PayloadHeader,
    ext_header_size,
    get_cookie_base,
    payload_header_size,
)
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from shardline.errors import ConfigurationError

__all__ = ["QUANTILES", "LatencyBySecond", "LatencyHistogram"]

QUANTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))
_HIGHEST_US = 3_600 * 1_000_000  # one hour; longer latencies are clamped
_DIGITS = 3
_EXACT_BITS = 11  # 3 significant digits: 2048 sub-buckets, values below 2**11 us are exact
_FLUSH_AT = 65_536
_MAX_ENCODED_CHARS = 1024 * 1024
_MAX_PAYLOAD_BYTES = 1024 * 1024
"""The largest V2 payload of a histogram of this range: ~45,000 counters of at most 9 bytes."""
_LONG_COUNTER = re.compile(rb"[\x80-\xff]{7}")
"""Where a V2 counter of 2**48 or more is encoded (see :func:`_checked_encoding`)."""


def _acyclic(histogram: Any) -> Any:
    """``histogram`` with its encoder's back-reference made weak.

    An ``hdrh`` histogram and its encoder refer to each other, so a dropped histogram (188 KB
    of counters) waited for the cyclic collector, which the bench runs rarely
    (:mod:`benchmarks.gcpolicy`): packing a run's seconds away left hundreds of them behind.
    Without the cycle, reference counting frees each as soon as it is dropped.
    """
    histogram.encoder.histogram = weakref.proxy(histogram)
    return histogram


def _checked_encoding(text: object) -> bytes:
    """``text`` as the V2 encoding of a histogram of this module's range, or
    :class:`ConfigurationError`: base64 of the right header, a payload that inflates to at
    most :data:`_MAX_PAYLOAD_BYTES`, this module's trackable range and precision, and
    counters below 2**48.

    ``hdrh`` sums the decoded counters into its total in 64 bits, which wraps: three counters
    near 2**62 decoded to a histogram of a negative count.  A counter is a zig-zag LEB128
    varint (7 bits a byte, the high bit set on every byte but the last); seven bytes in a row
    with the high bit set begin one of 8 or 9 bytes, a counter of 2**48 or more.  Below that,
    the 23,552 counters sum below 2**63, so the total is exact, and 10,000 workers' counters
    add up below 2**64 in the unsigned counters of a merge; a run counts far fewer values (a
    week at the highest rate the bench takes is under 2**50 records in all).
    """
    if type(text) is not str or len(text) > _MAX_ENCODED_CHARS:
        raise ConfigurationError("a latency histogram is not an encoded histogram of the bench's size")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError("a latency histogram is not base64") from None
    if len(raw) < ext_header_size:
        raise ConfigurationError("a latency histogram is truncated")
    header = ExternalHeader.from_buffer_copy(raw)
    if (
        get_cookie_base(header.cookie) != V2_COMPRESSION_COOKIE_BASE
        or header.length != len(raw) - ext_header_size
    ):
        raise ConfigurationError("a latency histogram is not a compressed V2 histogram")
    inflater = zlib.decompressobj()
    try:
        payload = inflater.decompress(raw[ext_header_size:], _MAX_PAYLOAD_BYTES)
    except zlib.error:
        raise ConfigurationError("a latency histogram's payload does not inflate") from None
    if inflater.unconsumed_tail:
        raise ConfigurationError("a latency histogram's payload is larger than the bench's histograms")
    if not inflater.eof or len(payload) < payload_header_size:
        raise ConfigurationError("a latency histogram's payload is truncated")
    settings = PayloadHeader.from_buffer_copy(payload)
    if (
        get_cookie_base(settings.cookie) != V2_ENCODING_COOKIE_BASE
        or settings.payload_len != len(payload) - payload_header_size
        or settings.normalizing_index_offset != 0
        or (settings.lowest_trackable_value, settings.highest_trackable_value) != (1, _HIGHEST_US)
        or settings.significant_figures != _DIGITS
    ):
        raise ConfigurationError("a latency histogram has another range or precision than the bench's")
    if _LONG_COUNTER.search(payload, payload_header_size):
        raise ConfigurationError(
            "a latency histogram's counters do not decode (a counter or a run of zeros of 2**48 or more)"
        )
    return text.encode("ascii")


class LatencyHistogram:
    """Records latencies in seconds; reports milliseconds."""

    __slots__ = ("_hist", "_pending", "_sum_us")

    def __init__(self) -> None:
        self._hist = _acyclic(HdrHistogram(1, _HIGHEST_US, _DIGITS))
        self._pending: list[int] = []
        self._sum_us = 0

    def record(self, seconds: float) -> None:
        """One latency, buffered and recorded in bulk with the rest (see the module docstring).

        A per-record path (the per-record generator, the Kafka target's acknowledgements)
        calls this for every record: an ``hdrh`` write each cost 1-3 us there, a list append
        costs tens of nanoseconds.
        """
        pending = self._pending
        pending.append(min(max(int(seconds * 1_000_000), 1), _HIGHEST_US))
        if len(pending) >= _FLUSH_AT:
            self._flush()

    def record_n(self, seconds: float, count: int) -> None:
        """``count`` records with the same latency (a batch acknowledged at once)."""
        if count > 0:
            micros = min(max(int(seconds * 1_000_000), 1), _HIGHEST_US)
            self._hist.record_value(micros, count)
            self._sum_us += micros * count

    def record_micros(self, micros: Iterable[int]) -> None:
        """Many latencies in whole microseconds, recorded in bulk (see the module docstring)."""
        pending = self._pending
        pending.extend(micros)
        if len(pending) >= _FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._sum_us += sum(pending)
        # Count the raw values first (a C loop), then round each distinct one: records read
        # together from one tick share a latency, so this is 5x cheaper than rounding every
        # value (and still a little cheaper when all differ).
        bits = _EXACT_BITS
        rounded: Counter[int] = Counter()
        for value, count in Counter(pending).items():
            shift = value.bit_length() - bits
            if shift > 0:
                value = (value >> shift) << shift  # the bucket's lowest value
            rounded[value] += count
        record = self._hist.record_value
        for value, count in rounded.items():
            record(min(max(value, 1), _HIGHEST_US), count)

    def merge(self, other: LatencyHistogram) -> None:
        other._flush()
        self._flush()
        self._hist.add(other._hist)
        self._sum_us += other._sum_us

    @property
    def count(self) -> int:
        self._flush()
        return int(self._hist.get_total_count())

    def to_dict(self) -> dict[str, Any]:
        """HdrHistogram's compressed V2 encoding (base64) and the exact sum, for partial results."""
        self._flush()
        encoded: bytes = self._hist.encode()
        return {"hdr": encoded.decode("ascii"), "sum_us": self._sum_us}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> LatencyHistogram:
        """A histogram from :meth:`to_dict`; :class:`ConfigurationError` for anything else.

        Partial results are read from other machines' files, and ``hdrh`` decodes whatever
        it is given: it inflates the payload without a bound and sizes the histogram from the
        payload's own header.  So the encoding is checked first (see :func:`_checked_encoding`).
        """
        histogram = cls()
        encoded = _checked_encoding(document["hdr"])
        try:  # the counters: pyhdrh bounds them and refuses negative ones (its array is unsigned)
            decoded = _acyclic(HdrHistogram.decode(encoded))
        except (IndexError, OverflowError, ValueError, HdrCookieException, HdrLengthException):
            raise ConfigurationError("a latency histogram's counters do not decode") from None
        histogram._hist.add(decoded)
        histogram._sum_us = int(document["sum_us"])
        return histogram

    def quantiles_ms(self, *names: str) -> dict[str, float]:
        """The named quantiles (milliseconds), all from one cumulative pass over the counts.

        Same values as ``hdrh``'s ``get_value_at_percentile``, which walks the counts in
        Python for every quantile (tens of milliseconds each on this histogram's range).
        """
        total = self.count
        if total == 0:
            return dict.fromkeys(names, 0.0)
        wanted = dict(QUANTILES)
        hist = self._hist
        cumulative = list(accumulate(hist.counts[: hist.encoder.payload.counts_len]))
        result: dict[str, float] = {}
        for name in names:
            target = max(int(min(wanted[name], 100.0) * total / 100 + 0.5), 1)
            index = bisect_left(cumulative, target)
            value = hist.get_highest_equivalent_value(hist.get_value_from_index(index))
            result[name] = value / 1000.0
        return result

    def summary_ms(self) -> dict[str, float]:
        """``{"count", "p50", "p90", "p99", "p99_9", "max", "mean"}``; times in milliseconds."""
        if self.count == 0:
            return {"count": 0, **{name: 0.0 for name, _ in QUANTILES}, "max": 0.0, "mean": 0.0}
        result: dict[str, float] = {"count": self.count}
        result.update(self.quantiles_ms(*(name for name, _ in QUANTILES)))
        result["max"] = self._hist.get_max_value() / 1000.0
        result["mean"] = round(self._sum_us / self.count / 1000.0, 3)
        return result


class LatencyBySecond:
    """One latency histogram per second of a run, in memory that does not grow per record.

    A histogram over this range holds 23,552 counters (188 KB) whatever it counts, and the
    latencies recorded in bulk wait in a list until flushed.  Kept live for every second, that
    was about 340 KB per second of a 1,000 records/s run: over a gigabyte an hour.  Only the
    ``live`` most recently used seconds stay live here; the rest are kept in HdrHistogram's
    compressed encoding (:meth:`LatencyHistogram.to_dict`: a few hundred bytes to a few KB a
    second, 0.1-0.3 ms to encode), and decoded again when a late acknowledgement lands in one,
    so every value is still counted exactly once.
    """

    __slots__ = ("_live", "_live_max", "_packed")

    def __init__(self, live: int = 16) -> None:
        if live < 1:
            raise ValueError("live must be at least 1")
        self._live_max = live
        self._live: dict[int, LatencyHistogram] = {}  # least recently used first
        self._packed: dict[int, dict[str, Any]] = {}

    def at(self, second: int) -> LatencyHistogram:
        """The histogram to record ``second``'s latencies into (live from now on)."""
        live = self._live
        histogram = live.pop(second, None)
        if histogram is None:
            packed = self._packed.pop(second, None)
            histogram = LatencyHistogram() if packed is None else LatencyHistogram.from_dict(packed)
            if len(live) >= self._live_max:
                oldest = next(iter(live))
                self._packed[oldest] = live.pop(oldest).to_dict()
        live[second] = histogram
        return histogram

    def get(self, second: int) -> LatencyHistogram | None:
        """``second``'s histogram to read (decoded if packed, not made live), or None."""
        histogram = self._live.get(second)
        if histogram is not None:
            return histogram
        packed = self._packed.get(second)
        return None if packed is None else LatencyHistogram.from_dict(packed)

    def merge(self, second: int, document: dict[str, Any]) -> None:
        """Add a partial result's histogram (:meth:`LatencyHistogram.to_dict`) to ``second``."""
        self.at(second).merge(LatencyHistogram.from_dict(document))

    def to_dicts(self) -> dict[int, dict[str, Any]]:
        """Every second's histogram in the partial-result encoding, by second."""
        encoded = {**self._packed, **{t: h.to_dict() for t, h in self._live.items()}}
        return dict(sorted(encoded.items()))

    def __contains__(self, second: object) -> bool:
        return second in self._live or second in self._packed

    def __len__(self) -> int:
        return len(self._live) + len(self._packed)
