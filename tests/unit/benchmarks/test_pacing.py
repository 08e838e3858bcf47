"""The open-loop send schedule and the bounded drain wait, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.pacing import drive_schedule, wait_for_consumers


class SteppingClock:
    """Each reading moves time forward by ``step`` seconds: the loop always makes progress."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


async def test_paced_records_are_intended_at_start_plus_index_over_rate() -> None:
    clock = SteppingClock(0.0005)
    intended: list[tuple[int, float]] = []
    ticks: list[float] = []

    async def send_one(index: int, when: float) -> None:
        intended.append((index, when))

    sent = await drive_schedule(
        rate=1000.0,
        duration=1.5,
        start=0.0,
        send_one=send_one,
        tick=lambda: ticks.append(clock.now),
        clock=clock,
    )
    assert sent == len(intended)
    assert 1400 <= sent <= 1502  # due records up to the end of the schedule, no more
    assert [i for i, _ in intended] == list(range(sent))
    assert all(when == pytest.approx(i / 1000.0) for i, when in intended)
    assert len(ticks) == 1  # one progress tick per whole second


async def test_unbounded_schedule_sends_in_bursts_at_the_current_time() -> None:
    clock = SteppingClock(0.001)
    seen: list[float] = []

    async def send_one(index: int, when: float) -> None:
        seen.append(when)

    sent = await drive_schedule(
        rate=None, duration=0.5, start=0.0, send_one=send_one, tick=lambda: None, burst=10, clock=clock
    )
    assert sent == len(seen) and sent % 10 == 0 and sent > 0
    assert seen == sorted(seen)  # intended time is "now" for an unbounded run, never in the past


async def test_wait_for_consumers_gives_up_at_its_deadline() -> None:
    clock = SteppingClock(0.3)
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1

    caught_up = await wait_for_consumers(
        lambda: 5, lambda: 10, timeout=1.0, tick=tick, interval=0.0, clock=clock
    )
    assert caught_up is False
    assert ticks >= 1


async def test_wait_for_consumers_returns_once_caught_up() -> None:
    consumed = iter([1, 5, 10])
    caught_up = await wait_for_consumers(
        lambda: next(consumed), lambda: 10, timeout=60.0, tick=lambda: None, interval=0.0
    )
    assert caught_up is True


async def test_wait_for_consumers_gives_up_once_no_reader_is_left() -> None:
    """Readers that all died will read nothing more: the drain does not wait out its deadline."""
    alive = iter([True, True, False])
    frozen = SteppingClock(0.0)
    caught_up = await asyncio.wait_for(
        wait_for_consumers(
            lambda: 5,
            lambda: 10,
            timeout=60.0,
            tick=lambda: None,
            interval=0.0,
            clock=frozen,
            reading=lambda: next(alive),
        ),
        5,
    )
    assert caught_up is False
