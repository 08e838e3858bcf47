"""The schedule sends exactly rate x duration records, stops at once when asked, and the live
rate counts acknowledgements by their arrival (late acks of a second are not missed)."""

from __future__ import annotations

import asyncio

from benchmarks.pacing import drive_schedule
from benchmarks.recorder import Recorder


class _FakeClock:
    """Advances 0.37 s per reading: a coarse loop that overshoots the end of the schedule."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.37
        return self.now


async def test_the_plan_is_sent_exactly() -> None:
    sent: list[int] = []

    async def send_one(index: int, intended: float) -> None:
        sent.append(index)

    count = await drive_schedule(rate=100, duration=3, start=0.0, send_one=send_one, tick=lambda: None,
                                 clock=_FakeClock())  # fmt: skip
    assert count == 300 and sent == list(range(300))


async def test_a_stop_ends_the_schedule_before_the_plan() -> None:
    stop = asyncio.Event()
    sent: list[int] = []

    async def send_one(index: int, intended: float) -> None:
        sent.append(index)
        if index == 49:
            stop.set()

    count = await asyncio.wait_for(
        drive_schedule(rate=1000, duration=60, start=asyncio.get_running_loop().time(), send_one=send_one,
                       tick=lambda: None, clock=asyncio.get_running_loop().time, stop=stop),
        timeout=10,
    )  # fmt: skip
    assert 50 <= count < 60_000


def test_live_rate_counts_late_acks_by_arrival() -> None:
    recorder = Recorder(["s"], 0.0)
    for _ in range(1000):  # due in second 0, acknowledged in second 1
        recorder.on_ack(0, 10, 0.9, now=1.5)
    for _ in range(1000):  # due in second 1, acknowledged in second 2
        recorder.on_ack(1, 10, 0.9, now=2.2)
    assert recorder.snapshot(3.0, 10)["rate"] == 2000 / 3  # trailing 3 s window, by arrival
    assert recorder.snapshot(2.0, 10)["rate"] == 1000 / 2
