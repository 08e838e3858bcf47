"""`shardline produce` input handling and argument checks (no network: bad input exits 2 first)."""

from __future__ import annotations

import argparse
import asyncio
import io

import pytest

from producers.cli import ProduceSummary, command, key_strategy, read_lines
from producers.keys import Key
from shardline.errors import ConfigurationError


async def _lines(data: bytes) -> list[tuple[int, bytes]]:
    return [item async for item in read_lines(io.BytesIO(data), asyncio.Event())]


async def test_lines_keep_their_numbers_skip_blanks_and_keep_a_last_unterminated_line() -> None:
    assert await _lines(b"a\r\n\nb\n  \nc") == [(1, b"a"), (3, b"b"), (4, b"  "), (5, b"c")]
    assert await _lines(b"") == []


async def test_a_stop_request_ends_reading_even_while_input_is_pending() -> None:
    read_fd, write_fd = __import__("os").pipe()
    stop = asyncio.Event()
    with open(read_fd, "rb", buffering=0) as never_ending, open(write_fd, "wb", buffering=0) as writer:
        writer.write(b"one\n")
        lines = read_lines(never_ending, stop)
        assert await asyncio.wait_for(anext(lines), timeout=5) == (1, b"one")
        stop.set()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(lines), timeout=5)


def test_key_strategies() -> None:
    strategy, reads_json = key_strategy("field:device", ndjson=True, kafka=False)
    assert reads_json and strategy is not None and strategy({"device": 7}) == "7"
    constant, reads_json = key_strategy("constant:k", ndjson=False, kafka=True)
    assert not reads_json and constant is not None and constant(b"x") == "k"
    round_robin, _ = key_strategy("round_robin", ndjson=False, kafka=False)
    assert round_robin is not None and isinstance(round_robin(b"x"), Key)


@pytest.mark.parametrize(
    ("text", "ndjson", "kafka"),
    [
        ("field:device", False, False),
        ("round_robin", False, True),
        ("constant:", False, False),
        ("md5", True, False),
    ],
)
def test_bad_key_strategies(text: str, ndjson: bool, kafka: bool) -> None:
    with pytest.raises(ConfigurationError):
        key_strategy(text, ndjson=ndjson, kafka=kafka)


def test_summary_line() -> None:
    summary = ProduceSummary(sent=5, acknowledged=3, failed=2, skipped=1, failures={"ThrottledError": 2})
    assert summary.line() == "5 sent, 3 acknowledged, 2 failed, 1 input line(s) skipped (ThrottledError: 2)"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.configure(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ("kinesis:/s",),
        ("kinesis://s/extra",),
        ("kafka://h:1/a,b",),
        ("kafka://h:1/t?security=sasl",),
        ("kinesis://s", "--key", "field:id"),  # field keys need --format ndjson
        ("kinesis://s", "--rate-limit-percent", "150"),
    ],
)
def test_bad_arguments_exit_2_before_any_network_call(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert command.run(_args(*argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("shardline produce: ") and err.count("\n") == 1
