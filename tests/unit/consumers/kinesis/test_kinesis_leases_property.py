"""Property: KinesisSource workers sharing one lease table keep the KCL's lease rule, whatever befalls them.

Hypothesis draws a program for two or three workers (:mod:`tests.unit.consumers.kinesis.lease_world`)
reading one stream of a few shards over one :class:`MemoryCheckpointStore`, all on virtual time
(each worker's clock with its own offset): time passes, records are appended, shards split,
workers pause and resume, die without releasing, stop cleanly, lose the store for a while or
for good (calls refused, or applied with the answer lost), or take slowly enough for the
holder's renewal to race the take.  Then every worker still up is resumed and reconnected (a
worker restarted when none is left), the stream is read to its end and every worker stopped.
Throughout:

1. a checkpoint is written only by the lease's holder, never moves backwards, never names a
   record its writer was not given, and never passes a record nobody wrote to the sink;
2. a lease its holder renewed for the whole expiry is never taken from it (no flapping);
3. a readable shard goes unread no longer than :data:`TAKE_BOUND` while a worker able to take
   it is up -- a shard the survivor lost earlier included;
4. every record appended reaches the sink, a child's only after all of its parent's;
5. every worker's run ends within :data:`STOP_BOUND` after it was stopped, and fails only
   if its store failed; a program runs under a watchdog, so a hang fails the example.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.program_watchdog import watch as watchdog
from tests.unit.consumers.kinesis.lease_world import EXPIRY, STOP_BOUND, TAKE_BOUND, World

FINISH_BOUND = 4 * TAKE_BOUND
"""Virtual seconds for the survivors to read everything once the program ended (two shard
generations, each taken over within TAKE_BOUND, plus reading)."""
BOUND = 20.0
"""Real seconds one whole program may take; examples take a fraction of one."""
MAX_SPLITS = 2

Step = tuple[Any, ...]
"""("advance", seconds) | ("append", shard, count) | ("split", shard) | ("pause", worker) |
("resume", worker) | ("die", worker) | ("stop", worker) | ("reconnect", worker) |
("outage", worker, seconds or None for good, refuses, lost_answers) | ("slow_take", worker).

Shards are counted among the open ones, workers among those started (both modulo)."""


@dataclass(frozen=True)
class Program:
    shards: int
    clock_offsets: tuple[float, ...]
    """One per worker: how far its monotonic clock is from the others'."""
    steps: tuple[Step, ...]


def _worker() -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=2)


def _shard() -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=3)


STEPS = st.one_of(
    st.tuples(st.just("advance"), st.sampled_from([0.3, 1.0, 2.0, 3.5, 5.0, 8.0])),
    st.tuples(
        st.just("append"), st.integers(min_value=0, max_value=3), st.integers(min_value=1, max_value=5)
    ),
    st.tuples(st.just("split"), _shard()),
    st.tuples(st.just("pause"), _worker()),
    st.tuples(st.just("resume"), _worker()),
    st.tuples(st.just("die"), _worker()),
    st.tuples(st.just("stop"), _worker()),
    st.tuples(st.just("reconnect"), _worker()),
    st.tuples(
        st.just("outage"),
        _worker(),
        st.sampled_from([1.0, 2.5, 6.0, None]),
        st.booleans(),
        st.booleans(),
    ),
    st.tuples(st.just("slow_take"), _worker()),
)


@st.composite
def programs(draw: st.DrawFn) -> Program:
    workers = draw(st.integers(min_value=2, max_value=3), label="workers")
    offsets = draw(st.lists(st.sampled_from([0.0, 1000.0, -7.5]), min_size=workers, max_size=workers))
    return Program(
        shards=draw(st.integers(min_value=1, max_value=3), label="shards"),
        clock_offsets=tuple(offsets),
        steps=tuple(draw(st.lists(STEPS, max_size=14), label="steps")),
    )


async def _apply(world: World, step: Step) -> None:
    kind = step[0]
    if kind == "advance":
        await world.time.advance(step[1], world.observe)
        return
    if kind in ("append", "split"):
        open_shards = world.stream.open_shards()
        shard_id = open_shards[step[1] % len(open_shards)].shard_id
        if kind == "append":
            world.stream.append(shard_id, step[2])
        elif len(world.stream.shards) < world_shard_limit(world):
            world.stream.split(shard_id)
        return
    worker = world.workers[step[1] % len(world.workers)]
    if kind == "pause":
        worker.pause()
    elif kind == "resume":
        worker.resume()
    elif kind == "die":
        await worker.die()
    elif kind == "stop":
        await worker.stop()
    elif kind == "reconnect":
        worker.reconnect()
    elif kind == "outage":
        worker.cut_off(step[2], refuses=step[3], lost_answers=step[4])
    else:
        worker.slow_takes += 1


def world_shard_limit(world: World) -> int:
    return world.initial_shards + 2 * MAX_SPLITS


async def _finish(world: World) -> None:
    """Bring the survivors back, read the stream to its end, stop everyone."""
    for worker in world.workers:
        worker.resume()
        worker.reconnect()
    deadline = world.time.now + FINISH_BOUND
    while world.unwritten() and world.time.now < deadline:
        if not any(worker.healthy() for worker in world.workers):
            # a supervisor restarts the process (the last one may fail only now: its source
            # gave up on a lease it could not renew while the program cut it off)
            world.start(f"restarted-{len(world.workers)}")
            await world.time.advance(0.0, world.observe)
        await world.time.advance(1.0, world.observe)
    assert not world.unwritten(), f"never written: {sorted(world.unwritten())}, workers {world.workers}"
    for worker in world.workers:
        await worker.stop()
    deadline = world.time.now + STOP_BOUND + 1.0
    while not all(worker.task.done() for worker in world.workers) and world.time.now < deadline:
        await world.time.advance(0.5, world.observe)
    for worker in world.workers:
        assert worker.task.done(), f"{worker} still runs {STOP_BOUND} s after it was stopped"
        if worker.state != "dead":
            worker.task.result()
        if worker.stopped_at is not None:
            assert worker.finished_at is not None and worker.finished_at - worker.stopped_at <= STOP_BOUND
        assert worker.failure is None or worker.had_outage, f"{worker.name} failed: {worker.failure!r}"


async def _play(program: Program) -> None:
    world = World(program.shards)
    for shard_id in list(world.stream.shards):
        world.stream.append(shard_id, 2)
    for index, offset in enumerate(program.clock_offsets):
        world.start(f"w{index}", offset)

    async def steps() -> None:
        for step in program.steps:
            await _apply(world, step)
            await world.time.advance(0.0, world.observe)
        await _finish(world)

    task = asyncio.create_task(steps())
    try:
        await watchdog(
            task,
            lambda: (world.time.now, world.time.activity),
            lambda: f"at t={world.time.now:.2f}: {world.workers}",
            tick=0.05,
            quiet_ticks=40,
            bound=BOUND,
        )
    finally:
        for worker in world.workers:
            await worker.die()


def _program(*steps: Step, workers: int = 2, shards: int = 2) -> Program:
    return Program(shards=shards, clock_offsets=(0.0, 1000.0, -7.5)[:workers], steps=steps)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(_program(("advance", 8.0), ("advance", 8.0)))
@example(_program(("advance", 2.0), ("pause", 0), ("advance", 8.0), ("resume", 0), ("advance", 8.0)))
@example(_program(("advance", 2.0), ("die", 0), ("advance", EXPIRY), ("append", 0, 3), ("advance", 8.0)))
@example(_program(("advance", 1.0), ("split", 0), ("append", 0, 4), ("advance", 2.0), ("die", 0)))
# the holder comes back and renews while a slow taker's take is on its way
@example(_program(("advance", 1.0), ("pause", 0), ("slow_take", 1), ("advance", 3.5), ("resume", 0)))
# the last survivor's source gives up only after the program ended (it was cut off for the
# expiry): a restarted worker reads the child appended meanwhile
@example(
    Program(
        shards=1,
        clock_offsets=(0.0, 0.0),
        steps=(
            ("advance", 1.0),
            ("split", 0),
            ("die", 1),
            ("append", 0, 1),
            ("outage", 0, 6.0, False, False),
            ("advance", 3.5),
        ),
    )
)
@given(program=programs())
def test_workers_keep_the_lease_rule_whatever_befalls_them(program: Program) -> None:
    asyncio.run(_play(program))
