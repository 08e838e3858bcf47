"""``shardline consume`` with a short lease renewal interval, so a failover takes seconds.

A failover test pauses a worker for longer than the leases' expiry (three renewal intervals).
At the default 10 s interval that is 30 s per pause; the production command has no option for
the interval (a user tunes it through ``ReaderConfig``), so this wrapper makes every
``ReaderConfig`` the command builds renew and list shards every ``INTERVAL`` seconds, then runs
the real command unchanged.

    python -m tests.integration.consume_with_fast_leases INTERVAL consume kinesis://S ...
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence

from consumers.kinesis import config as reader_config

__all__ = ["main"]


def main(argv: Sequence[str]) -> int:
    interval, *command = argv
    reader_config.ReaderConfig = functools.partial(  # type: ignore[misc,assignment]
        reader_config.ReaderConfig,
        lease_renew_interval=float(interval),
        shard_discovery_interval=float(interval),
    )
    from shardline.cli import main as shardline_main

    return shardline_main(command)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
