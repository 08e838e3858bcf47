"""``stream-bench compare A.json B.json``: what changed from A to B, and whether it is better.

Differences in configuration and environment come first (a faster B on twice the shards is
not a faster client), with a warning when the workloads differ.  A change smaller than the
metric's run-to-run noise is "same": throughput and latency vary by a few to tens of per cent
between identical runs on a shared machine, client CPU by up to ~30 %.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["METRICS", "NOISE", "compare_results", "differences", "print_comparison", "readable"]

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


NOISE: dict[str, float] = {
    "producer records/s": 0.05,
    "producer MB/s": 0.05,
    "consumer records/s": 0.05,
    "send-to-ack p50 ms": 0.20,
    "send-to-ack p99 ms": 0.30,
    "send-to-ack p99.9 ms": 0.40,
    "send-to-ack max ms": 0.50,
    "end-to-end p50 ms": 0.20,
    "end-to-end p99 ms": 0.30,
    "client CPU us/record": 0.30,
}
"""Relative change below which a metric counts as "same" (run-to-run noise); counts: 2 %."""

_DEFAULT_NOISE = 0.02

WORKLOAD_KEYS = (
    "target", "shards", "duration_seconds", "rate", "record_size", "keys", "skew",
    "key_strategy", "aggregate", "consumer", "payload_format",
)  # fmt: skip


def readable(value: float) -> str:
    """``2000.0`` -> ``2,000``; ``5.58`` -> ``5.58``; ``0.0123`` -> ``0.0123`` (never ``2e+03``)."""
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100 or value == int(value):
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 0.01:
        return f"{value:.2f}"
    return f"{value:.2g}"


def differences(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], bool]:
    """``(lines, workloads_differ)``: each configuration or environment setting that differs."""
    lines: list[str] = []
    config_a, config_b = a.get("config", {}), b.get("config", {})
    workload_differs = False
    for key in sorted(set(config_a) | set(config_b)):
        if key == "stream":
            continue
        if config_a.get(key) != config_b.get(key):
            lines.append(f"{key}: {config_a.get(key)} -> {config_b.get(key)}")
            workload_differs = workload_differs or key in WORKLOAD_KEYS
    env_a, env_b = a.get("environment") or {}, b.get("environment") or {}
    for key in ("where", "target_kind"):
        if env_a.get(key) != env_b.get(key):
            lines.append(f"{key}: {env_a.get(key)} -> {env_b.get(key)}")
    machine_a, machine_b = env_a.get("machine", {}), env_b.get("machine", {})
    for key in sorted(set(machine_a) | set(machine_b)):
        if machine_a.get(key) != machine_b.get(key):
            lines.append(f"machine {key}: {machine_a.get(key)} -> {machine_b.get(key)}")
    versions_a, versions_b = env_a.get("versions", {}), env_b.get("versions", {})
    for name in sorted(set(versions_a) | set(versions_b)):
        if versions_a.get(name) != versions_b.get(name):
            lines.append(f"{name}: {versions_a.get(name)} -> {versions_b.get(name)}")
    if a.get("interrupted") or b.get("interrupted"):
        lines.append(f"interrupted: {bool(a.get('interrupted'))} -> {bool(b.get('interrupted'))}")
        workload_differs = workload_differs or a.get("interrupted") != b.get("interrupted")
    return lines, workload_differs


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
        if abs(delta) <= 1e-9 or (va and abs(relative) < NOISE.get(label, _DEFAULT_NOISE)):
            verdict = "same"
        elif (delta > 0) == higher_is_better:
            verdict = "better"
        else:
            verdict = "worse"
        rows.append(
            {"metric": label, "a": va, "b": vb, "delta": delta, "relative": relative, "verdict": verdict}
        )
    return rows


def print_comparison(
    rows: list[dict[str, Any]],
    console: Console | None = None,
    *,
    changed: tuple[list[str], bool] = ([], False),
) -> None:
    """Differences in setup first (and a warning when the workloads differ), then the metrics."""
    console = console or Console()
    lines, workload_differs = changed
    if lines:
        console.print("what differs between A and B:", markup=False)
        for line in lines:
            console.print(f"  {line}", markup=False, highlight=False)
    if workload_differs:
        console.print(
            "warning: the workloads differ, so this is not a like-for-like comparison",
            markup=False,
            style="yellow",
        )
    table = Table(title="stream-bench compare: B against A")
    for column in ("metric", "A", "B", "delta", "change", "B is"):
        table.add_column(column, justify="left" if column in ("metric", "B is") else "right")
    colours = {"better": "green", "worse": "red", "same": "dim"}
    for row in rows:
        change = f"{row['relative']:+.1%}" if row["relative"] != float("inf") else "new"
        table.add_row(
            escape(str(row["metric"])),
            readable(row["a"]),
            readable(row["b"]),
            ("+" if row["delta"] > 0 else "") + readable(row["delta"]),
            change,
            f"[{colours[row['verdict']]}]{row['verdict']}[/]",
        )
    console.print(table)
    console.print(
        "changes smaller than a metric's run-to-run noise "
        '(5 % throughput, 20-50 % latency, 30 % CPU) are "same"',
        markup=False,
    )
