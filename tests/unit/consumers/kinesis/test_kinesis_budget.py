import pytest

from consumers.kinesis.budget import CallBudget
from shardline.errors import ValidationError
from tests.unit.consumers.kinesis.virtual_time import SteppingTime


async def test_full_share_paces_five_calls_per_second() -> None:
    t = SteppingTime()
    budget = CallBudget(1.0, clock=t.clock, sleep=t.sleep)
    for _ in range(11):
        await budget.acquire()
    # first call free, then one every 0.2 s: 10 more calls need 2 s of (fake) time
    assert t.now == pytest.approx(2.0)


async def test_share_leaves_room_for_other_applications() -> None:
    t = SteppingTime()
    budget = CallBudget(0.2, clock=t.clock, sleep=t.sleep)
    assert budget.calls_per_second == pytest.approx(1.0)
    for _ in range(4):
        await budget.acquire()
    assert t.now == pytest.approx(3.0)


async def test_idle_time_does_not_accumulate_beyond_burst() -> None:
    t = SteppingTime()
    budget = CallBudget(1.0, burst=2, clock=t.clock, sleep=t.sleep)
    t.now = 100.0
    assert budget.try_acquire() == 0.0
    assert budget.try_acquire() == 0.0
    assert budget.try_acquire() == pytest.approx(0.2)


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_share_validated(share: float) -> None:
    with pytest.raises(ValidationError):
        CallBudget(share)
