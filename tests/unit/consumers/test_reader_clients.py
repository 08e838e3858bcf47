"""Every Kinesis reader Shardline builds its own client for decodes Kinesis answers alike.

The source, replays (and the slices of a sliced backfill) and ``shardline tail`` make their
client with :func:`consumers.kinesis.session.reader_client`, so a replay of plain records pays
what a live read pays and gives the same UTC arrival times; they used to build botocore's
default client.
"""

from __future__ import annotations

import argparse
from contextlib import AsyncExitStack
from typing import Any

import pytest

from consumers.kinesis import session
from consumers.replay.cli import _reader, parse_source
from consumers.replay.kinesis_range import KinesisRangeReader


@pytest.fixture
def sessions_made(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    made: list[Any] = []
    real = session.reader_session

    def counting() -> Any:
        made.append(real())
        return made[-1]

    monkeypatch.setattr(session, "reader_session", counting)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return made


async def test_a_replay_reads_with_the_reader_client(sessions_made: list[Any]) -> None:
    args = argparse.Namespace(
        from_time=None, to_time=None, from_sequence=None, to_sequence=None, shard=[], max_calls_per_second=1.0
    )
    async with AsyncExitStack() as stack:
        reader = await _reader(args, parse_source("kinesis://events"), stack)
        assert isinstance(reader, KinesisRangeReader)
        # the range reader's client came from a reader session: its GetRecords answers and
        # fan-out events go through the reader's own parsers
        assert len(sessions_made) == 1
        made = sessions_made[0].get_component("response_parser_factory").create_parser("json")
        assert isinstance(made, session._ReaderJSONParser)
