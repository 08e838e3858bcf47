"""Partial results of the workers of one run, and their exact merge into one run outcome.

A worker (a process of ``run --workers N``, or one machine's ``run --worker-id I``) writes
what it measured as a *partial*: per-second counters, HdrHistograms in their compressed V2
encoding, per-shard series and hot-key counters.  The merge adds counters second by second
(each worker's seconds shifted by its start relative to the earliest worker), adds the
histograms bucket by bucket (exact: HdrHistogram's ``add``), unions the shards (each belongs
to one worker) and merges the hot-key summaries with their error bounds.  The merged
outcome goes through the same :func:`~benchmarks.result.build_result` as a single run.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.histogram import LatencyHistogram
from benchmarks.outfiles import output_dir, replace_files
from benchmarks.partial_check import (
    MAX_PARTIAL_BYTES,
    START_MARGIN_SECONDS,
    check_merge_size,
    check_partial,
)
from benchmarks.recorder import Recorder
from benchmarks.run import RunOptions, RunOutcome
from benchmarks.shardload import ShardLoadTracker
from benchmarks.workload import Skew, WorkloadSpec
from shardline.errormap import map_aws_errors
from shardline.errors import (
    AccessDeniedError,
    ConfigurationError,
    MissingResourceError,
    ResourceNotFoundError,
)

__all__ = [
    "PARTIAL_FILE_NAME",
    "PARTIAL_KIND",
    "check_partial_bucket",
    "merge_partials",
    "partial_from_outcome",
    "partial_name",
    "read_named_partials",
    "read_partials",
    "write_partial",
]

PARTIAL_FILE_NAME = re.compile(r"partial-([0-9]{4,5})-of-([0-9]{4,5})\.json")
"""What :func:`partial_name` writes, and all that a directory or a bucket prefix is read for:
one pattern for both, so a ``partial-0001-of-0002.json.bak`` beside the parts is ignored in
either place."""
PARTIAL_KIND = "shardline.stream-bench/partial"
PARTIAL_VERSION = 1
_COUNTERS = ("sent", "acked", "acked_bytes", "failed", "consumed", "throttles", "retries")
_PER_WORKER_OPTIONS = frozenset({"worker_id", "new_stream"})
_ABSENT = object()


def partial_name(worker_id: int, workers: int) -> str:
    return f"partial-{worker_id:04d}-of-{workers:04d}.json"


def _series(counts: dict[int, int]) -> dict[str, int]:
    return {str(t): n for t, n in sorted(counts.items()) if n}


def partial_from_outcome(outcome: RunOutcome) -> dict[str, Any]:
    """What one worker measured, as plain JSON values (no payloads, no credentials)."""
    rec = outcome.recorder
    options = outcome.options
    return {
        "kind": PARTIAL_KIND,
        "version": PARTIAL_VERSION,
        "worker_id": options.worker_id,
        "workers": options.workers,
        "options": _options_to_dict(options),
        "stream": outcome.stream,
        "shard_ids": outcome.shard_ids,
        "started_at": outcome.started_at.isoformat(),
        "wall_seconds": outcome.wall_seconds,
        "client_cpu_seconds": outcome.client_cpu_seconds,
        "process_cpu_seconds": outcome.process_cpu_seconds,
        "emulator_in_process": outcome.emulator_in_process,
        "emulator_cpu_seconds": outcome.emulator_cpu_seconds,
        "client_cpu_method": outcome.client_cpu_method,
        "consumer_note": outcome.consumer_note,
        "notes": outcome.notes,
        "gateway": outcome.gateway,
        "interrupted_after": outcome.interrupted_after,
        "environment": outcome.environment,
        "peak_rss_mib": outcome.peak_rss_mib,
        "recorder": {
            **{name: _series(getattr(rec, name)) for name in _COUNTERS},
            "iterator_age": {shard: _series(ages) for shard, ages in rec.iterator_age.items()},
            "accepted_records": {shard: _series(s) for shard, s in rec.accepted_records.items()},
            "accepted_bytes": {shard: _series(s) for shard, s in rec.accepted_bytes.items()},
            "ack_latency": rec.ack_latency.to_dict(),
            "e2e_latency": rec.e2e_latency.to_dict(),
            "e2e_by_reader": {kind: h.to_dict() for kind, h in rec.e2e_by_reader.items()},
            "ack_latency_by_second": {str(t): h for t, h in rec.ack_latency_by_second.to_dicts().items()},
            "load": rec.load.to_dict(),
            "duplicates": rec.duplicates,
            "last_ack_at": None if rec.last_ack_at is None else rec.last_ack_at - rec.start,
        },
    }


def _options_to_dict(options: RunOptions) -> dict[str, Any]:
    document = asdict(options)
    document["workload"]["skew"] = str(options.workload.skew)
    return document


def _options_from_dict(document: dict[str, Any]) -> RunOptions:
    workload = dict(document["workload"])
    workload["skew"] = Skew.parse(workload["skew"])
    return RunOptions(**{**document, "workload": WorkloadSpec(**workload)})


def _checked_options(partial: dict[str, Any], name: str) -> RunOptions:
    """The run's settings as :class:`RunOptions`, or :class:`ConfigurationError` naming the file
    when they are not settings a run can have (the schema checks each alone, this the whole)."""
    try:
        return _options_from_dict(partial["options"])
    except (ConfigurationError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"{name}: options are not a run's settings ({exc})") from None


def merge_partials(partials: list[dict[str, Any]], sources: Sequence[str] | None = None) -> RunOutcome:
    """One run outcome from every worker's partial; refuses a missing, doubled or foreign part.

    ``sources`` names where each partial came from, for the refusals; without it a partial is
    named by the file name the bench writes it under.
    """
    _check_kind(partials)
    names = (
        list(sources)
        if sources is not None
        else [partial_name(p["worker_id"], p["workers"]) for p in partials]
    )
    _check_one_run(partials, names)
    _check_complete(partials)
    _check_shards_owned_once(partials, names)
    starts = [datetime.fromisoformat(p["started_at"]) for p in partials]
    first = min(starts)
    shifts = [round((start - first).total_seconds()) for start in starts]
    _check_start_spread(partials, names, shifts)
    shard_ids = sorted(shard for p in partials for shard in p["shard_ids"])
    options = replace(_checked_options(partials[0], names[0]), worker_id=0)
    # the report's per-shard timelines span the run's planned duration as well as its seconds
    spanned = max(shift + p["wall_seconds"] for p, shift in zip(partials, shifts, strict=True))
    check_merge_size(len(set(shard_ids)), max(spanned, options.workload.duration))
    recorder = Recorder(shard_ids, 0.0)
    for partial, shift, name in zip(partials, shifts, names, strict=True):
        try:
            _absorb(recorder, partial["recorder"], shift)
        except ConfigurationError as exc:  # a histogram that does not decode: name its file
            raise ConfigurationError(f"{name}: {exc}") from None
    recorder.load = ShardLoadTracker.merged(
        [(p["recorder"]["load"], shift) for p, shift in zip(partials, shifts, strict=True)]
    )
    gateway: dict[str, Any] = {}
    for partial in partials:
        gateway.update(partial["gateway"] or {})
    emulator = [p["emulator_cpu_seconds"] for p in partials if p["emulator_cpu_seconds"] is not None]
    methods = sorted({p["client_cpu_method"] for p in partials})
    # partials from before the field existed carry none
    peaks = [p["peak_rss_mib"] for p in partials if p.get("peak_rss_mib") is not None]
    interrupted = [
        shift + p["interrupted_after"]
        for p, shift in zip(partials, shifts, strict=True)
        if p["interrupted_after"] is not None
    ]
    notes = [f"merged from {len(partials)} workers' partial results: client CPU is the sum over the workers"]
    # each note once, in the order first seen: a set (a search of the list per note took
    # minutes for a few hundred small partials of distinct notes)
    notes.extend(dict.fromkeys(note for partial in partials for note in partial["notes"] if note != notes[0]))
    return RunOutcome(
        options=options,
        recorder=recorder,
        stream=partials[0]["stream"],
        shard_ids=shard_ids,
        started_at=first,
        wall_seconds=max(shift + p["wall_seconds"] for p, shift in zip(partials, shifts, strict=True)),
        client_cpu_seconds=sum(p["client_cpu_seconds"] for p in partials),
        process_cpu_seconds=sum(p["process_cpu_seconds"] for p in partials),
        emulator_in_process=False,
        gateway=gateway or None,
        consumer_note=partials[0]["consumer_note"],
        emulator_cpu_seconds=max(emulator) if emulator else None,
        client_cpu_method="; ".join(methods),
        notes=notes,
        interrupted_after=max(interrupted) if interrupted else None,
        environment=partials[0]["environment"],
        peak_rss_mib=max(peaks) if peaks else None,
    )


def _check_kind(partials: list[dict[str, Any]]) -> None:
    if not partials:
        raise ConfigurationError("no partial results to merge")
    for partial in partials:
        if partial.get("kind") != PARTIAL_KIND or partial.get("version") != PARTIAL_VERSION:
            raise ConfigurationError("not a stream-bench partial result (kind or version differs)")


def _run_settings(partial: dict[str, Any]) -> dict[str, Any]:
    """What every worker of one run shares: the stream, the worker count and every option but
    the worker's own (its id, and whether it found the stream new)."""
    options = {k: v for k, v in partial["options"].items() if k not in _PER_WORKER_OPTIONS}
    return {"workers": partial["workers"], "stream": partial["stream"], "options": options}


def _difference(first: Any, other: Any, path: str = "") -> str | None:
    """The first member (``options/workload/rate``) where two JSON values differ, or ``None``."""
    if isinstance(first, dict) and isinstance(other, dict):
        for key in sorted(first.keys() | other.keys()):
            found = _difference(first.get(key, _ABSENT), other.get(key, _ABSENT), f"{path}/{key}")
            if found is not None:
                return found
        return None
    same = type(first) is type(other) and first == other
    return None if same else path.lstrip("/")


def _check_one_run(partials: list[dict[str, Any]], names: list[str]) -> None:
    """Refuse partials that disagree on the run's settings: a partial left in the same place by
    an earlier run with the same stream name would otherwise merge into wrong numbers."""
    settings = _run_settings(partials[0])
    for partial, name in zip(partials[1:], names[1:], strict=True):
        field = _difference(settings, _run_settings(partial))
        if field is not None:
            raise ConfigurationError(
                f"{names[0]} and {name} are not parts of one run: they differ in {field}"
            )


def _check_start_spread(partials: list[dict[str, Any]], names: list[str], shifts: list[int]) -> None:
    """The workers of one run produce at the same time: refuse start times further apart than
    the run's planned duration plus :data:`START_MARGIN_SECONDS`."""
    limit = partials[0]["options"]["workload"]["duration"] + START_MARGIN_SECONDS
    if max(shifts) > limit:
        earliest = names[shifts.index(min(shifts))]
        latest = names[shifts.index(max(shifts))]
        raise ConfigurationError(
            f"{earliest} and {latest}: the partials' start times are {max(shifts)} s apart, more than "
            f"the run's duration plus {START_MARGIN_SECONDS} s ({limit:g} s): not the workers of one run"
        )


def _check_shards_owned_once(partials: list[dict[str, Any]], names: list[str]) -> None:
    """Each shard belongs to one worker: two partials that list one shard would count it twice."""
    owners: dict[str, str] = {}
    for partial, name in zip(partials, names, strict=True):
        for shard in partial["shard_ids"]:
            if shard in owners:
                raise ConfigurationError(f"{owners[shard]} and {name} both list one shard as their own")
            owners[shard] = name


def _check_complete(partials: list[dict[str, Any]]) -> None:
    expected = set(range(partials[0]["workers"]))
    ids = [p["worker_id"] for p in partials]
    if sorted(ids) != sorted(expected):
        missing = sorted(expected - set(ids))
        doubled = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigurationError(f"incomplete set of partials: missing workers {missing}, doubled {doubled}")


def _absorb(recorder: Recorder, part: dict[str, Any], shift: int) -> None:
    for name in _COUNTERS:
        counts = getattr(recorder, name)
        for t, n in part[name].items():
            counts[int(t) + shift] += n
    for shard, ages in part["iterator_age"].items():
        target = recorder.iterator_age[shard]
        for t, ms in ages.items():
            target[int(t) + shift] = max(target.get(int(t) + shift, 0), ms)
    for field in ("accepted_records", "accepted_bytes"):
        table = getattr(recorder, field)
        for shard, series in part[field].items():
            for t, n in series.items():
                table[shard][int(t) + shift] += n
    recorder.ack_latency.merge(LatencyHistogram.from_dict(part["ack_latency"]))
    recorder.e2e_latency.merge(LatencyHistogram.from_dict(part["e2e_latency"]))
    for kind, histogram in part["e2e_by_reader"].items():
        recorder.e2e_by_reader.setdefault(kind, LatencyHistogram()).merge(
            LatencyHistogram.from_dict(histogram)
        )
    for t, histogram in part["ack_latency_by_second"].items():
        recorder.ack_latency_by_second.merge(int(t) + shift, histogram)
    recorder.duplicates += part["duplicates"]
    if part["last_ack_at"] is not None:
        last = part["last_ack_at"] + shift
        recorder.last_ack_at = last if recorder.last_ack_at is None else max(recorder.last_ack_at, last)


# --- where partials live: a directory or s3://bucket/prefix/ ------------------------------------


def _split_s3(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigurationError(f"an S3 location needs a bucket: s3://BUCKET/PREFIX/, got {uri!r}")
    return bucket, prefix.rstrip("/") + "/" if prefix else ""


def check_partial_bucket(where: str, *, s3_client: Any = None) -> None:
    """Refuse an ``s3://bucket/prefix/`` location whose bucket does not exist, before a
    worker's run: the partial is written at its end, and a mistyped bucket lost the whole run.

    Asked with the listing ``merge`` makes (the bench role of ``bench-batch.yaml`` may list
    ``runs/*`` but not the bucket itself, which HeadBucket needs).  S3 answers NoSuchBucket
    to anyone; a role that may put objects but not list them is let through to its put.
    """
    bucket, prefix = _split_s3(where)
    client = s3_client or _s3()
    try:
        with map_aws_errors("s3"):
            client.list_objects_v2(Bucket=bucket, Prefix=prefix + "partial-", MaxKeys=1)
    except ResourceNotFoundError as exc:
        raise MissingResourceError("S3 bucket", bucket, "--out", service="s3") from exc
    except AccessDeniedError:
        return


def write_partial(partial: dict[str, Any], where: str, *, s3_client: Any = None) -> str:
    """Write ``partial`` into a directory or under an ``s3://bucket/prefix/`` location; its address."""
    name = partial_name(partial["worker_id"], partial["workers"])
    body = json.dumps(partial).encode()
    if where.startswith("s3://"):
        bucket, prefix = _split_s3(where)
        client = s3_client or _s3()
        client.put_object(Bucket=bucket, Key=prefix + name, Body=body, ContentType="application/json")
        return f"s3://{bucket}/{prefix}{name}"
    path = output_dir(where) / name
    replace_files({path: body})  # a disk that fills up leaves no cut partial beside the others
    return str(path)


def read_partials(
    where: str, *, s3_client: Any = None, progress: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """Every partial in a directory or under an ``s3://bucket/prefix/`` location, by worker id
    (:func:`read_named_partials` without the names)."""
    return [document for _, document in read_named_partials(where, s3_client=s3_client, progress=progress)]


def read_named_partials(
    where: str, *, s3_client: Any = None, progress: Callable[[str], None] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Every partial in a directory or under an ``s3://bucket/prefix/`` location with the file or
    object it came from, by worker id.

    What another machine wrote is input: each file is read up to
    :data:`~benchmarks.partial_check.MAX_PARTIAL_BYTES` and checked
    (:func:`~benchmarks.partial_check.check_partial`); a bad one is refused, named.
    ``progress`` is told each partial as it is read ("3 of 40 ..."): a merge of many workers'
    partials from S3 fetches tens of megabytes before it prints anything else.
    """
    documents: list[tuple[str, dict[str, Any]]] = []
    if where.startswith("s3://"):
        bucket, prefix = _split_s3(where)
        client = s3_client or _s3()
        paginator = client.get_paginator("list_objects_v2")
        try:
            with map_aws_errors("s3"):
                listed = [
                    item
                    for page in paginator.paginate(Bucket=bucket, Prefix=prefix + "partial-")
                    for item in page.get("Contents", [])
                    if PARTIAL_FILE_NAME.fullmatch(item["Key"][len(prefix) :])
                ]
        except ResourceNotFoundError as exc:  # a listing misses only its bucket
            raise MissingResourceError("S3 bucket", bucket, "the SOURCE argument", service="s3") from exc
        _check_one_run_named(
            [(f"s3://{bucket}/{item['Key']}", item["Key"][len(prefix) :]) for item in listed]
        )
        for number, item in enumerate(listed, 1):
            source = f"s3://{bucket}/{item['Key']}"
            size = int(item.get("Size", 0))
            _check_size(source, size)
            if progress is not None:
                progress(f"{number} of {len(listed)}: {source} ({size:,} bytes)")
            try:
                with map_aws_errors("s3"):
                    response = client.get_object(Bucket=bucket, Key=item["Key"])
                    body = response["Body"].read(MAX_PARTIAL_BYTES + 1)
            except ResourceNotFoundError:
                # S3's own answer names neither the object nor that it was listed a moment ago
                raise ConfigurationError(
                    f"{source}: deleted after the prefix was listed (a worker or a clean-up changed "
                    "the prefix during the merge): merge again once the prefix holds the run's partials"
                ) from None
            _check_size(source, len(body))
            documents.append((source, check_partial(_parse(body, source), source)))
    else:
        directory = Path(where)
        if not directory.is_dir():
            raise ConfigurationError(f"no such directory of partial results: {where}")
        paths = sorted(path for path in directory.iterdir() if PARTIAL_FILE_NAME.fullmatch(path.name))
        _check_one_run_named([(str(path), path.name) for path in paths])
        for number, path in enumerate(paths, 1):
            body = _read_regular_file(path, number, len(paths), progress)
            documents.append((str(path), check_partial(_parse(body, str(path)), str(path))))
    if not documents:
        raise ConfigurationError(f"no partial results (partial-IIII-of-NNNN.json) in {where}")
    return sorted(documents, key=lambda named: int(named[1]["worker_id"]))


def _check_one_run_named(named: list[tuple[str, str]]) -> None:
    """Refuse, before anything is read, partials (``(source, file name)``) named for different
    worker counts.

    The bench names each partial for its run's worker count, so a directory or prefix holding
    names for two counts (reused by a run of another size) holds two runs.  Every partial of
    both was fetched and held in memory before the merge refused them for their contents.
    """
    first: dict[int, str] = {}
    for source, name in named:
        parts = PARTIAL_FILE_NAME.fullmatch(name)
        assert parts is not None  # only such names are listed
        first.setdefault(int(parts[2]), source)
    if len(first) > 1:
        (count, one), (other_count, other) = sorted(first.items())[:2]
        raise ConfigurationError(
            f"{one} and {other} are not parts of one run: named for {count} and {other_count} workers"
        )


def _read_regular_file(path: Path, number: int, count: int, progress: Callable[[str], None] | None) -> bytes:
    """The bytes of the regular file at ``path`` (a symbolic link to one will do), read no
    further than :data:`~benchmarks.partial_check.MAX_PARTIAL_BYTES` + 1.

    The file is opened without blocking and checked by its open descriptor: a FIFO named like a
    partial made the merge wait for a writer forever, and a link to ``/dev/zero`` read until
    memory ran out.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        # Checked on the bare descriptor: Python's file object refuses a directory itself, with
        # an OSError the command reported as a connection failure to retry.
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise ConfigurationError(f"{path}: not a regular file")
        _check_size(str(path), status.st_size)
        if progress is not None:
            progress(f"{number} of {count}: {path} ({status.st_size:,} bytes)")
        with open(descriptor, "rb", closefd=False) as file:
            body = file.read(MAX_PARTIAL_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot be read ({exc.strerror})") from None
    finally:
        os.close(descriptor)
    _check_size(str(path), len(body))
    return body


def _check_size(source: str, size: int) -> None:
    if size > MAX_PARTIAL_BYTES:
        raise ConfigurationError(f"{source}: larger than {MAX_PARTIAL_BYTES:,} bytes, not a partial result")


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""Where a ``\\uD800``-``\\uDFFF`` escape may be (or an escaped backslash before such text)."""


def _parse(body: bytes, source: str) -> Any:
    """The JSON document in ``body``, or :class:`ConfigurationError` naming ``source``.

    Python's ``json`` accepts ``NaN`` and ``Infinity`` (and reads ``1e999`` as infinity), which
    JSON does not: every bound of the schema is false for NaN, so a NaN went on to a traceback,
    invalid JSON in result.json or a run marked interrupted.  A number that is not finite is
    refused here.  Nesting deeper than the interpreter's recursion limit is refused too.

    A partial is UTF-8 text, as the bench writes it, and every string in it is text: given
    bytes, ``json`` lets encoded surrogates through (it decodes with ``surrogatepass``), and
    any ``"\\ud800"`` escape not paired with its other half becomes a lone surrogate, which
    passed every check and failed writing report.html with a ``UnicodeEncodeError``.
    """
    try:
        text = body.decode("utf-8")
        document = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except _NotFinite:
        raise ConfigurationError(f"{source}: not JSON (a number that is not finite)") from None
    except RecursionError:
        raise ConfigurationError(f"{source}: not JSON (nested too deeply)") from None
    except (UnicodeDecodeError, ValueError):  # json.JSONDecodeError is a ValueError
        raise ConfigurationError(f"{source}: not JSON") from None
    if _SURROGATE_ESCAPE.search(text):  # rare: only then is the whole document encoded again
        try:
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigurationError(f"{source}: not JSON (a string that is not Unicode text)") from None
    return document


class _NotFinite(Exception):
    """NaN, Infinity or -Infinity in a document (not JSON, though Python's json reads them)."""


def _no_constant(name: str) -> Any:
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def _s3() -> Any:
    """An S3 client from Shardline's factory (so a plain ``http://`` endpoint beyond the
    machine is refused, as for every other client), keeping botocore's own retries: nothing
    else retries a merge's reads.  S3 needs no region of its own; ``us-east-1`` when none is set."""
    import boto3
    from botocore.config import Config

    from shardline.clients import boto3_client

    session = boto3.Session()
    region = session.region_name or os.environ.get("AWS_REGION") or "us-east-1"
    retries = Config(retries={"mode": "standard", "total_max_attempts": 3})
    return boto3_client("s3", session=session, region_name=region, config=retries)
