"""The ``stream-bench`` console script.

It imports the benchmark only inside :func:`shardline.extras.run_command`, so an install
without the ``bench`` extra (or ``bench-peers`` for ``stream-bench peers``) gets one line
naming the extra instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from shardline.extras import run_command

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    prefer = "bench-peers" if arguments[:1] == ["peers"] else "bench"

    def run() -> int:
        from benchmarks.cli import main as bench_main

        return bench_main(arguments)

    return run_command("stream-bench", run, prefer=prefer)


if __name__ == "__main__":
    raise SystemExit(main())
