"""``shardline consume`` that SIGKILLs itself right after its N-th successful sink write.

The crash-recovery test runs this wrapper instead of the production command, so the fault
(a kill between a sink write and its checkpoint) is injected from outside: the wrapper
replaces the sink factory ``shardline consume`` uses with one that wraps each sink, then runs
the real command unchanged.

    python -m tests.integration.consume_killed_after_sink_writes N consume kinesis://S ...
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from consumers.sinks import uri as sink_uri
from consumers.sinks.base import EntryResult, Sink
from shardline.records import ConsumedRecord

__all__ = ["KillAfterWrites", "main"]


class KillAfterWrites:
    """A sink that SIGKILLs this process right after the N-th successful write of the sink it wraps."""

    def __init__(self, sink: Sink, writes: int) -> None:
        self._sink = sink
        self._remaining = writes

    async def write(self, batch: Sequence[ConsumedRecord]) -> Sequence[EntryResult] | None:
        results = await self._sink.write(batch)  # per-record outcomes go back to the pipeline
        self._remaining -= 1
        if self._remaining <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return results

    async def close(self) -> None:
        await self._sink.close()


def main(argv: Sequence[str]) -> int:
    writes, *command = argv
    open_sink = sink_uri.sink_from_uri

    def killing_sink_from_uri(uri: str, **options: Any) -> Any:
        return KillAfterWrites(open_sink(uri, **options), int(writes))

    sink_uri.sink_from_uri = killing_sink_from_uri  # type: ignore[assignment]
    from shardline.cli import main as shardline_main

    return shardline_main(command)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
