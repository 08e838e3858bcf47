"""A replay's plain progress lines (stderr that is no terminal: cron, a pipe, a Batch child's log).

They came every 1,000 records and at the end only: a job reading a sparse stretch of a stream,
or waiting for its window's end, printed nothing for as long as that took, and no line said
how fast the job went.  Lines now also come every ``interval`` seconds, with the rate since the
previous line, and the heartbeat says when nothing came in.
"""

from __future__ import annotations

import asyncio
import io

import pytest

from consumers.replay import jobs_cli, manifest, slices
from consumers.replay.progress import ProgressDisplay
from shardline.errors import ConfigurationError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _display(clock: Clock, out: io.StringIO) -> ProgressDisplay:
    return ProgressDisplay("backfill", stream=out, every=1000, interval=30.0, live=False, clock=clock)


def test_lines_come_on_time_with_the_rate_as_well_as_every_n_records() -> None:
    clock, out = Clock(), io.StringIO()
    with _display(clock, out) as progress:
        progress.advance("shardId-0", 10)
        clock.now += 10
        progress.advance("shardId-0", 10)  # 20 records in 10 s: no line yet
        clock.now += 20
        progress.advance("shardId-1", 40)  # 30 s since the start line: a line, 60 records in 30 s
        progress.advance("shardId-1", 940)  # the 1,000th record: a line
    lines = out.getvalue().splitlines()
    assert lines[0] == "replay backfill: started"
    assert lines[1] == "replay backfill: 60 records from 2 partition(s), 2 records/s"
    assert lines[2].startswith("replay backfill: 1000 records from 2 partition(s), ")
    assert lines[-1] == "replay backfill: done, 1000 records from 2 partition(s)"


def test_the_heartbeat_says_when_nothing_came_in() -> None:
    clock, out = Clock(), io.StringIO()
    with _display(clock, out) as progress:
        progress.advance("shardId-0", 5)
        clock.now += 29
        progress.tick()  # within the interval: quiet
        clock.now += 1
        progress.tick()
        clock.now += 45
        progress.tick()
    lines = out.getvalue().splitlines()
    assert lines[1:3] == [
        "replay backfill: 5 records from 1 partition(s), 0 records/s",
        "replay backfill: 5 records from 1 partition(s), none in 45 s",
    ]


async def test_the_heartbeat_runs_while_the_block_does_and_ends_with_it() -> None:
    out = io.StringIO()
    async with ProgressDisplay("backfill", stream=out, interval=0.01, live=False) as progress:
        heartbeat = progress._heartbeat
        assert heartbeat is not None
        for _ in range(500):  # bounded: the first heartbeat line within 5 s
            if "none in" in out.getvalue():
                break
            await asyncio.sleep(0.01)
    assert "none in" in out.getvalue()
    assert heartbeat.done()


class _Broken(io.StringIO):
    def write(self, text: str) -> int:
        if "none in" in text:
            raise OSError("stderr is gone")
        return super().write(text)


async def test_a_heartbeat_that_cannot_write_stops_alone(caplog: pytest.LogCaptureFixture) -> None:
    out = _Broken()
    async with ProgressDisplay("backfill", stream=out, interval=0.01, live=False) as progress:
        heartbeat = progress._heartbeat
        assert heartbeat is not None
        await asyncio.wait_for(asyncio.shield(heartbeat), 5)
        progress.advance("shardId-0", 1)  # the job goes on
    assert "replay progress lines stopped" in caplog.text
    assert progress.total == 1


def test_an_interval_of_nothing_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="interval"):
        ProgressDisplay("backfill", interval=0)


class _Manifest:
    name = "backfill"
    slices = (object(),)

    def slice(self, index: int) -> object:
        return self.slices[index]


def test_a_slice_runner_reports_its_progress(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`replay run --slice I` printed nothing until its slice ended."""

    async def load(location: str) -> object:
        return _Manifest()

    async def run_slice(*args: object, on_progress: object = None, **kwargs: object) -> object:
        assert callable(on_progress)
        on_progress("shardId-0", 1500)
        raise ConfigurationError("stop here")

    monkeypatch.setattr(manifest, "load_manifest", load)
    monkeypatch.setattr(slices, "run_slice", run_slice)
    args = jobs_cli.build_parser("shardline replay", "run").parse_args(
        ["--manifest", "m.json", "--slice", "0"]
    )
    jobs_cli.main("run", args)
    err = capsys.readouterr().err
    assert "replay backfill slice 0: started" in err
    assert "replay backfill slice 0: 1500 records from 1 partition(s)" in err
