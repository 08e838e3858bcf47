"""Budgets, limits and fault plans of the Kinesis gateway, without any server."""

from __future__ import annotations

import botocore.session
import pytest

from benchmarks.gateway import FaultPlan, ManualClock, ShardLimits
from benchmarks.gateway.faults import FaultInjector
from benchmarks.gateway.limits import ShardBudget, TokenBucket
from benchmarks.gateway.routing import IteratorDirectory, stream_name_of
from shardline.errors import ConfigurationError


def test_botocore_speaks_json_to_kinesis() -> None:
    # The gateway meters JSON 1.1 bodies only; if botocore ever switched Kinesis to CBOR this must fail.
    model = botocore.session.get_session().get_service_model("kinesis")
    assert model.protocol == "json"
    assert model.metadata["targetPrefix"] == "Kinesis_20131202"


def test_bucket_holds_one_second_and_refills_with_the_clock() -> None:
    clock = ManualClock()
    bucket = TokenBucket(1000, clock)
    assert bucket.take(1000)
    assert not bucket.take(1)
    clock.advance(0.5)
    assert bucket.take(500)
    assert not bucket.take(1)
    clock.advance(10)
    assert bucket.available() == 1000  # never more than one second's worth


def test_charge_goes_into_debt_until_paid_back() -> None:
    clock = ManualClock()
    bucket = TokenBucket(100, clock)
    bucket.charge(300)
    assert bucket.available() == -200
    clock.advance(2)
    assert bucket.available() == 0
    clock.advance(0.01)
    assert bucket.available() > 0


def test_write_budget_counts_records_and_bytes() -> None:
    clock = ManualClock()
    budget = ShardBudget(ShardLimits(write_records_per_sec=3, write_bytes_per_sec=100), clock)
    assert budget.admit_write(60)
    assert not budget.admit_write(60)  # bytes short; nothing reserved
    assert budget.admit_write(40)
    assert not budget.admit_write(1)  # a record is left, but no bytes
    clock.advance(1)
    assert budget.admit_write(10)
    assert budget.admit_write(10)
    assert budget.admit_write(10)
    assert not budget.admit_write(10)  # three records per second, whatever their size


def test_read_budget_allows_five_calls_then_throttles_and_honours_byte_debt() -> None:
    clock = ManualClock()
    budget = ShardBudget(ShardLimits(), clock)
    assert all(budget.admit_read_call() for _ in range(5))
    assert not budget.admit_read_call()
    clock.advance(1)
    budget.charge_read_bytes(4 * 1024 * 1024)  # one call returned 4 MiB: two seconds of budget
    assert not budget.admit_read_call()
    clock.advance(1.5)
    assert budget.admit_read_call()


def test_scale_percent_scales_every_quota() -> None:
    clock = ManualClock()
    budget = ShardBudget(ShardLimits(scale_percent=10), clock)
    assert sum(budget.admit_write(1) for _ in range(150)) == 100


def test_unenforced_limits_admit_everything() -> None:
    budget = ShardBudget(ShardLimits.unenforced(), ManualClock())
    assert all(budget.admit_write(1024 * 1024) for _ in range(10))
    assert all(budget.admit_read_call() for _ in range(10))


@pytest.mark.parametrize(
    "kwargs",
    [{"write_records_per_sec": 0}, {"read_bytes_per_sec": -1}, {"scale_percent": 0}],
)
def test_bad_limits_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        ShardLimits(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"entry_failure_rate": 1.5},
        {"drop_response_rate": -0.1},
        {"server_error_status": 502},
        {"latency_seconds": -1},
        {"entry_error_code": ""},
    ],
)
def test_bad_fault_plans_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        FaultPlan(**kwargs)  # type: ignore[arg-type]


def test_fault_draws_are_reproducible_from_the_seed() -> None:
    plan = FaultPlan(entry_failure_rate=0.3, seed=42)
    a, b = FaultInjector(plan), FaultInjector(plan)
    draws_a = [a.fail_entry() for _ in range(200)]
    draws_b = [b.fail_entry() for _ in range(200)]
    assert draws_a == draws_b
    assert 20 < sum(draws_a) < 100


def test_fault_plan_scope() -> None:
    assert FaultPlan().applies_to("PutRecords")
    assert not FaultPlan().applies_to("GetRecords")
    assert FaultPlan(operations=None).applies_to("GetRecords")
    assert FaultPlan(server_error_status=503).server_error_code == "ServiceUnavailable"


def test_zero_rates_never_fire() -> None:
    injector = FaultInjector(FaultPlan())
    assert not any(injector.fail_entry() or injector.drop_response() for _ in range(100))


def test_stream_name_from_name_or_arn() -> None:
    assert stream_name_of({"StreamName": "s"}) == "s"
    assert stream_name_of({"StreamARN": "arn:aws:kinesis:us-east-1:123456789012:stream/t"}) == "t"
    assert stream_name_of({}) is None


def test_iterator_directory_is_bounded() -> None:
    directory = IteratorDirectory(capacity=2)
    directory.remember("a", "s", "shard-0")
    directory.remember("b", "s", "shard-1")
    directory.remember("c", "s", "shard-2")
    directory.remember(None, "s", "shard-3")
    assert directory.lookup("a") is None
    assert directory.lookup("c") == ("s", "shard-2")
    assert directory.lookup(None) is None


def test_manual_clock_refuses_to_go_back() -> None:
    with pytest.raises(ConfigurationError):
        ManualClock().advance(-1)


def test_a_bucket_scaled_below_one_call_per_second_still_admits_a_call_now_and_then() -> None:
    clock = ManualClock()
    bucket = TokenBucket(0.5, clock)  # GetRecords at --limits-percent 10: 0.5 calls/s
    assert bucket.take(1)
    assert not bucket.take(1)
    clock.advance(1.0)
    assert not bucket.take(1)
    clock.advance(1.0)
    assert bucket.take(1)  # one call every two seconds
