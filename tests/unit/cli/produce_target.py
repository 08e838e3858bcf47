"""A stand-in for the producer ``shardline produce`` opens, and a way to run the command on it.

The command runs as the console script runs it (``command.run``), reading the given bytes as
its stdin; the stand-in records what it was asked to send and acknowledges it at once.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pytest

import producers.cli
from producers.cli import command
from shardline.errors import TransientServiceError


@dataclass
class Target:
    """What the command sent, and how the stand-in behaves."""

    max_record_bytes: int | None = 1_000_000
    dies_at: int | None = None
    """The send() call (counted from 1) that raises ``dies_with``, as a dead producer's does."""
    dies_with: Exception | None = None
    undelivered: int | None = None
    """The send() call whose record the target takes but then fails to deliver."""
    before_send: Callable[[int], Awaitable[None]] | None = None
    """Awaited with the number of each send() call before it is answered."""
    sent: list[tuple[bytes, str | None]] = field(default_factory=list)
    calls: int = 0
    closed: bool = False

    def opener(self, *args: object) -> _Open:
        return _Open(self)


class _Open:
    def __init__(self, target: Target) -> None:
        self._target = target
        self.max_record_bytes = target.max_record_bytes

    async def __aenter__(self) -> Callable[[bytes, str | None], Any]:
        target = self._target

        async def send(data: bytes, key: str | None) -> asyncio.Future[Any]:
            target.calls += 1
            if target.before_send is not None:
                await target.before_send(target.calls)
            if target.calls == target.dies_at:
                assert target.dies_with is not None
                raise target.dies_with
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            if target.calls == target.undelivered:
                done.set_exception(TransientServiceError("kafka: delivery timed out"))
                return done
            target.sent.append((data, key))
            done.set_result(argparse.Namespace(partition=0, offset=len(target.sent) - 1))
            return done

        return send

    async def __aexit__(self, *exc_info: object) -> None:
        self._target.closed = True
        if self._target.dies_with is not None:
            raise self._target.dies_with  # close() of a dead producer raises what killed it


def run_produce(monkeypatch: pytest.MonkeyPatch, target: Target, stdin: bytes | BinaryIO, *argv: str) -> int:
    """``shardline produce kafka://127.0.0.1:9/t ARGV`` with ``stdin``, against ``target``."""
    monkeypatch.setattr(producers.cli, "_open", target.opener)
    stream = io.BytesIO(stdin) if isinstance(stdin, bytes) else stdin
    monkeypatch.setattr(sys, "stdin", argparse.Namespace(buffer=stream))
    parser = argparse.ArgumentParser()
    command.configure(parser)
    return command.run(parser.parse_args(["kafka://127.0.0.1:9/t", *argv]))
