"""At ``--limits-percent`` below 100 the result judges shards against the limits the gateway enforced.

The gateway throttles at P% of AWS's quotas and the producer paces to them, so a shard at
its scaled limit is busy: the "Bound by" verdict and the hot-shard analysis must measure it
against those limits, not against AWS's full ones (which made a shard at 100% of a 10%
limit read as 10% busy and the run as bound by round trips).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks.result import build_result
from benchmarks.run import RunOutcome
from shardline.limits import SHARD_WRITE_BYTES_PER_SEC


def _unbounded_at(outcome: RunOutcome, limits_percent: float) -> RunOutcome:
    options = outcome.options
    options = replace(options, limits_percent=limits_percent, workload=replace(options.workload, rate=None))
    seconds = options.workload.duration
    # what the gateway let through: 100 KiB/s of aggregates on every shard, about 10% of 1 MiB/s
    gateway = {
        shard: {
            "accepted_records": 2 * seconds,
            "accepted_bytes": 100 * 1024 * seconds,
            "throttled_records": 0,
            "get_records_calls": 0,
            "get_records_throttled": 0,
        }
        for shard in outcome.shard_ids
    }
    return replace(outcome, options=options, gateway=gateway, wall_seconds=float(seconds))


def test_a_shard_at_its_scaled_write_limit_binds_the_run(outcome: RunOutcome) -> None:
    result = build_result(_unbounded_at(outcome, 10.0))
    bound, seconds = result["bound_by"], result["summary"]["producing_seconds"]
    scaled_limit = SHARD_WRITE_BYTES_PER_SEC * 10 / 100
    expected = 100 * 1024 * outcome.options.workload.duration / seconds / scaled_limit
    assert bound["signals"]["busiest_shard_utilisation"] == pytest.approx(expected)
    assert expected >= 0.8
    assert bound["verdict"] == "shard limits"


def test_the_same_load_at_aws_limits_is_not_shard_bound(outcome: RunOutcome) -> None:
    bound = build_result(_unbounded_at(outcome, 100.0))["bound_by"]
    assert bound["signals"]["busiest_shard_utilisation"] < 0.1
    assert bound["verdict"] != "shard limits"


def test_hot_shard_utilisation_is_against_the_scaled_limits(outcome: RunOutcome) -> None:
    at_ten = build_result(_unbounded_at(outcome, 10.0))["shards"]
    at_full = build_result(_unbounded_at(outcome, 100.0))["shards"]
    for shard, summary in at_full.items():
        assert at_ten[shard]["peak_utilisation"] == pytest.approx(summary["peak_utilisation"] * 10)
