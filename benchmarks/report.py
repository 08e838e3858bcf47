"""The self-contained HTML report and the terminal summary of a run result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmarks.charts import heatmap, line_chart
from shardline.limits import SHARD_WRITE_BYTES_PER_SEC
from shardline.printable import printable

__all__ = ["print_summary", "render_html", "unit_name", "write_html"]


def unit_name(result: dict[str, Any]) -> str:
    """What a stream's parallel unit is called for this target: Kafka partitions, Kinesis shards."""
    return "partition" if result["config"]["target"] == "msk" else "shard"


def render_html(result: dict[str, Any]) -> str:
    timeline = result["timeline"]
    heat_title = "Bytes/s per shard per second (share of the 1 MiB/s write limit)"
    heat_scale: float = SHARD_WRITE_BYTES_PER_SEC
    if unit_name(result) == "partition":
        peaks = [max(series["bytes"], default=0) for series in result["shard_timeline"].values()]
        heat_scale = max([*peaks, 1])
        heat_title = "Bytes/s per partition per second (share of the busiest partition-second; no quota)"
    charts = {
        "throughput": line_chart(
            "chart-throughput",
            "Throughput (records/s)",
            {
                "sent": timeline["sent_records"],
                "acknowledged": timeline["acked_records"],
                "consumed": timeline["consumed_records"],
                "throttles": timeline["throttles"],
            },
        ),
        "offered_accepted": line_chart(
            "chart-offered-accepted",
            "Offered load (by intended send time) vs accepted load (by acknowledgement), records/s",
            {
                "offered": result["offered_vs_accepted"]["timeline"]["offered_records"],
                "accepted": result["offered_vs_accepted"]["timeline"]["accepted_records"],
            },
        ),
        "latency": line_chart(
            "chart-latency",
            "Send-to-ack latency per second (ms)",
            {"p50": timeline["ack_p50_ms"], "p99": timeline["ack_p99_ms"]},
            " ms",
        ),
        "iterator_age": line_chart(
            "chart-iterator-age",
            "Iterator age, MillisBehindLatest (ms)",
            timeline["iterator_age_ms"] or {"no consumer": []},
            " ms",
        ),
        "heatmap": heatmap(
            "chart-heatmap",
            heat_title,
            {shard: series["bytes"] for shard, series in sorted(result["shard_timeline"].items())},
            heat_scale,
        ),
    }
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("benchmarks", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        finalize=_html_text,
    )
    return env.get_template("report.html.j2").render(
        r=result, s=result["summary"], charts=charts, unit=unit_name(result)
    )


def _html_text(value: object) -> object:
    """What a ``{{ }}`` of the report shows: text with its control and bidirectional formatting
    characters written as escapes (autoescaping then escapes the markup).

    A merged result carries what partials from other machines said (hot keys, notes, where
    each ran): autoescaping left an ESC, a BEL or a right-to-left override as it was, so the
    report showed a hot key reversed, and ``cat``/``grep`` of report.html on a terminal
    cleared the screen or wrote the clipboard.  Markup the report built itself (the charts,
    the signals' JSON) is left as it is.
    """
    if isinstance(value, str) and not hasattr(value, "__html__"):  # markup says so by __html__
        return printable(value)
    return value


def write_html(result: dict[str, Any], path: Path) -> Path:
    path.write_text(render_html(result), encoding="utf-8")
    return path


def _text(value: object) -> str:
    """A value from the result as literal terminal text: control characters escaped, markup
    escaped.  A merged result carries what partials from other machines said (stream, shard
    ids, where it ran, notes); an ESC among them would clear the screen or write the clipboard."""
    return escape(printable(str(value)))


def _quantile_text(quantiles: dict[str, float], names: tuple[str, ...]) -> str:
    """``p50/p99/...``, or ``-`` for each when nothing was measured: an empty histogram's
    quantiles are 0, which read as latencies of no time at all."""
    if not quantiles.get("count"):
        return "/".join("-" for _ in names)
    return "/".join(str(quantiles[name]) for name in names)


def print_summary(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    s = result["summary"]
    unit = unit_name(result)
    emulator_cpu = s.get("emulator_cpu_seconds")
    interrupted = " (interrupted: partial result)" if result.get("interrupted") else ""
    config = result["config"]
    table = Table(title=_text(f"stream-bench {config['target']} / {config['stream']}{interrupted}"))
    table.add_column("figure")
    table.add_column("value", justify="right")
    ack, e2e = s["send_to_ack_ms"], s["end_to_end_ms"]
    for label, value in (
        ("records acked / sent", f"{s['records_acked']} / {s['records_sent']}"),
        ("producer records/s", f"{s['producer_records_per_sec']:.0f}"),
        ("producer MB/s", f"{s['producer_mb_per_sec']:.3f}"),
        ("consumer records/s", f"{s['consumer_records_per_sec']:.0f}"),
        ("throttles / retries", f"{s['throttles']} / {s['retries']}"),
        ("send-to-ack p50/p99/p99.9/max ms", _quantile_text(ack, ("p50", "p99", "p99_9", "max"))),
        ("end-to-end p50/p99/max ms", _quantile_text(e2e, ("p50", "p99", "max"))),
        ("client CPU us/record", f"{s['client_cpu_us_per_record']:.1f}"),
        ("emulator CPU s", "-" if emulator_cpu is None else f"{emulator_cpu:.2f}"),
        (
            "client peak RSS MiB",
            "-" if s.get("client_peak_rss_mib") is None else f"{s['client_peak_rss_mib']:.0f}",
        ),
        (f"hot {unit}s", ", ".join(h["shard_id"] for h in result["hot_shards"]) or "none"),
        ("bound by", result["bound_by"]["verdict"]),
    ):
        table.add_row(label, _text(value))
    console.print(table)
    where = result.get("environment") or {}
    if where:
        machine = where.get("machine", {})
        versions = ", ".join(f"{name} {found}" for name, found in where.get("versions", {}).items())
        ran_on = f"{where.get('where')}; {machine.get('cores')} cores, Python {machine.get('python')}"
        console.print(f"ran on: {printable(ran_on)}", markup=False, highlight=False)
        console.print(f"versions: {printable(versions)}", markup=False, highlight=False)
    bound = result["bound_by"]
    console.print(f"bound by [bold]{_text(bound['verdict'])}[/bold]: {_text(bound['explanation'])}")
    console.print(f"how client CPU was measured: {_text(s.get('client_cpu_method', 'not stated'))}")
    for hot in result["hot_shards"]:
        console.print(f"[bold]{_text(hot['shard_id'])}[/bold]: {_text(hot['recommendation'])}")
    for note in result.get("notes", []):
        console.print(f"note: {_text(note)}")
