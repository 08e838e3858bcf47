"""The versioned JSON result of a run, its schema, and the verdict on what bound the run.

The schema (``benchmarks/result.schema.json``) is the contract for ``compare`` and for anyone
charting results over time; bump ``SCHEMA_VERSION`` on any incompatible change.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from benchmarks.recorder import Recorder
from benchmarks.run import RunOutcome
from benchmarks.shardload import analyse_hot_shards
from shardline.limits import SHARD_WRITE_BYTES_PER_SEC, SHARD_WRITE_RECORDS_PER_SEC

__all__ = ["SCHEMA_ID", "SCHEMA_VERSION", "bound_by", "build_result", "load_schema", "validate_result"]

SCHEMA_ID = "shardline.stream-bench/result"
SCHEMA_VERSION = 1
_CPU_BUSY = 0.85
_SHARD_BUSY = 0.8


def load_schema(name: str = "result.schema.json") -> dict[str, Any]:
    """A JSON schema shipped in this package (the result's by default)."""
    text = resources.files("benchmarks").joinpath(name).read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_result(result: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``result`` does not match the schema."""
    jsonschema.validate(result, load_schema())


def bound_by(
    *,
    rate: float | None,
    achieved_rate: float,
    throttles: int,
    records: int,
    seconds_over_limit: int,
    client_cpu_share: float,
    emulator_cpu_share: float | None,
    emulator_shares_process: bool = True,
    busiest_shard_utilisation: float | None = None,
    acknowledged: int | None = None,
) -> dict[str, Any]:
    """Which resource limited the run, with the signals that decided it.

    Order matters: a run that met its rate cap was bound by the setting whatever else was busy;
    throttling or seconds over a shard limit point at shard limits; a busy client at the
    client; a busy emulator (embedded target) at the emulator.  An emulator in the bench
    process shares one interpreter lock with the client, so there their CPU shares add up;
    in a child process the emulator is busy on its own.

    Seconds over a shard limit are counted on the offered load, so they are evidence only
    for a paced run (``rate`` set): an unbounded run offers more than any shard takes by
    construction.  ``busiest_shard_utilisation`` (what the local gateway accepted on the
    busiest shard, as a share of its write limit) is evidence either way.
    """
    signals: dict[str, Any] = {
        "rate_setting": rate,
        "achieved_records_per_sec": achieved_rate,
        "throttles": throttles,
        "throttled_share": throttles / max(records, 1),
        "seconds_over_shard_limit": seconds_over_limit,
        "client_cpu_share_of_wall": client_cpu_share,
        "emulator_cpu_share_of_wall": emulator_cpu_share,
        "emulator_shares_process": emulator_shares_process,
        "busiest_shard_utilisation": busiest_shard_utilisation,
        "cpu_cores": os.cpu_count() or 1,
        "machine_load_1min": _load_average(),
    }
    throttled_share = throttles / max(records, 1)
    if acknowledged == 0:
        # Nothing measured the target's pace: "no resource was saturated" was the verdict of a
        # run whose every record was throttled or failed.
        cause = (
            f"{throttles} throttled attempts and no success"
            if throttles
            else "every record failed or the target never answered"
        )
        verdict, why = (
            "nothing acknowledged",
            f"no record was acknowledged ({cause}): no figure measures the target",
        )
    elif rate and achieved_rate >= 0.95 * rate and throttled_share < 0.01:
        verdict, why = "rate setting", f"the run reached its --rate cap of {rate:g} records/s"
    elif (
        throttled_share >= 0.01
        or (rate is not None and seconds_over_limit > 0)
        or (busiest_shard_utilisation is not None and busiest_shard_utilisation >= _SHARD_BUSY)
    ):
        busiest = (
            f"; the busiest shard took {busiest_shard_utilisation:.0%} of its write limit"
            if busiest_shard_utilisation is not None
            else ""
        )
        verdict, why = (
            "shard limits",
            f"{throttles} throttles and {seconds_over_limit} shard-seconds over a per-shard limit{busiest}",
        )
    elif client_cpu_share >= _CPU_BUSY:
        verdict, why = "client CPU", f"the client used {client_cpu_share:.0%} of a core over the run"
    elif emulator_cpu_share is not None and not emulator_shares_process and emulator_cpu_share >= _CPU_BUSY:
        verdict, why = (
            "emulator CPU",
            (f"the embedded emulator's own process used {emulator_cpu_share:.0%} of a core"),
        )
    elif (
        emulator_cpu_share is not None
        and emulator_shares_process
        and client_cpu_share + emulator_cpu_share >= _CPU_BUSY
    ):
        # The embedded emulator shares the client's process and so its interpreter lock.
        verdict, why = (
            "emulator CPU",
            (
                f"the embedded emulator used {emulator_cpu_share:.0%} of a core and the client "
                f"{client_cpu_share:.0%}, in one Python process"
            ),
        )
    else:
        verdict, why = (
            "round trips",
            "no resource was saturated: request latency and in-flight limits set the pace",
        )
        load = signals["machine_load_1min"]
        if load is not None and load >= signals["cpu_cores"]:
            why += (
                f" (but the machine was busy: load average {load:.1f} on {signals['cpu_cores']} cores, "
                "so other processes may have taken the CPU this run lacked)"
            )
    return {"verdict": verdict, "explanation": why, "signals": signals}


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _busiest_shard_utilisation(
    gateway: dict[str, Any] | None, producing_seconds: float, aggregated: bool, limits_scale: float = 1.0
) -> float | None:
    """What the gateway accepted on its busiest shard, per second, as a share of the write limit.

    ``limits_scale``: the share of AWS's quotas the gateway enforced (``--limits-percent``);
    a shard at its scaled limit is as busy as it can be.
    """
    if not gateway:
        return None
    bytes_limit = SHARD_WRITE_BYTES_PER_SEC * limits_scale
    records_limit = SHARD_WRITE_RECORDS_PER_SEC * limits_scale
    seconds = max(producing_seconds, 1e-9)
    busiest = 0.0
    for counts in gateway.values():
        by_bytes = counts["accepted_bytes"] / seconds / bytes_limit
        by_records = 0.0 if aggregated else counts["accepted_records"] / seconds / records_limit
        busiest = max(busiest, by_bytes, by_records)
    return busiest


OFFERED_LABEL = (
    "offered: records the bench scheduled for the shard, counted in the second of their intended "
    "send time (what the workload asked of the stream)"
)
KAFKA_OFFERED_LABEL = (
    "offered: records the partition acknowledged, counted in the second of their intended send "
    "time; the Kafka client picks a keyed record's partition, so a record that failed has none "
    "and is counted only in records failed"
)
ACCEPTED_LABEL = (
    "accepted: records the stream acknowledged, counted in the second their acknowledgement "
    "arrived (what the stream took)"
)
GATEWAY_LABEL = (
    "gateway: the Kinesis records (PutRecords entries; a KPL aggregate counts once however many "
    "records it carries) the local limit gateway let through and throttled on each shard, every "
    "attempt, retries included"
)


def offered_vs_accepted(
    rec: Recorder, gateway: dict[str, Any] | None, seconds: int, *, kafka: bool = False
) -> dict[str, Any]:
    """Per shard: offered load (intended send time) against accepted load (acknowledgements, gateway).

    On Kafka the offered series is known only for acknowledged records (``kafka``): labelled so,
    it no longer claims to be what the workload asked of each partition.
    """
    offered = rec.load.per_second(seconds)
    measured = bool(rec.accepted_records)
    per_shard: dict[str, Any] = {}
    for shard in sorted(set(offered) | set(rec.accepted_records)):
        series = offered.get(shard, {"records": [0] * seconds, "bytes": [0] * seconds})
        accepted = rec.accepted_records.get(shard, {})
        row: dict[str, Any] = {
            "offered_records": sum(series["records"]),
            "accepted_records": sum(accepted.values()) if measured else None,
            "accepted_bytes": sum(rec.accepted_bytes.get(shard, {}).values()) if measured else None,
        }
        if gateway and shard in gateway:
            row["gateway_accepted_records"] = gateway[shard]["accepted_records"]
            row["gateway_throttled_records"] = gateway[shard]["throttled_records"]
        per_shard[shard] = row
    return {
        "labels": {
            "offered": KAFKA_OFFERED_LABEL if kafka else OFFERED_LABEL,
            "accepted": ACCEPTED_LABEL,
            "gateway": GATEWAY_LABEL,
        },
        "accepted_measured": measured,
        "shards": per_shard,
        "timeline": {
            "offered_records": [sum(s["records"][t] for s in offered.values()) for t in range(seconds)],
            "accepted_records": [
                sum(series.get(t, 0) for series in rec.accepted_records.values()) for t in range(seconds)
            ],
        },
    }


def _quantiles(summary: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in summary.items()}


def _interrupted_note(outcome: RunOutcome) -> str | None:
    if outcome.interrupted_after is None:
        return None
    return (
        f"interrupted after {outcome.interrupted_after:.1f} s of {outcome.options.workload.duration:g} s: "
        "a partial result (what was measured until Ctrl-C / SIGTERM)"
    )


def _coverage_notes(outcome: RunOutcome) -> list[str]:
    """What the latency percentiles leave out, in counts: records that failed (no send-to-ack
    time) and acknowledged records the readers never read back (no end-to-end time).

    Both are the slowest records of a run, so percentiles over the rest alone look better than
    the run was; the counts stand next to them in the summary, so nobody has to derive them.
    """
    rec, options = outcome.recorder, outcome.options
    notes = []
    sent, acked, failed = rec.total_sent, rec.total_acked, sum(rec.failed.values())
    if failed:
        notes.append(
            f"{failed} of {sent} records failed (never acknowledged): send-to-ack latency "
            f"covers the {acked} acknowledged"
        )
    read = rec.read_by_slowest
    if options.consumer != "none" and outcome.interrupted_after is None and read < acked:
        notes.append(
            f"{acked - read} of {acked} acknowledged records were not read back within the "
            f"{options.drain_seconds:g} s drain: end-to-end latency covers the {read} read, "
            "not the ones that never arrived"
        )
    return notes


_NO_ACKS = {"p50": 0.0, "p99": 0.0}


def build_result(outcome: RunOutcome) -> dict[str, Any]:
    """Everything the HTML report and ``compare`` need, as plain JSON values."""
    options, rec = outcome.options, outcome.recorder
    workload = options.workload
    seconds = max(int(outcome.wall_seconds + 0.999), 1)
    # an interrupted run produced for less than its planned duration: measure what it did
    duration = min(workload.duration, outcome.interrupted_after or workload.duration)
    # workers that started apart (a merged result) offer load over more whole seconds
    produce_seconds = max(int(duration + 0.999), rec.load.seconds(), 1)
    acked, consumed = rec.total_acked, rec.total_consumed
    acked_bytes = sum(rec.acked_bytes.values())
    throttles = sum(rec.throttles.values())
    is_kafka = options.target == "msk"
    # judged against the quotas the target enforced: the gateway's --limits-percent scales them
    limits_scale = options.limits_percent / 100.0
    analysis = analyse_hot_shards(
        rec.load,
        duration_seconds=produce_seconds,
        aggregated=options.aggregate,
        kafka=is_kafka,
        records_limit=SHARD_WRITE_RECORDS_PER_SEC * limits_scale,
        bytes_limit=SHARD_WRITE_BYTES_PER_SEC * limits_scale,
    )
    # both quantiles from one pass per second: reading them is the costly part of the timeline
    by_second = rec.ack_latency_by_second
    per_second = []
    for t in range(seconds):
        histogram = by_second.get(t)
        per_second.append(_NO_ACKS if histogram is None else histogram.quantiles_ms("p50", "p99"))
    wall = max(outcome.wall_seconds, 1e-9)
    # Records are acknowledged after the schedule ends when the target falls behind (a flush
    # that drains a backlog): the producing phase runs until the last acknowledgement.
    last_ack = rec.last_ack_at - rec.start if rec.last_ack_at is not None else 0.0
    producing = max(min(wall, duration), last_ack, 1e-9)
    achieved = acked / producing
    emulator_cpu = outcome.emulator_cpu_seconds
    if emulator_cpu is None and outcome.emulator_in_process:
        emulator_cpu = outcome.process_cpu_seconds - outcome.client_cpu_seconds
    result: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "started_at": outcome.started_at.isoformat(),
        "interrupted": outcome.interrupted_after is not None,
        "environment": outcome.environment,
        "config": {
            "target": options.target,
            "stream": outcome.stream,
            "shards": len(outcome.shard_ids),
            "duration_seconds": workload.duration,
            "rate": workload.rate,
            "record_size": workload.record_size,
            "keys": workload.keys,
            "skew": str(workload.skew),
            "key_strategy": options.key_strategy,
            "aggregate": options.aggregate,
            "consumer": options.consumer,
            "workers": options.workers,
            "payload_format": workload.payload_format,
            "generator": options.generator,
        },
        "summary": {
            "records_sent": rec.total_sent,
            "records_acked": acked,
            "records_failed": sum(rec.failed.values()),
            "bytes_acked": acked_bytes,
            "producer_records_per_sec": achieved,
            "producer_mb_per_sec": acked_bytes / producing / 1e6,
            "producing_seconds": producing,
            "consumer_records": consumed,
            "consumer_records_per_sec": consumed / wall,
            "consumer_duplicates": rec.duplicates,
            "throttles": throttles,
            "retries": sum(rec.retries.values()),
            "send_to_ack_ms": _quantiles(rec.ack_latency.summary_ms()),
            "end_to_end_ms": _quantiles(rec.e2e_latency.summary_ms()),
            "end_to_end_ms_by_consumer": {
                kind: _quantiles(histogram.summary_ms())
                for kind, histogram in sorted(rec.e2e_by_reader.items())
            },
            "wall_seconds": outcome.wall_seconds,
            "client_cpu_seconds": outcome.client_cpu_seconds,
            "emulator_cpu_seconds": emulator_cpu,
            "client_cpu_us_per_record": outcome.client_cpu_seconds * 1e6 / max(acked, 1),
            "client_cpu_method": outcome.client_cpu_method or "not stated",
            "client_peak_rss_mib": outcome.peak_rss_mib,
        },
        "timeline": {
            "seconds": list(range(seconds)),
            "sent_records": Recorder.series(rec.sent, seconds),
            "acked_records": Recorder.series(rec.acked, seconds),
            "acked_bytes": Recorder.series(rec.acked_bytes, seconds),
            "consumed_records": Recorder.series(rec.consumed, seconds),
            "throttles": Recorder.series(rec.throttles, seconds),
            "retries": Recorder.series(rec.retries, seconds),
            "ack_p50_ms": [summary["p50"] for summary in per_second],
            "ack_p99_ms": [summary["p99"] for summary in per_second],
            "iterator_age_ms": {
                shard: [ages.get(t) for t in range(seconds)]
                for shard, ages in sorted(rec.iterator_age.items())
            },
        },
        "shards": analysis["shards"],
        "shard_timeline": rec.load.per_second(produce_seconds),
        "hot_shards": analysis["hot_shards"],
        "keys_exact": analysis["keys_exact"],
        "reshard_to": analysis["reshard_to"],
        "gateway": outcome.gateway,
        "offered_vs_accepted": offered_vs_accepted(rec, outcome.gateway, seconds, kafka=is_kafka),
        "notes": [
            note
            for note in (
                outcome.consumer_note,
                *outcome.notes,
                _interrupted_note(outcome),
                *_coverage_notes(outcome),
            )
            if note
        ],
    }
    result["bound_by"] = bound_by(
        rate=workload.rate,
        achieved_rate=achieved,
        throttles=throttles,
        records=max(rec.total_sent, 1),
        seconds_over_limit=sum(s["seconds_over_limit"] for s in analysis["shards"].values()),
        client_cpu_share=outcome.client_cpu_seconds / wall,
        emulator_cpu_share=emulator_cpu / wall if emulator_cpu is not None else None,
        emulator_shares_process=outcome.emulator_in_process,
        busiest_shard_utilisation=_busiest_shard_utilisation(
            outcome.gateway, producing, options.aggregate, limits_scale
        ),
        acknowledged=acked,
    )
    return result
