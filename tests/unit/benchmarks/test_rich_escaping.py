"""Strings from streams and result files are printed literally, never parsed as Rich markup."""

from __future__ import annotations

import io

from rich.console import Console

from benchmarks.compare import print_comparison
from benchmarks.hotshards import print_hot_shards
from benchmarks.report import print_summary
from benchmarks.result import build_result
from benchmarks.run import RunOutcome
from benchmarks.shardload import ShardLoadTracker, analyse_hot_shards

MARKUP_KEYS = ["[/bold]", "[red]device", "[link=file:///etc/passwd]x[/link]"]


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=400, color_system=None), out


def test_hotshards_prints_partition_keys_that_look_like_markup() -> None:
    tracker = ShardLoadTracker(["shardId-000000000000", "shardId-000000000001"])
    for second in range(3):
        for key in MARKUP_KEYS:
            for _ in range(600):
                tracker.add("shardId-000000000000", second, key, 100)
        tracker.add("shardId-000000000001", second, "quiet", 100)
    analysis = analyse_hot_shards(tracker)
    assert analysis["hot_shards"]
    console, out = _console()
    print_hot_shards(analysis, console)
    for key in MARKUP_KEYS:
        assert key in out.getvalue()


def test_report_and_compare_print_markup_like_text_literally(outcome: RunOutcome) -> None:
    result = build_result(outcome)
    result["config"]["stream"] = "[/bold]stream"
    result["hot_shards"] = [{"shard_id": "[/]", "recommendation": "spread key [/bold] over [red]"}]
    result["notes"] = ["[/italic]"]
    console, out = _console()
    print_summary(result, console)
    text = out.getvalue()
    assert "[/bold]stream" in text and "spread key [/bold] over [red]" in text and "[/italic]" in text
    rows = [{"metric": "[/bold]", "a": 1.0, "b": 2.0, "delta": 1.0, "relative": 1.0, "verdict": "better"}]
    console, out = _console()
    print_comparison(rows, console)
    assert "[/bold]" in out.getvalue()


def test_hotshards_prints_a_keys_escape_sequences_as_text() -> None:
    """Rich escapes markup but passes ESC through: a device key could rewrite the terminal."""
    hostile = "dev\x1b]0;owned\x07\x1b[2J\u009b1m"
    tracker = ShardLoadTracker(["shardId-000000000000", "shardId-000000000001"])
    for second in range(3):
        for _ in range(600):
            tracker.add("shardId-000000000000", second, hostile, 100)
        tracker.add("shardId-000000000001", second, "quiet", 100)
    console, out = _console()
    print_hot_shards(analyse_hot_shards(tracker), console)
    text = out.getvalue()
    assert "dev\\x1b]0;owned\\x07\\x1b[2J\\x9b1m" in text
    assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in text)


def test_the_summary_prints_escape_sequences_from_a_result_as_text(outcome: RunOutcome) -> None:
    """A merged result says what partials from other machines said: none of it may reach the
    terminal as a control sequence (OSC 52 writes the clipboard, CSI 2J clears the screen)."""
    hostile = "x\x1b]52;c;cHduZWQ=\x1b\\y\x1b[2J\u009b1m"
    result = build_result(outcome)
    result["config"]["stream"] = hostile
    result["environment"] = {
        "where": hostile,
        "machine": {"cores": 2, "python": hostile},
        "versions": {hostile: hostile},
    }
    result["hot_shards"] = [{"shard_id": hostile, "recommendation": hostile}]
    result["notes"] = [hostile]
    result["summary"]["client_cpu_method"] = hostile
    console, out = _console()
    print_summary(result, console)
    text = out.getvalue()
    assert "x\\x1b]52;c;cHduZWQ=" in text
    assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in text)
