"""``stream-bench compare A.json B.json``: what changed from A to B, and whether it is better."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["METRICS", "compare_results", "print_comparison"]

# (label, path into the result, True when higher is better)
METRICS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("producer records/s", ("summary", "producer_records_per_sec"), True),
    ("producer MB/s", ("summary", "producer_mb_per_sec"), True),
    ("consumer records/s", ("summary", "consumer_records_per_sec"), True),
    ("send-to-ack p50 ms", ("summary", "send_to_ack_ms", "p50"), False),
    ("send-to-ack p99 ms", ("summary", "send_to_ack_ms", "p99"), False),
    ("send-to-ack p99.9 ms", ("summary", "send_to_ack_ms", "p99_9"), False),
    ("send-to-ack max ms", ("summary", "send_to_ack_ms", "max"), False),
    ("end-to-end p50 ms", ("summary", "end_to_end_ms", "p50"), False),
    ("end-to-end p99 ms", ("summary", "end_to_end_ms", "p99"), False),
    ("throttles", ("summary", "throttles"), False),
    ("retries", ("summary", "retries"), False),
    ("records failed", ("summary", "records_failed"), False),
    ("client CPU us/record", ("summary", "client_cpu_us_per_record"), False),
)


def _get(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = result
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) else None


def compare_results(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric: both values, the delta, the relative change and a verdict."""
    rows = []
    for label, path, higher_is_better in METRICS:
        va, vb = _get(a, path), _get(b, path)
        if va is None or vb is None:
            continue
        delta = vb - va
        relative = delta / va if va else (0.0 if vb == 0 else float("inf"))
        if abs(delta) <= 1e-9 or (va and abs(relative) < 0.02):
            verdict = "same"
        elif (delta > 0) == higher_is_better:
            verdict = "better"
        else:
            verdict = "worse"
        rows.append(
            {"metric": label, "a": va, "b": vb, "delta": delta, "relative": relative, "verdict": verdict}
        )
    return rows


def print_comparison(rows: list[dict[str, Any]], console: Console | None = None) -> None:
    table = Table(title="stream-bench compare: B against A")
    for column in ("metric", "A", "B", "delta", "change", "B is"):
        table.add_column(column, justify="left" if column in ("metric", "B is") else "right")
    colours = {"better": "green", "worse": "red", "same": "dim"}
    for row in rows:
        change = f"{row['relative']:+.1%}" if row["relative"] != float("inf") else "new"
        table.add_row(
            escape(str(row["metric"])),
            f"{row['a']:.3g}",
            f"{row['b']:.3g}",
            f"{row['delta']:+.3g}",
            change,
            f"[{colours[row['verdict']]}]{row['verdict']}[/]",
        )
    (console or Console()).print(table)
