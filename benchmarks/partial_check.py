"""Whether a document is a stream-bench partial result that is safe to merge.

``stream-bench merge`` reads partials from a directory or a bucket that other machines wrote
to, so a partial is input, not state: a wrong or crafted one must be refused with the reason,
before the merge does work in proportion to what it claims.  Without these checks, one file
claiming ``"workers": 1000000000`` or a start time a century away from the others' made the
merge hang (a set of a billion worker ids; a timeline of billions of seconds), and a missing
or mistyped member surfaced as a ``KeyError`` or ``TypeError`` traceback.

The structure, types and per-value bounds are the schema's (``benchmarks/partial.schema.json``,
validated with ``jsonschema``); this module adds what a schema cannot say: every second lies
within the worker's run, keys are counted once, and the start time is a real instant.  The
histograms' own encoding is checked where it is decoded
(:meth:`benchmarks.histogram.LatencyHistogram.from_dict`), and the whole merge's size by
:func:`check_merge_size`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from benchmarks.result import load_schema
from shardline.errors import ConfigurationError
from shardline.printable import printable

__all__ = [
    "MAX_PARTIAL_BYTES",
    "MAX_TIMELINE_CELLS",
    "START_MARGIN_SECONDS",
    "check_merge_size",
    "check_partial",
]

MAX_PARTIAL_BYTES = 256 * 1024 * 1024
"""The largest partial file read (a 64-shard worker with 10,000 counted keys a shard writes
tens of MB)."""

START_MARGIN_SECONDS = 300
"""How much further apart than the run's planned duration the workers of one run may have
started: machines started by hand, or an AWS Batch array's children placed in waves, start
seconds to minutes apart.  Workers further apart did not produce at the same time, and the
start-time check is what refuses a partial an earlier run left behind when no run id tells."""

MAX_TIMELINE_CELLS = 10_000_000
"""Shards times seconds of the merged run: the per-shard timelines the result holds (64 shards
for 43 hours, 1,000 shards for 2.7 hours)."""

_LATE_SECONDS = 60
"""How far past a worker's measured wall time a second may lie (its clock is read last)."""


def _is_integer(checker: object, instance: object) -> bool:
    """An integer is an ``int`` (not a ``bool``) for partials.

    JSON Schema counts ``2.0`` as an integer, so ``"workers": 2.0`` passed and failed the
    merge with a ``TypeError`` traceback (``range(2.0)``), and a count of ``5.0`` went on into
    the result as a float.  The bench writes every integer without a fraction.
    """
    return type(instance) is int


@functools.cache
def _validator() -> Any:
    """The partial schema's validator, made once: a merge checks one partial per worker, and
    ``jsonschema.validate`` re-reads nothing but checks the schema itself on every call."""
    schema = load_schema("partial.schema.json")
    base = jsonschema.validators.validator_for(schema)
    base.check_schema(schema)
    validator_class = jsonschema.validators.extend(
        base, type_checker=base.TYPE_CHECKER.redefine("integer", _is_integer)
    )
    return validator_class(schema)


def check_partial(document: object, source: str) -> dict[str, Any]:
    """``document`` as a partial result, or :class:`ConfigurationError` naming ``source`` and
    what is wrong with it."""
    # the error jsonschema.validate would raise: the best match among them all
    error = jsonschema.exceptions.best_match(_validator().iter_errors(document))
    if error is not None:
        # The path and the schema's own words; never the offending value, which is the
        # file's (of any length, and possibly not meant for a terminal).  The path's member
        # names are the file's too (a hot key, a shard id): printed as they were, an ESC among
        # them cleared the screen or wrote the clipboard of whoever ran the merge.
        where = printable("/".join(str(part) for part in error.absolute_path))[:200] or "the document"
        detail = error.message[:200] if error.validator == "required" else f"{error.validator} check failed"
        raise ConfigurationError(f"{source}: not a stream-bench partial result (at {where}: {detail})")
    assert isinstance(document, dict)
    if document["worker_id"] >= document["workers"]:
        raise ConfigurationError(
            f"{source}: worker id {document['worker_id']} of {document['workers']} workers"
        )
    # A worker writes both from its options.  The merge counts the parts by the outer pair and
    # reports the run's settings from the options: one worker's partial relabelled "0 of 1"
    # merged as a whole run of 2 workers, half its shards missing without a word.
    options = document["options"]
    if (options["worker_id"], options["workers"]) != (document["worker_id"], document["workers"]):
        raise ConfigurationError(
            f"{source}: worker id {document['worker_id']} of {document['workers']} workers, but its "
            f"options say worker {options['worker_id']} of {options['workers']}"
        )
    try:
        started = datetime.fromisoformat(document["started_at"])
    except ValueError:
        raise ConfigurationError(f"{source}: started_at is not an ISO 8601 time") from None
    if started.utcoffset() is None:
        raise ConfigurationError(f"{source}: started_at has no UTC offset")
    _check_own_shards(document, source)
    _check_seconds(document, source)
    _check_key_counters(document["recorder"]["load"].values(), source)
    return document


def _check_own_shards(document: Mapping[str, Any], source: str) -> None:
    """Every per-shard series belongs to one of the worker's own shards, as a worker writes it.

    :func:`check_merge_size` bounds the merge by the shards the partials own; a series for a
    shard named nowhere else would get a timeline of its own beyond that bound (20,000 of them
    in one small file made the merge run for minutes).

    The gateway's counts, too: the merge unions them by shard, so counts for a shard another
    worker owns replaced that worker's own without a word (and one for a shard of no worker
    moved the verdict's busiest shard).
    """
    owned = set(document["shard_ids"])
    recorder = document["recorder"]
    tables = {
        f"recorder/{name}": recorder[name]
        for name in ("iterator_age", "accepted_records", "accepted_bytes", "load")
    }
    tables["gateway"] = document["gateway"] or {}
    for where, table in tables.items():
        if not owned.issuperset(table):
            raise ConfigurationError(f"{source}: {where} names a shard that is not in its shard_ids")


def _check_seconds(document: Mapping[str, Any], source: str) -> None:
    """Every second and time of the recorder lies within the worker's run."""
    last = math.ceil(document["wall_seconds"]) + _LATE_SECONDS
    recorder = document["recorder"]
    series: list[Mapping[str, Any]] = [recorder[name] for name in ("sent", "acked", "acked_bytes")]
    series += [recorder[name] for name in ("failed", "consumed", "throttles", "retries")]
    for name in ("iterator_age", "accepted_records", "accepted_bytes"):
        series.extend(recorder[name].values())
    for shard in recorder["load"].values():
        series += [shard["records"], shard["bytes"]]
    series.append(recorder["ack_latency_by_second"])
    for seconds in series:
        if seconds and max(map(int, seconds)) > last:
            raise ConfigurationError(
                f"{source}: a per-second count lies past the worker's run ({document['wall_seconds']} s)"
            )
    for name, value in (
        ("last_ack_at", recorder["last_ack_at"]),
        ("interrupted_after", document["interrupted_after"]),
    ):
        if value is not None and value > last:
            raise ConfigurationError(f"{source}: {name} lies past the worker's run")


def _check_key_counters(shards: Iterable[Mapping[str, Any]], source: str) -> None:
    """A summary holds at most its capacity of counters, each key once; exact counts stay
    within their limit."""
    for shard in shards:
        keys = shard["keys"]
        summary = keys.get("summary")
        if summary is not None:
            counters = summary["counters"]
            if len(counters) > summary["capacity"] or len({c[0] for c in counters}) != len(counters):
                raise ConfigurationError(
                    f"{source}: a hot-key summary holds more counters than its capacity, or a key twice"
                )
        elif len(keys["exact_counts"]) > max(keys["exact_limit"], 1):
            raise ConfigurationError(f"{source}: more exact key counts than their limit")


def check_merge_size(shards: int, seconds: float) -> None:
    """Refuse a merge whose per-shard timelines would exceed :data:`MAX_TIMELINE_CELLS`."""
    cells = shards * max(math.ceil(seconds), 1)
    if cells > MAX_TIMELINE_CELLS:
        raise ConfigurationError(
            f"the merged run spans {shards} shards over {seconds:.0f} s ({cells:,} per-shard seconds), "
            f"more than the {MAX_TIMELINE_CELLS:,} a merge builds"
        )
